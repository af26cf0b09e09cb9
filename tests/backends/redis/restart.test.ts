/**
 * Redis losing its data, raced: a restart without persistence, a restored
 * snapshot (the marker of another server process), an evicted counter and
 * a dropped connection. What the holder and a contender actually did is
 * judged by time: the holder knows at once, the contender waits out the
 * lease, and tokens never go back.
 */

import { redis } from "../../../backends/redis/mod.ts";
import { LockLostError } from "../../../src/backend.ts";
import { acquire } from "../../../src/lease.ts";
import { request, sleep } from "../../contract/common.ts";
import { assert, assertEquals, assertMatch } from "../../helpers/assert.ts";
import { eventually } from "../../helpers/cli.ts";
import { redisServer } from "../../helpers/servers/redis.ts";
import {
  available,
  sharedServer,
  startServer,
  type TestServer,
} from "../../helpers/servers/server.ts";
import { admin, settle } from "./fixture.ts";

const ready = available(redisServer);
let unique = 0;
const lockName = (tag: string) => `redis-${tag}-${Date.now()}-${unique++}`;

/** A server of the test's own, settled; killed afterwards. */
async function ownServer(
  test: (server: TestServer, uri: string) => Promise<void>,
): Promise<void> {
  const server = await startServer(redisServer);
  const keepAlive = setInterval(() => {}, 50);
  try {
    const uri = `redis://127.0.0.1:${server.port}/0`;
    {
      await using backend = redis(uri);
      await settle(backend);
    }
    await test(server, uri);
  } finally {
    await server.kill();
    clearInterval(keepAlive);
  }
}

Deno.test(
  "redis restarted without persistence: the holder knows at once, a contender waits out the lease, and its token is higher",
  { ignore: !ready },
  () =>
    ownServer(async (server, uri) => {
      const lock = lockName("restart");
      await using a = redis(uri);
      await using b = redis(uri);
      // A 30 s TTL renews every 10 s: a loss seen within a second is the
      // drop's recheck, not a renewal.
      const lease = await acquire({
        backend: a,
        lock,
        ttl: 30,
        guardTime: 0,
        node: "holder",
      });
      const restartedAt = performance.now();
      await server.kill();
      await server.restart();
      await eventually(() => lease.signal.aborted, 2_000, "the holder to know");
      const lostAfter = performance.now() - restartedAt;
      assert(lease.signal.reason instanceof LockLostError, "a LockLostError");
      assertMatch(
        (lease.signal.reason as Error).message,
        /connection to the server dropped, and the key was gone/,
      );
      // The contender's lease is 3 s: the restarted server grants it only
      // after 3 s of uptime, whatever it tries before.
      let claim;
      while (
        !(claim = await b.tryAcquire(request(lock, { expiresInMs: 3_000 })))
      ) {
        assert(performance.now() - restartedAt < 10_000, "granted in time");
        await sleep(50);
      }
      const grantedAfter = performance.now() - restartedAt;
      console.log(
        `redis restart: holder lost after ${
          lostAfter.toFixed(0)
        } ms, contender in after ${grantedAfter.toFixed(0)} ms`,
      );
      assert(lostAfter < 1_500, `the holder knew after ${lostAfter} ms`);
      assert(
        grantedAfter >= 3_000,
        `granted ${
          grantedAfter.toFixed(0)
        } ms after the restart, inside the lease`,
      );
      assert(
        claim.token > lease.token,
        `token ${claim.token} after ${lease.token}`,
      );
      await claim.release(0);
      await lease.release();
    }),
);

Deno.test(
  "redis: a missing counter starts from the server's clock in microseconds, so tokens never go back",
  { ignore: !ready },
  async () => {
    const server = (await sharedServer(redisServer))!;
    const uri = `redis://127.0.0.1:${server.port}/0`;
    await using a = redis(uri);
    await settle(a);
    const lock = lockName("evicted");
    const first = await a.tryAcquire(request(lock));
    assert(first, "acquired");
    const [seconds, micros] = await admin(server.port, (c) => c.time());
    const now = BigInt(seconds) * 1_000_000n + BigInt(micros);
    assert(
      first.token > now - 10_000_000n && first.token <= now,
      `a new counter starts at the server's TIME in µs, not at ${first.token}`,
    );
    const second = await a.tryAcquire(request(lockName("evicted")));
    assert(second && second.token < first.token + 10_000_000n, "per lock");
    await first.release(0);
    await second.release(0);
    // An eviction (or FLUSHALL, or a restart) loses the counter.
    await admin(server.port, (c) => c.del(`coolock:fence:${lock}`));
    const third = await a.tryAcquire(request(lock));
    assert(third, "acquired again");
    assert(
      third.token > first.token,
      `token ${third.token} after ${first.token}`,
    );
    await third.release(0);
  },
);

Deno.test(
  "redis: a marker of another server process (a restored snapshot) makes the server wait out the lease once",
  { ignore: !ready },
  () =>
    ownServer(async (server, uri) => {
      await using a = redis(uri);
      await admin(server.port, (c) => c.set("coolock:epoch", "f".repeat(40)));
      const hour = 3_600_000;
      assertEquals(
        await a.tryAcquire(
          request(lockName("snapshot"), { expiresInMs: hour }),
        ),
        undefined,
        "an hour's lease on a server up for seconds is refused",
      );
      const short = await a.tryAcquire(
        request(lockName("snapshot"), { expiresInMs: 1 }),
      );
      assert(short, "a lease shorter than the uptime is granted");
      await short.release(0);
      const runId = await admin(
        server.port,
        async (c) => /run_id:(\w+)/.exec(await c.info("server"))![1],
      );
      assertEquals(
        await admin(server.port, (c) => c.get("coolock:epoch")),
        runId,
        "the grant wrote this process's run_id",
      );
      const long = await a.tryAcquire(
        request(lockName("snapshot"), { expiresInMs: hour }),
      );
      assert(long, "once settled, the server grants any lease");
      await long.release(0);
    }),
);

Deno.test(
  "redis: a dropped connection makes the holder look at once: kept when the key is there, lost when not",
  { ignore: !ready },
  async () => {
    const server = (await sharedServer(redisServer))!;
    const uri = `redis://127.0.0.1:${server.port}/0`;
    await using a = redis(uri);
    await settle(a);
    const lock = lockName("dropped");
    const lease = await acquire({ backend: a, lock, ttl: 30, guardTime: 0 });
    const kill = () =>
      admin(server.port, async (c) => {
        const list = await c.client("LIST") as string;
        for (const line of list.split("\n")) {
          const id = /^id=(\d+) .*name=coolock /.exec(line)?.[1];
          if (id) await c.client("KILL", "ID", id);
        }
      });
    await kill();
    await sleep(500);
    assert(!lease.signal.aborted, "the key is there: still held");
    await admin(server.port, (c) => c.del(`coolock:lock:${lock}`));
    const cutAt = performance.now();
    await kill();
    await eventually(() => lease.signal.aborted, 2_000, "the holder to know");
    const ms = performance.now() - cutAt;
    console.log(
      `redis: a dropped connection's loss noticed in ${ms.toFixed(0)} ms`,
    );
    await lease.release();
  },
);
