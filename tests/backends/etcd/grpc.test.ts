/**
 * What only the `etcd3` (gRPC) transport needs: its errors are one line
 * (grpc-js appends a `Resolution note:` and newlines), and it counts a
 * lease out itself, by the last acknowledged keepalive, because grpc-js
 * reports a dead lease seconds late.
 */

import { etcd3 } from "../../../backends/etcd/grpc/mod.ts";
import { BackendUnavailableError } from "../../../src/backend.ts";
import { checkBackend, lockStatus } from "../../../src/operate.ts";
import { assert, assertMatch, assertRejects } from "../../helpers/assert.ts";
import { etcdServer } from "../../helpers/servers/etcd.ts";
import { freePort, startServer } from "../../helpers/servers/server.ts";
import { lockName, request, server, sleep, withServer } from "./fixture.ts";

Deno.test(
  "etcd3: errors are one clean line, without grpc-js's Resolution note",
  async () => {
    const port = freePort();
    const cases: Array<[string, RegExp]> = [
      [
        `etcd3://127.0.0.1:${port}?timeout=2`,
        /127\.0\.0\.1:\d+ can't be reached: connection refused$/,
      ],
      [
        `etcd3://no-such-host.invalid:2379?timeout=2`,
        /no-such-host\.invalid.*(not found|can't be reached)|no answer within 2 s/,
      ],
    ];
    for (const [uri, pattern] of cases) {
      await using backend = etcd3(uri);
      const error = await assertRejects(
        () => backend.tryAcquire(request(lockName("grpc-error"))),
        BackendUnavailableError,
      );
      assert(
        !/Resolution note|\n|\d+ UNAVAILABLE/.test(error.message),
        error.message,
      );
      assertMatch(error.message, pattern);
      const status = await assertRejects(
        () => lockStatus(backend, "x", { timeout: 5 }),
        BackendUnavailableError,
      );
      assert(!/Resolution note|\n/.test(status.message), status.message);
    }
  },
);

Deno.test(
  "etcd3: a hung server: the claim counts its lease out by the last acknowledged keepalive",
  withServer,
  async () => {
    const own = await startServer(etcdServer);
    const keepAlive = setInterval(() => {}, 50);
    try {
      await using backend = etcd3(`etcd3://127.0.0.1:${own.port}?timeout=1`);
      const claim = await backend.tryAcquire(
        request(lockName("grpc-hung"), { expiresInMs: 3_000 }),
      );
      assert(claim, "acquired");
      own.pause();
      const hungAt = performance.now();
      const renewal = await claim.renew(3_000, AbortSignal.timeout(5_000))
        .then(() => "renewed", (e) => e);
      assert(renewal !== "renewed", "a renewal fails on a hung server");
      while (!claim.lost?.aborted && performance.now() - hungAt < 6_000) {
        await sleep(20);
      }
      const lostAfter = performance.now() - hungAt;
      console.log(`etcd3: lost ${lostAfter.toFixed(0)} ms after the last ack`);
      assert(claim.lost?.aborted, "the lost signal fired");
      // The server drops the lease 3 s after it was granted; grpc-js alone
      // would say so seconds later.
      assert(lostAfter < 3_500, `lost after ${lostAfter} ms, not by the TTL`);
      const results = await checkBackend(backend, { timeout: 3 }).catch((e) =>
        e
      );
      assert(
        results instanceof BackendUnavailableError || Array.isArray(results),
        `check on a hung server is bounded: ${results}`,
      );
    } finally {
      clearInterval(keepAlive);
      own.resume();
      await own.kill();
    }
    assert(server, "the shared server is still up");
  },
);
