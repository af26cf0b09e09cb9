/**
 * The etcd3 backend (gRPC, npm:etcd3) against a real etcd 3.4: the generic
 * contract suite, then what is particular to it (URIs, a lazily loaded
 * client, failover, auth, TLS, its own lost-lock deadline, watch wake-ups,
 * and a process that exits once closed).
 */

import { etcd3 } from "../../../backends/etcd/grpc/mod.ts";
import { BackendUnavailableError } from "../../../src/backend.ts";
import { contract } from "../../contract/suite.ts";
import { etcdChecks, etcdParts, queueInOrder } from "./suite.ts";
import { assert, assertEquals, assertRejects } from "../../helpers/assert.ts";
import {
  assertBadUri,
  logHandoffs,
  sleep,
  testHungServer,
  testLoadsNoClient,
} from "../../helpers/backend_checks.ts";
import { etcdServer } from "../../helpers/servers/etcd.ts";
import { freePort } from "../../helpers/servers/server.ts";

const flavour = { scheme: "etcd3", open: etcd3, ttl: 3 } as const;
const { fixture, request, lockName, withServer } = etcdParts(flavour);
const server = fixture?.server;

contract(fixture);

Deno.test("etcd3 URIs: schemes, host lists, key root and bad values", () => {
  assertEquals(etcd3("etcd3://h1").displayUri, "etcd3://h1");
  assertEquals(etcd3("etcd3+https://h1:2379,h2").scheme, "etcd3+https");
  assertEquals(
    etcd3("etcd3://root:hunter2@h1/jobs?timeout=2").displayUri,
    "etcd3://root:***@h1/jobs?timeout=2",
  );
  const bad = (uri: string, pattern: RegExp) =>
    assertBadUri(etcd3, uri, pattern);
  bad("etcd://root:hunter2@h1", /is not etcd3:\/\//);
  bad("etcd3://root:hunter2@", /names no host/);
  bad("etcd3://:hunter2@h1", /password but no user name/);
  bad("etcd3://root:hunter2@h1:0", /bad port '0'/);
  bad(
    "etcd3://root:hunter2@h1?dial_timeout=1",
    /unknown option 'dial_timeout'/,
  );
  bad(
    "etcd3://root:hunter2@h1?key=/etc/hostname",
    /TLS options: use etcd3\+https/,
  );
  bad(
    "etcd3+https://root:hunter2@h1?key=/etc/hostname",
    /both 'cert' and 'key'/,
  );
  bad(
    "etcd3+https://root:hunter2@h1?ca=/nonexistent.pem",
    /'ca' file .* can't/,
  );
  bad("etcd3://root:hunter2@h1?timeout=-1", /bad 'timeout' value '-1'/);
});

testLoadsNoClient({
  label: "etcd3",
  module: "backends/etcd/grpc/mod.ts",
  factory: "etcd3",
  uri: "etcd3://127.0.0.1:1",
  use: "attempt",
  noNpm: false,
  expect: ["clean", "loaded"],
});

Deno.test(
  "etcd3: the first endpoint is down, the next one answers",
  withServer,
  async () => {
    const dead = freePort();
    await using backend = etcd3(
      `etcd3://127.0.0.1:${dead},127.0.0.1:${server!.port}`,
    );
    for (let i = 0; i < 4; i++) {
      const claim = await backend.tryAcquire(request(lockName("failover")));
      assert(claim, "acquired through the live endpoint");
      await claim.renew(10_000, AbortSignal.timeout(5_000));
      await claim.release(0);
    }
    await using none = etcd3(`etcd3://127.0.0.1:${dead}?timeout=2`);
    const started = performance.now();
    await assertRejects(
      () => none.tryAcquire(request(lockName("failover"))),
      BackendUnavailableError,
    );
    assert(performance.now() - started < 3_000, "refused in bounded time");
  },
);

testHungServer({
  label: "etcd3",
  recipe: etcdServer,
  open: etcd3,
  uriAt: (port) => `etcd3://127.0.0.1:${port}?timeout=1`,
  request,
  expiresInMs: 3_000,
  renew: { expiresInMs: 3_000, signalMs: 5_000 },
  // The deadline ends the renew.
  renewWithinMs: 2_500,
  recovers: false,
  // Its own lost deadline: the server would drop the lease 3 s after it was
  // granted; grpc-js would only say so seconds later.
  whileHung: async (claim, hungAt) => {
    while (!claim.lost?.aborted && performance.now() - hungAt < 6_000) {
      await sleep(20);
    }
    const lostAfter = performance.now() - hungAt;
    console.log(`etcd3: lost ${lostAfter.toFixed(0)} ms after the last ack`);
    assert(claim.lost?.aborted, "the lost signal fired");
    assert(lostAfter < 3_500, `lost after ${lostAfter} ms, not by the TTL`);
  },
  ignore: !server,
});

etcdChecks(flavour, {
  wrongQuery: "?timeout=2",
  wrongMessage: /auth/i,
  anonymousRejects: false,
  tlsHost: "localhost",
});

Deno.test(
  "etcd3: a release wakes the next waiter by watch, in arrival order",
  withServer,
  async () => {
    const name = lockName("wake");
    const backends = Array.from({ length: 4 }, () => etcd3(fixture!.uri));
    try {
      const { order, handoffs } = await queueInOrder(backends, name, {
        holdMs: 1_200,
        settleMs: 1_200,
      });
      assertEquals(order, [1, 2, 3]);
      logHandoffs("etcd3: watch", handoffs);
    } finally {
      for (const backend of backends) await backend.close();
    }
  },
);
