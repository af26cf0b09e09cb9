/**
 * The ZooKeeper backend's part of the one promise, on the shared real
 * server, judged by what a contender actually got and when: the slot
 * record keeps a lock whose session is gone (closed out of band, or a
 * killed holder's, expired) until the lease last renewed runs out by the
 * server's clock; a long TTL rests on the record, not on a session the
 * server bounds; a restarted server keeps sessions and locks; a server
 * that stays down makes the holder know it lost before anyone gets in.
 */

import { decodeRecord } from "../../../backends/zookeeper/keys.ts";
import { zookeeper } from "../../../backends/zookeeper/mod.ts";
import { LockHeldError } from "../../../src/errors.ts";
import { acquire } from "../../../src/lease.ts";
import { assert, assertEquals } from "../../helpers/assert.ts";
import {
  admin,
  closeSessionOf,
  lockName,
  parentPath,
  queueOf,
  request,
  server,
  sleep,
  uriAt,
  withServer,
} from "./fixture.ts";

/** Tries every 50 ms until the lock is taken; resolves when (performance.now()). */
async function contend(uri: string, lock: string, withinMs: number) {
  await using backend = zookeeper(uri);
  const deadline = performance.now() + withinMs;
  while (performance.now() < deadline) {
    const claim = await backend.tryAcquire(request(lock)).catch(() =>
      undefined
    );
    if (claim) {
      const at = performance.now();
      await claim.release(0);
      return at;
    }
    await sleep(50);
  }
  throw new Error(`'${lock}' was not free within ${withinMs} ms`);
}

Deno.test(
  "zookeeper: a session closed out of band frees nothing before its lease runs out",
  withServer,
  async () => {
    const lock = lockName("drop");
    await using a = zookeeper(uriAt());
    const claim = await a.tryAcquire(request(lock, { expiresInMs: 3_000 }));
    assert(claim?.lost, "held");
    const renewedAt = performance.now();
    await claim.renew(3_000, AbortSignal.timeout(5_000));
    const [entry] = await queueOf(lock);
    const droppedAt = performance.now();
    await closeSessionOf(`${parentPath(lock)}/${entry}`);
    while (!claim.lost.aborted) {
      assert(performance.now() - droppedAt < 3_000, "the holder noticed");
      await sleep(5);
    }
    const noticed = performance.now() - droppedAt;
    const freeAt = await contend(uriAt(), lock, 10_000);
    console.log(
      `zookeeper: dropped session noticed after ${
        noticed.toFixed(0)
      } ms; lock free ${(freeAt - renewedAt).toFixed(0)} ms after the renewal`,
    );
    // Mostly at once (the server expires the session); when the holder's
    // reconnect raced the takeover, its connection stays up but unanswered,
    // and the session counts as lost at the timeout minus a margin.
    assert(noticed < 3_000, `the holder noticed after ${noticed} ms`);
    assert(
      freeAt - renewedAt >= 2_950,
      `free ${
        freeAt - renewedAt
      } ms after the last renewal, inside its 3 s lease`,
    );
    await claim.release(0);
  },
);

/** A process that takes the lock with `expiresInMs` and then waits to be killed. */
function holder(uri: string, lock: string, expiresInMs: number) {
  const module =
    new URL("../../../backends/zookeeper/mod.ts", import.meta.url).href;
  return new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const { zookeeper } = await import("${module}");
      const claim = await zookeeper(${JSON.stringify(uri)}).tryAcquire({
        name: ${JSON.stringify(lock)}, owner: "killed:1", node: "killed",
        limit: 1, expiresInMs: ${expiresInMs}, guardMs: 0, wait: false,
        signal: AbortSignal.timeout(10000) });
      console.log(claim ? "held" : "free"); setInterval(() => {}, 1000);`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return (value ?? "").trim();
}

Deno.test(
  "zookeeper: a killed holder's short session goes, its lease record keeps the lock",
  withServer,
  async () => {
    const lock = lockName("killed");
    // A 1 s session and a 5 s lease: the entry goes after about 1 s, the
    // lock is held until the lease's end by the record.
    const child = holder(
      uriAt(server!.port, "?session_timeout=1"),
      lock,
      5_000,
    );
    assertEquals(await firstLine(child), "held");
    const heldBy = performance.now();
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel().catch(() => {});
    while ((await queueOf(lock)).length > 0) await sleep(50);
    const sessionGone = performance.now() - heldBy;
    assert(sessionGone < 3_000, `the session went after ${sessionGone} ms`);
    const record = decodeRecord(
      (await admin((a) => a.getData(parentPath(lock)))).data,
    );
    assertEquals(record?.leaseMs, 5_000, "the record carries the lease");
    await using b = zookeeper(uriAt());
    assertEquals(
      await b.tryAcquire(request(lock)),
      undefined,
      "the record keeps the lock after the session went",
    );
    const freeAt = await contend(uriAt(), lock, 10_000);
    console.log(
      `zookeeper: killed holder's session gone after ${
        sessionGone.toFixed(0)
      } ms, lock free after ${(freeAt - heldBy).toFixed(0)} ms (5 s lease)`,
    );
    assert(freeAt - heldBy >= 4_950, "free only at the lease's end");
    assert(freeAt - heldBy < 7_000, "and soon after it");
  },
);

Deno.test(
  "zookeeper: a 366-day lease rests on the record, whatever session the server grants",
  withServer,
  async () => {
    const lock = lockName("long");
    const ttl = 366 * 86_400;
    await using a = zookeeper(uriAt());
    const lease = await acquire({ backend: a, lock, ttl, guardTime: 0 });
    const record = decodeRecord(
      (await admin((c) => c.getData(parentPath(lock)))).data,
    );
    assertEquals(record?.leaseMs, ttl * 1000, "the record holds the whole TTL");
    const [check] = await a.check!(AbortSignal.timeout(5_000));
    // The test server's tickTime is 0.5 s: sessions are bounded to 10 s.
    assert(
      /granted a session timeout of 10 s \(asked 60 s\)/.test(check.detail),
      check.detail,
    );
    const [status] = await a.status!(lock, AbortSignal.timeout(5_000));
    assert(
      status.holders[0].leaseLeftMs! > (ttl - 60) * 1000,
      `lease left ${status.holders[0].leaseLeftMs}`,
    );
    await using b = zookeeper(uriAt());
    const error = await acquire({ backend: b, lock, ttl: 3, guardTime: 0 })
      .then((l) => l.release().then(() => "acquired"), (e) => e);
    assert(error instanceof LockHeldError, `held: ${error}`);
    assert(!lease.signal.aborted, "the lease holds");
    await lease.release();
    const next = await acquire({ backend: b, lock, ttl: 3, guardTime: 0 });
    await next.release();
  },
);

Deno.test(
  "zookeeper: a restarted server keeps the sessions, and with them the locks",
  withServer,
  async () => {
    const lock = lockName("restart");
    await using a = zookeeper(uriAt());
    const lease = await acquire({ backend: a, lock, ttl: 3, guardTime: 0 });
    const restartAt = performance.now();
    await server!.kill();
    await server!.restart();
    console.log(
      `zookeeper: restarted in ${
        (performance.now() - restartAt).toFixed(0)
      } ms`,
    );
    await using b = zookeeper(uriAt());
    for (let i = 0; i < 8; i++) {
      assertEquals(
        await b.tryAcquire(request(lock)),
        undefined,
        `still held ${i * 500} ms after the restart`,
      );
      await sleep(500);
    }
    assert(!lease.signal.aborted, `the lease survived: ${lease.signal.reason}`);
    await lease.release();
    const next = await acquire({ backend: b, lock, ttl: 3, guardTime: 0 });
    assert(next.token > lease.token, "a newer token after the restart");
    await next.release();
  },
);

Deno.test(
  "zookeeper: a server down past the session timeout: the holder knows it lost before anyone gets in",
  withServer,
  async () => {
    const lock = lockName("down");
    await using a = zookeeper(uriAt());
    const lease = await acquire({ backend: a, lock, ttl: 3, guardTime: 0 });
    let lostAt = 0;
    lease.signal.addEventListener("abort", () => lostAt = performance.now());
    const downAt = performance.now();
    await server!.kill();
    try {
      while (!lease.signal.aborted) {
        assert(performance.now() - downAt < 4_000, "the holder noticed");
        await sleep(20);
      }
      await sleep(1_500);
    } finally {
      await server!.restart();
    }
    const freeAt = await contend(uriAt(), lock, 15_000);
    console.log(
      `zookeeper: server down: holder lost after ${
        (lostAt - downAt).toFixed(0)
      } ms, contender in after ${(freeAt - downAt).toFixed(0)} ms`,
    );
    assert(lostAt - downAt < 3_000, "lost within the session timeout");
    assert(freeAt > lostAt, "the contender got in after the holder knew");
    await lease.release();
  },
);
