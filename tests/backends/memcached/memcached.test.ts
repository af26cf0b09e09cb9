/**
 * The memcached backend against a real memcached (binary protocol): the
 * generic contract suite, then what is particular to memcached (URIs, CAS,
 * expiry rounding, fencing counters, several servers).
 */

import { memcached } from "../../../backends/memcached/mod.ts";
import {
  Connection,
  Op,
  Status,
} from "../../../backends/memcached/protocol.ts";
import { expirySeconds } from "../../../backends/memcached/extras.ts";
import { LockLostError } from "../../../src/backend.ts";
import { encodeLockName } from "../../../src/names.ts";
import { contract } from "../../contract/suite.ts";
import { assert, assertEquals, assertRejects } from "../../helpers/assert.ts";
import {
  assertBadUri,
  fixtureOf,
  lockNamesOf,
  logHandoffs,
  measureHandoffs,
  requestsWith,
  sleep,
  stopServer,
  testCloseReleases,
  testHungServer,
  testLoadsNoClient,
  testUnreachable,
} from "../../helpers/backend_checks.ts";
import { memcachedServer } from "../../helpers/servers/memcached.ts";
import { sharedServer, startServer } from "../../helpers/servers/server.ts";

const server = await sharedServer(memcachedServer);
const uriAt = (port: number) => `memcached://127.0.0.1:${port}`;
const lockKey = (name: string) => `coolock:lock:${encodeLockName(name)}`;
const fenceKey = (name: string) => `coolock:fence:${encodeLockName(name)}`;

/** Runs `work` on a connection of its own to one server, out of band. */
async function admin<T>(
  work: (connection: Connection) => Promise<T>,
  port = server!.port,
): Promise<T> {
  const connection = await Connection.open([{ host: "127.0.0.1", port }], {
    timeoutMs: 3_000,
  });
  try {
    return await work(connection);
  } finally {
    await connection.close();
  }
}
const get = (key: string, port?: number) =>
  admin((c) => c.send(key, Op.get, key, {}), port);

const fixture = fixtureOf(server, {
  name: "memcached",
  uriAt,
  uriWithSecret: (secret, port) =>
    `memcached://coolock:${secret}@127.0.0.1:${port}?timeout=3`,
  open: memcached,
  ttl: 2,
  remove: (lock) =>
    admin(async (c) => void await c.send("", Op.delete, lockKey(lock), {})),
});

contract(fixture);

const request = requestsWith({ expiresInMs: 30_000, timeoutMs: 10_000 });
const lockName = lockNamesOf("memcached");
const withServer = { ignore: !server };

Deno.test("memcached URIs: host lists, credentials and bad values", () => {
  assertEquals(
    memcached("memcached://h1:11211,h2:11212").displayUri,
    "memcached://h1:11211,h2:11212",
  );
  assertEquals(
    memcached("memcached://app:hunter2@h1?timeout=1.5").displayUri,
    "memcached://app:***@h1?timeout=1.5",
  );
  const bad = (uri: string, pattern: RegExp) =>
    assertBadUri(memcached, uri, pattern);
  bad("memcached://u:hunter2@h1?ttl=3", /unknown query option 'ttl'/);
  bad("memcached://u:hunter2@h1?timeout=x", /bad 'timeout' value 'x'/);
  bad("memcached://u:hunter2@h1?timeout=0", /'timeout' of 0/);
  bad("memcached://u:hunter2@h1/0", /has a path '\/0'/);
  bad("memcached://u:hunter2@h1:99999", /bad port '99999'/);
  bad("memcached://u:hunter2@h1,,h2", /empty or bad host/);
  bad("memcached://u:hunter2@", /no host/);
  bad("redis://u:hunter2@h1", /must start with memcached/);
});

testLoadsNoClient({
  label: "memcached",
  module: "backends/memcached/mod.ts",
  factory: "memcached",
  uri: "memcached://127.0.0.1:1",
  use: "close",
  noNpm: true,
  expect: ["clean", "clean"],
});

Deno.test("memcached: expiry is whole seconds, rounded up, plus one tick", () => {
  assertEquals(expirySeconds(1), 2);
  assertEquals(expirySeconds(1_000), 2);
  assertEquals(expirySeconds(1_001), 3);
  assertEquals(expirySeconds(1_200), 3);
  assertEquals(expirySeconds(30_000), 31);
  const now = Date.UTC(2030, 0, 1);
  const thirtyDays = 30 * 24 * 3600 * 1000;
  assertEquals(expirySeconds(thirtyDays - 1_000, now), 30 * 24 * 3600);
  // Past 30 days memcached reads a Unix time.
  assertEquals(
    expirySeconds(thirtyDays, now),
    now / 1000 + 30 * 24 * 3600 + 1,
  );
});

Deno.test(
  "memcached: a lock lives at least its expiry, and not much more",
  withServer,
  async () => {
    const name = lockName("expiry");
    await using a = memcached(fixture!.uri);
    const claim = await a.tryAcquire(request(name, { expiresInMs: 1_200 }));
    assert(claim, "acquired");
    const acquiredAt = performance.now();
    let freeAt: number | undefined;
    while (freeAt === undefined) {
      const next = await a.tryAcquire(request(name));
      const at = performance.now();
      if (next) {
        freeAt = at;
        await next.release(0);
      } else if (at - acquiredAt > 6_000) break;
      else await sleep(25);
    }
    const lived = freeAt! - acquiredAt;
    console.log(`memcached: a 1.2 s lock lived ${lived.toFixed(0)} ms`);
    assert(lived >= 1_200, `the lock lived at least 1.2 s, not ${lived} ms`);
    assert(lived < 3_500, `the lock lived at most about 3 s, not ${lived} ms`);
  },
);

Deno.test(
  "memcached: a stale claim's renew and release leave a newer holder alone",
  withServer,
  async () => {
    const name = lockName("stale");
    await using a = memcached(fixture!.uri);
    await using b = memcached(fixture!.uri);
    const stale = await a.tryAcquire(request(name));
    assert(stale, "the first claim");
    await fixture!.remove(name);
    const owner = `test:${crypto.randomUUID()}`;
    const fresh = await b.tryAcquire(request(name, { owner }));
    assert(fresh, "a new owner took the removed lock");
    const before = await get(lockKey(name));
    await assertRejects(
      () => stale.renew(60_000, AbortSignal.timeout(5_000)),
      LockLostError,
    );
    await stale.release(0);
    await stale.release(5_000);
    const after = await get(lockKey(name));
    assertEquals(new TextDecoder().decode(after.value), owner);
    assertEquals(after.cas, before.cas, "the newer holder's item is untouched");
    await fresh.renew(30_000, AbortSignal.timeout(5_000));
    await fresh.release(0);
    assertEquals((await get(lockKey(name))).status, Status.notFound);
  },
);

Deno.test(
  "memcached: a renewal crossing the release does not keep the lock",
  withServer,
  async () => {
    await using a = memcached(fixture!.uri);
    for (let i = 0; i < 5; i++) {
      const name = lockName("cross");
      const claim = await a.tryAcquire(request(name));
      assert(claim, "acquired");
      await Promise.allSettled([
        claim.renew(30_000, AbortSignal.timeout(5_000)),
        claim.release(0),
      ]);
      assertEquals((await get(lockKey(name))).status, Status.notFound);
    }
  },
);

Deno.test(
  "memcached: guard time on release keeps the item for what is left",
  withServer,
  async () => {
    const name = lockName("guard");
    await using a = memcached(fixture!.uri);
    const claim = await a.tryAcquire(request(name));
    assert(claim, "acquired");
    await claim.release(1_000);
    const releasedAt = performance.now();
    assertEquals(await a.tryAcquire(request(name)), undefined);
    let next;
    while (!(next = await a.tryAcquire(request(name)))) await sleep(50);
    const held = performance.now() - releasedAt;
    assert(held >= 1_000 && held < 3_500, `held ${held} ms for a 1 s guard`);
    await next.release(0);
  },
);

Deno.test(
  "memcached: fencing tokens increase across instances; the counter outlives the lock",
  withServer,
  async () => {
    const name = lockName("fence");
    await using a = memcached(fixture!.uri);
    await using b = memcached(fixture!.uri);
    const tokens: bigint[] = [];
    for (let i = 0; i < 6; i++) {
      const claim = await (i % 2 ? a : b).tryAcquire(request(name));
      assert(claim, `acquisition ${i}`);
      tokens.push(claim.token);
      await claim.release(0);
    }
    for (let i = 1; i < tokens.length; i++) {
      assertEquals(
        tokens[i],
        tokens[i - 1] + 1n,
        `tokens ${tokens.join(", ")}`,
      );
    }
    const expiring = await a.tryAcquire(request(name, { expiresInMs: 1 }));
    assert(expiring, "a short lock");
    await sleep(2_100);
    assertEquals((await get(lockKey(name))).status, Status.notFound);
    assertEquals((await get(fenceKey(name))).status, Status.ok);
    const after = await b.tryAcquire(request(name));
    assertEquals(after?.token, expiring.token + 1n);
    await after?.release(0);
  },
);

Deno.test(
  "memcached: a lost counter starts again above the old tokens",
  withServer,
  async () => {
    const name = lockName("evicted");
    await using a = memcached(fixture!.uri);
    const first = await a.tryAcquire(request(name));
    assert(first, "acquired");
    await first.release(0);
    await admin((c) => c.send("", Op.delete, fenceKey(name), {}));
    await sleep(5);
    const second = await a.tryAcquire(request(name));
    assert(second && second.token > first.token, "the token still increases");
    await second.release(0);
  },
);

Deno.test(
  "memcached: long names are hashed into keys that stay distinct",
  withServer,
  async () => {
    await using a = memcached(fixture!.uri);
    const base = "🔒".repeat(199);
    const names = [`${base}a`, `${base}b`];
    const claims = [];
    for (const name of names) {
      const claim = await a.tryAcquire(request(name));
      assert(claim, `'${name.slice(-1)}' acquired`);
      claims.push(claim);
    }
    for (const name of names) {
      assertEquals(await a.tryAcquire(request(name)), undefined);
    }
    for (const claim of claims) await claim.release(0);
  },
);

Deno.test(
  "memcached: with several servers a name maps to one of them",
  withServer,
  async () => {
    const other = await startServer(memcachedServer);
    try {
      const hosts = `127.0.0.1:${server!.port},127.0.0.1:${other.port}`;
      await using a = memcached(`memcached://${hosts}`);
      await using b = memcached(`memcached://${hosts}`);
      const placed = new Set<number>();
      for (let i = 0; i < 8; i++) {
        const name = lockName("spread");
        const claim = await a.tryAcquire(request(name));
        assert(claim, "acquired");
        assertEquals(await b.tryAcquire(request(name)), undefined);
        const found = [];
        for (const port of [server!.port, other.port]) {
          const lock = await get(lockKey(name), port);
          const fence = await get(fenceKey(name), port);
          if (lock.status === Status.ok) found.push(port);
          assertEquals(lock.status, fence.status, "lock and counter together");
        }
        assertEquals(found.length, 1, "the lock is on exactly one server");
        placed.add(found[0]);
        await claim.release(0);
      }
      assertEquals(placed.size, 2, "names spread over both servers");
    } finally {
      await stopServer(other);
    }
  },
);

testUnreachable({
  label: "memcached",
  open: memcached,
  uriAt: (port) => `memcached://u:hunter2@127.0.0.1:${port}`,
  request,
  withinMs: 2_000,
  secret: "hunter2",
});

testHungServer({
  label: "memcached",
  recipe: memcachedServer,
  open: memcached,
  uriAt: (port) => `${uriAt(port)}?timeout=1`,
  request,
  renew: { expiresInMs: 30_000, signalMs: 500 },
  // The call timeout ends both calls.
  totalWithinMs: 3_000,
  recovers: true,
  ignore: !server,
});

Deno.test(
  "memcached: a waiter's watch sees a release within a poll",
  withServer,
  async () => {
    await using a = memcached(fixture!.uri);
    await using b = memcached(fixture!.uri);
    const handoffs = await measureHandoffs({
      rounds: 3,
      pair: () => [a, b],
      lock: () => lockName("watch"),
      waitTimeout: 20,
      // Long enough for the lifecycle's own polls to be half a second apart.
      settle: () => sleep(2_500),
    });
    logHandoffs("memcached: polled", handoffs);
    const mean = handoffs.reduce((x, y) => x + y) / handoffs.length;
    assert(
      mean < 200,
      `the watch polls every 50 ms, but handoffs took ${mean} ms`,
    );
  },
);

testCloseReleases({
  label: "memcached",
  open: () => memcached(fixture!.uri),
  request,
  lockName,
  keys: async (name) =>
    (await get(lockKey(name))).status === Status.notFound ? 0 : 1,
  rejectsAfterClose: true,
  ignore: !server,
});
