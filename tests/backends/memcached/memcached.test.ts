/**
 * What is particular to the memcached backend, against a real memcached
 * (binary protocol): URIs and servers that are not memcached, whole-second
 * expiry, CAS, the key layout and stored value, fencing counters, semaphore
 * slots, long names and several servers. The generic cases are in
 * tests/contract/memcached.test.ts.
 */

import { keysOf } from "../../../backends/memcached/keys.ts";
import { memcached } from "../../../backends/memcached/mod.ts";
import {
  expirySeconds,
  Op,
  Status,
} from "../../../backends/memcached/protocol.ts";
import {
  BackendUnavailableError,
  LockLostError,
} from "../../../src/backend.ts";
import { acquire } from "../../../src/lease.ts";
import { forceRelease, lockStatus } from "../../../src/operate.ts";
import { request, sleep } from "../../contract/common.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../../helpers/assert.ts";
import {
  memcachedServer,
  memcachedServerWith,
} from "../../helpers/servers/memcached.ts";
import { redisServer } from "../../helpers/servers/redis.ts";
import {
  available,
  sharedServer,
  startServer,
  type TestServer,
} from "../../helpers/servers/server.ts";
import { admin, settle } from "./fixture.ts";

const server = await sharedServer(memcachedServer);
const withServer = { ignore: !server };
const uri = server ? `memcached://127.0.0.1:${server.port}` : "";
if (server) {
  await using backend = memcached(uri);
  await settle(backend);
}
let unique = 0;
const lockName = (tag: string) => `memcached-${tag}-${Date.now()}-${unique++}`;
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** GETs a key from the server at `port` (default: the shared one). */
async function get(
  name: string,
  key: (k: Awaited<ReturnType<typeof keysOf>>) => string,
  port = server!.port,
) {
  const keys = await keysOf(name);
  return admin(port, (c) => c.send(keys.route, Op.get, key(keys), {}));
}

/** Kills a server of the test's own; a timer keeps the event loop alive meanwhile. */
async function stop(own: TestServer): Promise<void> {
  const keepAlive = setInterval(() => {}, 50);
  try {
    await own.kill();
  } finally {
    clearInterval(keepAlive);
  }
}

Deno.test("memcached URIs: host lists, credentials and bad values", () => {
  assertEquals(
    memcached("memcached://h1:11211,h2:11212").displayUri,
    "memcached://h1:11211,h2:11212",
  );
  assertEquals(
    memcached("memcached://app:hunter2@h1?timeout=1.5").displayUri,
    "memcached://app:***@h1?timeout=1.5",
  );
  assertEquals(memcached("memcached://h1:11211,h2").permissions, [
    { name: "net", host: "h1:11211" },
    { name: "net", host: "h2:11211" },
  ]);
  const bad = (text: string, pattern: RegExp) => {
    const error = assertThrows(() => memcached(text), TypeError);
    assertMatch(error.message, pattern);
    assert(!error.message.includes("hunter2"), "the password is hidden");
  };
  bad("memcached://u:hunter2@h1?ttl=3", /unknown query option 'ttl'/);
  bad("memcached://u:hunter2@h1?timeout=x", /bad 'timeout' value 'x'/);
  bad("memcached://u:hunter2@h1?timeout=0", /'timeout' of 0/);
  bad("memcached://u:hunter2@h1/0", /has a path '\/0'/);
  bad("memcached://u:hunter2@h1:99999", /bad port '99999'/);
  bad("memcached://u:hunter2@h1,,h2", /empty or bad host/);
  bad("memcached://u:hunter2@", /no host/);
  bad("redis://u:hunter2@h1", /must start with memcached/);
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
  "memcached: a URI pointed at a Redis port, or at a text-only memcached, says so at once",
  { ignore: !available(redisServer) || !server },
  async () => {
    const redisAt = (await sharedServer(redisServer))!;
    const ascii = await startServer(memcachedServerWith(["-B", "ascii"]));
    try {
      for (const port of [redisAt.port, ascii.port]) {
        await using backend = memcached(`memcached://127.0.0.1:${port}`);
        const started = performance.now();
        const error = await assertRejects(
          () => backend.tryAcquire(request(lockName("not-memcached"))),
          BackendUnavailableError,
        );
        assertEquals(
          error.message,
          `Backend 'memcached://127.0.0.1:${port}' is unavailable: 127.0.0.1:${port} is not a memcached server that speaks the binary protocol`,
        );
        const ms = performance.now() - started;
        assert(ms < 1_000, `said after ${ms.toFixed(0)} ms, not a timeout`);
      }
    } finally {
      await stop(ascii);
    }
  },
);

Deno.test(
  "memcached: a lock lives at least its expiry, and not much more",
  withServer,
  async () => {
    const name = lockName("expiry");
    await using a = memcached(uri);
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
  "memcached: a mutex is the previous release's item, valued with who holds it and until when",
  withServer,
  async () => {
    const name = lockName("value");
    await using a = memcached(uri);
    const owner = `test:${crypto.randomUUID()}`;
    const claim = await a.tryAcquire(
      request(name, { owner, node: "n1", guardMs: 4_000, expiresInMs: 30_000 }),
    );
    assert(claim, "acquired");
    const item = await get(name, (k) => `coolock:lock:${k.route}`);
    const stored = JSON.parse(decode(item.value));
    assertEquals(
      { ...stored, since: 0, until: 0 },
      {
        owner,
        node: "n1",
        limit: 1,
        guard: 4_000,
        since: 0,
        token: String(claim.token),
        until: 0,
      },
    );
    assert(Math.abs(stored.since - Date.now()) < 2_000, "since is about now");
    assert(
      Math.abs(stored.until - stored.since - 30_000) < 1_500,
      "until is the lease's end",
    );
    const limit = await get(name, (k) => k.limit);
    assertEquals(decode(limit.value), "1", "the limit is stored");
    await claim.release(0);
    assertEquals(
      (await get(name, (k) => k.lock)).status,
      Status.notFound,
    );
  },
);

Deno.test(
  "memcached: a renewal crossing the release does not keep the lock",
  withServer,
  async () => {
    await using a = memcached(uri);
    for (let i = 0; i < 5; i++) {
      const name = lockName("cross");
      const claim = await a.tryAcquire(request(name));
      assert(claim, "acquired");
      await Promise.allSettled([
        claim.renew(30_000, AbortSignal.timeout(5_000)),
        claim.release(0),
      ]);
      assertEquals((await get(name, (k) => k.lock)).status, Status.notFound);
    }
  },
);

Deno.test(
  "memcached: a stale renew is refused and leaves the newer holder's item untouched",
  withServer,
  async () => {
    const name = lockName("stale");
    await using a = memcached(uri);
    await using b = memcached(uri);
    const stale = await a.tryAcquire(request(name));
    assert(stale, "the first claim");
    const keys = await keysOf(name);
    await admin(
      server!.port,
      (c) => c.send(keys.route, Op.delete, keys.lock, {}),
    );
    const fresh = await b.tryAcquire(request(name));
    assert(fresh, "a new owner took the removed lock");
    const before = await get(name, (k) => k.lock);
    await assertRejects(
      () => stale.renew(60_000, AbortSignal.timeout(5_000)),
      LockLostError,
    );
    assert(stale.lost?.aborted, "the stale claim's lost signal fired");
    const after = await get(name, (k) => k.lock);
    assertEquals(after.cas, before.cas, "the newer holder's item is untouched");
    await fresh.renew(30_000, AbortSignal.timeout(5_000));
    await fresh.release(0);
  },
);

Deno.test(
  "memcached: guard time on release marks the item released and keeps it for what is left",
  withServer,
  async () => {
    const name = lockName("guard");
    await using a = memcached(uri);
    const claim = await a.tryAcquire(request(name));
    assert(claim, "acquired");
    await claim.release(1_000);
    const releasedAt = performance.now();
    const item = await get(name, (k) => k.lock);
    assert(typeof JSON.parse(decode(item.value)).released === "number");
    assertEquals(await a.tryAcquire(request(name)), undefined);
    let next;
    while (!(next = await a.tryAcquire(request(name)))) await sleep(50);
    const held = performance.now() - releasedAt;
    assert(held >= 1_000 && held < 3_500, `held ${held} ms for a 1 s guard`);
    await next.release(0);
  },
);

Deno.test(
  "memcached: tokens count by one; the counter outlives the lock; a lost counter starts from the server's clock",
  withServer,
  async () => {
    const name = lockName("fence");
    await using a = memcached(uri);
    await using b = memcached(uri);
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
    const seconds = BigInt(Math.floor(Date.now() / 1000));
    assert(
      tokens[0] / 1_000_000n >= seconds - 5n &&
        tokens[0] / 1_000_000n <= seconds + 1n,
      `a new counter starts at the server's time in µs, not ${tokens[0]}`,
    );
    const expiring = await a.tryAcquire(request(name, { expiresInMs: 1 }));
    assert(expiring, "a short lock");
    await sleep(2_100);
    assertEquals((await get(name, (k) => k.lock)).status, Status.notFound);
    assertEquals((await get(name, (k) => k.fence)).status, Status.ok);
    const after = await b.tryAcquire(request(name));
    assertEquals(after?.token, expiring.token + 1n);
    await after?.release(0);
    // An eviction, a flush or a restart loses the counter.
    const keys = await keysOf(name);
    await admin(
      server!.port,
      (c) => c.send(keys.route, Op.delete, keys.fence, {}),
    );
    await sleep(1_100);
    const reborn = await a.tryAcquire(request(name));
    assert(
      reborn && reborn.token > after!.token,
      `token ${reborn?.token} after ${after?.token}`,
    );
    await reborn.release(0);
  },
);

Deno.test(
  "memcached: semaphore slots are items of their own, never another lock's; force release frees one lock only",
  withServer,
  async () => {
    const name = lockName("slots");
    await using a = memcached(uri);
    const claims = [];
    for (let i = 0; i < 3; i++) {
      const claim = await a.tryAcquire(request(name, { limit: 3 }));
      assert(claim, `slot ${i}`);
      claims.push(claim);
    }
    assertEquals(claims.map((c) => c.slot), [0, 1, 2]);
    assertEquals(await a.tryAcquire(request(name, { limit: 3 })), undefined);
    const keys = await keysOf(name);
    assertEquals(keys.slot(1), `coolock:slot:1:${keys.route}`);
    assertEquals((await get(name, (k) => k.slot(2))).status, Status.ok);
    const other = await a.tryAcquire(request(`${name}:1`));
    assert(other, "a lock named like a slot is free");
    const [status] = await lockStatus(a, name);
    assertEquals(status.limit, 3);
    assertEquals(status.holders.map((h) => h.slot), [0, 1, 2]);
    const removed = await forceRelease(a, name);
    assertEquals(removed.map((r) => r.what), ["lease", "lease", "lease"]);
    const [otherStatus] = await lockStatus(a, `${name}:1`);
    assertEquals(otherStatus.holders.length, 1, "the other lock is untouched");
    assertEquals((await get(name, (k) => k.limit)).status, Status.notFound);
    await other.release(0);
  },
);

Deno.test(
  "memcached: long names are hashed into keys that stay distinct, slots included",
  withServer,
  async () => {
    await using a = memcached(uri);
    const base = "🔒".repeat(199);
    const names = [`${base}a`, `${base}b`];
    const claims = [];
    for (const name of names) {
      for (let i = 0; i < 2; i++) {
        const claim = await a.tryAcquire(request(name, { limit: 2 }));
        assert(claim, `'${name.slice(-1)}' slot ${i} acquired`);
        claims.push(claim);
      }
    }
    for (const name of names) {
      assertEquals(await a.tryAcquire(request(name, { limit: 2 })), undefined);
      const keys = await keysOf(name);
      assert(keys.slot(999).length <= 250, "every key fits");
    }
    for (const claim of claims) await claim.release(0);
  },
);

Deno.test(
  "memcached: with several servers a name maps to one of them, all its items together",
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
        let claim;
        // A fresh server grants nothing for a moment (the restart rule).
        while (
          !(claim = await a.tryAcquire(
            request(name, { expiresInMs: 1_000, limit: 2 }),
          ))
        ) {
          await sleep(100);
        }
        assertEquals(
          (await b.tryAcquire(request(name, { limit: 2 })))?.slot,
          1,
        );
        const found = [];
        for (const port of [server!.port, other.port]) {
          const statuses = await Promise.all([
            get(name, (k) => k.lock, port),
            get(name, (k) => k.slot(1), port),
            get(name, (k) => k.fence, port),
            get(name, (k) => k.limit, port),
            get(name, () => "coolock:epoch", port),
          ]).then((replies) => replies.map((r) => r.status));
          if (statuses[0] === Status.ok) {
            found.push(port);
            assertEquals(statuses, [0, 0, 0, 0, 0], "all on one server");
          }
        }
        assertEquals(found.length, 1, "the lock is on exactly one server");
        placed.add(found[0]);
        await claim.release(0);
      }
      assertEquals(placed.size, 2, "names spread over both servers");
    } finally {
      await stop(other);
    }
  },
);

Deno.test(
  "memcached: a waiter polls and sees a release within about a poll",
  withServer,
  async () => {
    await using a = memcached(uri);
    await using b = memcached(uri);
    const handoffs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const lock = lockName("watch");
      const held = await acquire({ backend: a, lock, guardTime: 0 });
      const waiter = acquire({
        backend: b,
        lock,
        guardTime: 0,
        waitTimeout: 20,
      });
      // Long enough for the lifecycle's own polls to be half a second apart.
      await sleep(2_500);
      const releasedAt = performance.now();
      await held.release();
      const next = await waiter;
      handoffs.push(performance.now() - releasedAt);
      await next.release();
    }
    console.log(
      `memcached: polled handoff ${
        handoffs.map((ms) => ms.toFixed(1)).join(", ")
      } ms`,
    );
    const mean = handoffs.reduce((x, y) => x + y) / handoffs.length;
    assert(
      mean < 200,
      `the watch polls every 50 ms, but handoffs took ${mean} ms`,
    );
  },
);
