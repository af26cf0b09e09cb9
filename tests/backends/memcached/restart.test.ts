/**
 * memcached losing its items, raced: a restart, a marker of another server
 * process, and a socket the server closes. What the holder and a contender
 * actually did is judged by time: the holder knows at once, the contender
 * waits out the lease, and tokens never go back. Also `check`.
 */

import { memcached } from "../../../backends/memcached/mod.ts";
import { keysOf } from "../../../backends/memcached/keys.ts";
import { Op, storageExtras } from "../../../backends/memcached/protocol.ts";
import { stateOf } from "../../../backends/memcached/store.ts";
import { LockLostError } from "../../../src/backend.ts";
import { acquire } from "../../../src/lease.ts";
import { checkBackend } from "../../../src/operate.ts";
import { request, sleep } from "../../contract/common.ts";
import { assert, assertEquals, assertMatch } from "../../helpers/assert.ts";
import { eventually } from "../../helpers/cli.ts";
import {
  memcachedServer,
  memcachedServerWith,
} from "../../helpers/servers/memcached.ts";
import {
  available,
  sharedServer,
  startServer,
  type TestServer,
} from "../../helpers/servers/server.ts";
import { admin, settle } from "./fixture.ts";

const ready = { ignore: !available(memcachedServer) };
let unique = 0;
const lockName = (tag: string) => `memcached-${tag}-${Date.now()}-${unique++}`;

/** A server of the test's own with `extra` arguments; killed afterwards. */
async function ownServer(
  extra: string[],
  test: (server: TestServer, uri: string) => Promise<void>,
): Promise<void> {
  const server = await startServer(memcachedServerWith(extra));
  const keepAlive = setInterval(() => {}, 50);
  try {
    await test(server, `memcached://127.0.0.1:${server.port}`);
  } finally {
    await server.kill();
    clearInterval(keepAlive);
  }
}

Deno.test(
  "memcached restarted: the holder knows at once, a contender waits out the lease, and its token is higher",
  ready,
  () =>
    ownServer([], async (server, uri) => {
      const lock = lockName("restart");
      await using a = memcached(uri);
      await using b = memcached(uri);
      await settle(a);
      // A 30 s TTL renews every 10 s: a loss seen within a second is the
      // drop's recheck, not a renewal.
      const lease = await acquire({ backend: a, lock, ttl: 30, guardTime: 0 });
      const restartedAt = performance.now();
      await server.kill();
      await server.restart();
      await eventually(() => lease.signal.aborted, 2_000, "the holder to know");
      const lostAfter = performance.now() - restartedAt;
      assert(lease.signal.reason instanceof LockLostError, "a LockLostError");
      assertMatch(
        (lease.signal.reason as Error).message,
        /a connection to the server dropped, and the item was gone/,
      );
      // The contender's lease is 3 s: the restarted server grants it only
      // once it has certainly been up for 3 s.
      let claim;
      while (
        !(claim = await b.tryAcquire(request(lock, { expiresInMs: 3_000 })))
      ) {
        assert(performance.now() - restartedAt < 12_000, "granted in time");
        await sleep(50);
      }
      const grantedAfter = performance.now() - restartedAt;
      console.log(
        `memcached restart: holder lost after ${
          lostAfter.toFixed(0)
        } ms, contender in after ${grantedAfter.toFixed(0)} ms`,
      );
      assert(lostAfter < 1_500, `the holder knew after ${lostAfter} ms`);
      assert(grantedAfter >= 3_000, `granted after ${grantedAfter} ms`);
      assert(claim.token > lease.token, `${claim.token} > ${lease.token}`);
      await claim.release(0);
      await lease.release();
    }),
);

Deno.test(
  "memcached: a marker of another server process makes the server wait out the lease, once",
  ready,
  () =>
    ownServer([], async (server, uri) => {
      await using a = memcached(uri);
      await settle(a);
      const { route } = await keysOf("any");
      await admin(server.port, (c) =>
        c.send(route, Op.set, "coolock:epoch", {
          extras: storageExtras(0),
          value: "1@1",
        }));
      const hour = 3_600_000;
      assertEquals(
        await a.tryAcquire(request(lockName("marker"), { expiresInMs: hour })),
        undefined,
        "an hour's lease on a server up for seconds is refused",
      );
      const short = await a.tryAcquire(request(lockName("marker"), {
        expiresInMs: 1,
      }));
      assert(short, "a lease shorter than the uptime is granted");
      await short.release(0);
      const state = await admin(server.port, async (c) =>
        stateOf(await c.stats(0)));
      const marker = await admin(
        server.port,
        (c) =>
          c.send(route, Op.get, "coolock:epoch", {}),
      );
      assertEquals(new TextDecoder().decode(marker.value), state.bootId);
      const long = await a.tryAcquire(request(lockName("marker"), {
        expiresInMs: hour,
      }));
      assert(long, "once settled, the server grants any lease");
      await long.release(0);
    }),
);

Deno.test(
  "memcached: a socket the server closes makes the holder look at once: kept when the item is there, lost when not",
  ready,
  () =>
    // memcached closes connections idle for a second.
    ownServer(["-o", "idle_timeout=1"], async (server, uri) => {
      const lock = lockName("idle");
      await using a = memcached(uri);
      await settle(a);
      const lease = await acquire({ backend: a, lock, ttl: 30, guardTime: 0 });
      await sleep(3_500);
      assert(!lease.signal.aborted, "the item is there: still held");
      const keys = await keysOf(lock);
      await admin(server.port, (c) =>
        c.send(keys.route, Op.delete, keys.lock, {}));
      const removedAt = performance.now();
      await eventually(
        () =>
          lease.signal.aborted,
        5_000,
        "the holder to know",
      );
      const ms = performance.now() - removedAt;
      console.log(
        `memcached: noticed at the next dropped socket, ${ms.toFixed(0)} ms`,
      );
      assert(ms < 5_000, "well before the 10 s renewal");
      await lease.release();
    }),
);

Deno.test(
  "memcached check: reachable, version, clock in whole seconds, and eviction",
  ready,
  async () => {
    const server = (await sharedServer(memcachedServer))!;
    await using backend = memcached(`memcached://127.0.0.1:${server.port}`);
    const results = await checkBackend(backend);
    const checks = Object.fromEntries(results.map((r) => [r.name, r]));
    assertEquals(Object.keys(checks), [
      "reachable",
      "credentials",
      "version",
      "permissions",
      "clock",
      "eviction",
    ]);
    for (
      const name of [
        "reachable",
        "credentials",
        "version",
        "permissions",
        "clock",
      ]
    ) {
      assertEquals(checks[name].status, "ok", checks[name].detail);
    }
    assertMatch(checks.version.detail, /^memcached 1\.\d+/);
    assertMatch(checks.clock.detail, /whole seconds/);
    assertEquals(checks.eviction.status, "warn");
    assertMatch(checks.eviction.detail, /start memcached with -M/);
    await ownServer(["-M"], async (_server, uri) => {
      await using strict = memcached(uri);
      const [eviction] = (await checkBackend(strict)).filter((r) =>
        r.name === "eviction"
      );
      assertEquals(eviction.status, "ok", eviction.detail);
    });
  },
);
