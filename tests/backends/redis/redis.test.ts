/**
 * What is particular to the Redis backend, against a real redis-server:
 * URIs and the inputs a server refuses (a database it lacks, a port that
 * is not Redis), the key layout and stored value (compatible with the
 * previous release for a mutex), semaphore keys that never collide with
 * another lock's, pub/sub wake-ups, TLS and Sentinel. The generic cases
 * are in tests/contract/redis.test.ts.
 */

import { redis } from "../../../backends/redis/mod.ts";
import { BackendUnavailableError } from "../../../src/backend.ts";
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
import { oneLine, runCli } from "../../helpers/cli.ts";
import { memcachedServer } from "../../helpers/servers/memcached.ts";
import {
  redisSentinel,
  redisServer,
  redisTlsServer,
} from "../../helpers/servers/redis.ts";
import {
  available,
  freePort,
  sharedServer,
  startServer,
  type TestServer,
} from "../../helpers/servers/server.ts";
import { admin, settle } from "./fixture.ts";

const server = await sharedServer(redisServer);
const withServer = { ignore: !server };
const uri = server ? `redis://127.0.0.1:${server.port}/0` : "";
if (server) {
  await using backend = redis(uri);
  await settle(backend);
}
let unique = 0;
const lockName = (tag: string) => `redis-${tag}-${Date.now()}-${unique++}`;
const get = (key: string) => admin(server!.port, (c) => c.get(key));

/** Kills a server of the test's own; a timer keeps the event loop alive meanwhile. */
async function stop(own: TestServer): Promise<void> {
  const keepAlive = setInterval(() => {}, 50);
  try {
    await own.kill();
  } finally {
    clearInterval(keepAlive);
  }
}

Deno.test("redis URIs: database, TLS files, Sentinel and bad values", () => {
  assertEquals(redis("redis://db").displayUri, "redis://db");
  assertEquals(redis("rediss://db:6380/15").scheme, "rediss");
  assertEquals(
    redis("redis://app:hunter2@db/2").displayUri,
    "redis://app:***@db/2",
  );
  redis("redis://s1:26379,s2:26379/0?sentinel=mymaster&sentinel_password=x");
  const bad = (text: string, pattern: RegExp) => {
    const error = assertThrows(() => redis(text), TypeError);
    assertMatch(error.message, pattern);
    assert(!error.message.includes("hunter2"), "the password is hidden");
  };
  bad("redis://:hunter2@db/x", /bad database 'x'/);
  bad("redis://:hunter2@db/1/2", /bad database '1\/2'/);
  bad("redis://:hunter2@db/-1", /bad database '-1'/);
  bad("redis://:hunter2@db/0?tls=1", /unknown query option 'tls'/);
  bad("redis://:hunter2@db:0", /bad port '0'/);
  bad("redis://:hunter2@h1,h2", /several hosts.*\?sentinel=/);
  bad("redis://:hunter2@h1?sentinel=", /empty 'sentinel'/);
  bad("redis://:hunter2@db?sentinel_password=x", /without 'sentinel'/);
  bad("redis://:hunter2@db?ca=/etc/hostname", /'ca' file but TLS needs/);
  bad("rediss://:hunter2@db?ca=/nonexistent/ca.pem", /'ca' file .* can't/);
  bad("redis://:hunter2@db?connect_timeout=soon", /bad 'connect_timeout'/);
  bad("http://:hunter2@db", /must start with redis/);
  bad("redis://:hunter2@", /no host/);
});

Deno.test("redis: the Deno permissions it needs are its hosts, its TLS files and env", () => {
  assertEquals(redis("redis://db:6380/1").permissions, [
    { name: "net", host: "db:6380" },
    { name: "env" },
  ]);
  assertEquals(
    redis("redis://s1:26379,s2/0?sentinel=m").permissions?.[0],
    { name: "net" },
    "Sentinels name the master at connect: any host",
  );
});

Deno.test(
  "redis: a database the server lacks is a RangeError naming it, and exit 64 from the CLI",
  withServer,
  async () => {
    const at = `redis://:s3cret@127.0.0.1:${server!.port}/99`;
    await using backend = redis(at);
    const error = await assertRejects(
      () => acquire({ backend, lock: lockName("db99"), ttl: 2, guardTime: 0 }),
      RangeError,
    );
    assertEquals(
      error.message,
      `Redis URI 'redis://:***@127.0.0.1:${
        server!.port
      }/99' names database 99, which does not exist on this server (it has 16: use /0 to /15)`,
    );
    assertEquals(
      await admin(server!.port, (c) => c.keys("coolock:lock:redis-db99-*")),
      [],
      "nothing landed in database 0",
    );
    const result = await runCli([
      "--log-file",
      "-",
      "-b",
      at,
      "-l",
      lockName("db99"),
      "--",
      "echo",
      "must-not-run",
    ]);
    assertEquals(result.code, 64, result.stderr);
    assertMatch(oneLine(result.stderr), /database 99, which does not exist/);
    assert(!result.stderr.includes("s3cret"), "the password is hidden");
    assert(!result.stdout.includes("must-not-run"), "the command never ran");
  },
);

Deno.test(
  "redis: a URI pointed at a memcached port says it is not a Redis server",
  { ignore: !available(memcachedServer) },
  async () => {
    const other = await sharedServer(memcachedServer);
    await using backend = redis(`redis://127.0.0.1:${other!.port}/0`);
    const error = await assertRejects(
      () => backend.tryAcquire(request(lockName("not-redis"))),
      BackendUnavailableError,
    );
    assertEquals(
      error.message,
      `Backend 'redis://127.0.0.1:${other!.port}/0' is unavailable: 127.0.0.1:${
        other!.port
      } is not a Redis server`,
    );
  },
);

Deno.test(
  "redis: a mutex is the previous release's key, valued with who holds it",
  withServer,
  async () => {
    const name = lockName("value");
    await using a = redis(uri);
    const owner = `test:${crypto.randomUUID()}`;
    const claim = await a.tryAcquire(
      request(name, { owner, node: "n1", guardMs: 4_000 }),
    );
    assert(claim, "acquired");
    const [value, serverTime] = await admin(
      server!.port,
      (c) => Promise.all([c.get(`coolock:lock:${name}`), c.time()]),
    );
    const stored = JSON.parse(value!);
    assertEquals(
      { ...stored, since: 0 },
      {
        owner,
        node: "n1",
        limit: 1,
        guard: 4_000,
        since: 0,
        token: String(claim.token),
      },
    );
    const nowMs = Number(serverTime[0]) * 1000;
    assert(
      Math.abs(stored.since - nowMs) < 2_000,
      "since is the server's clock",
    );
    await claim.release(0);
    assertEquals(await get(`coolock:lock:${name}`), null);
    assertEquals(
      await get(`coolock:limit:${name}`),
      null,
      "the limit goes too",
    );
  },
);

Deno.test(
  "redis: a key of the previous release (only an owner) excludes, and status reads it",
  withServer,
  async () => {
    const name = lockName("compat");
    await admin(
      server!.port,
      (c) => c.set(`coolock:lock:${name}`, "old-node:123:abc", "PX", 30_000),
    );
    await using a = redis(uri);
    assertEquals(await a.tryAcquire(request(name)), undefined);
    const [status] = await lockStatus(a, name);
    assertEquals(status.holders.length, 1);
    assertEquals(status.holders[0].owner, "old-node:123:abc");
    assertEquals(status.holders[0].state, "held");
    await forceRelease(a, name);
  },
);

Deno.test(
  "redis: guard time on release rewrites the value as released and keeps the key for what is left",
  withServer,
  async () => {
    const name = lockName("guard");
    await using a = redis(uri);
    const claim = await a.tryAcquire(request(name));
    assert(claim, "acquired");
    await claim.release(1_500);
    const [value, ttl] = await admin(
      server!.port,
      (c) =>
        Promise.all([
          c.get(`coolock:lock:${name}`),
          c.pttl(`coolock:lock:${name}`),
        ]),
    );
    assert(ttl > 1_000 && ttl <= 1_500, `held for the guard time, ${ttl} ms`);
    assert(typeof JSON.parse(value!).released === "number", "marked released");
    assertEquals(await a.tryAcquire(request(name)), undefined);
    await sleep(1_600);
    const next = await a.tryAcquire(request(name));
    assert(next, "free after the guard time");
    await next.release(0);
  },
);

Deno.test(
  "redis: semaphore slots are keys of their own, never another lock's, with the limit stored beside them",
  withServer,
  async () => {
    const name = lockName("slots");
    await using a = redis(uri);
    const claims = [];
    for (let i = 0; i < 3; i++) {
      const claim = await a.tryAcquire(request(name, { limit: 3 }));
      assert(claim, `slot ${i}`);
      claims.push(claim);
    }
    assertEquals(claims.map((c) => c.slot), [0, 1, 2]);
    assertEquals(await a.tryAcquire(request(name, { limit: 3 })), undefined);
    const keys = await admin(
      server!.port,
      (c) =>
        Promise.all([
          c.exists(`coolock:lock:${name}`),
          c.exists(`coolock:slot:1:${name}`),
          c.exists(`coolock:slot:2:${name}`),
          c.get(`coolock:limit:${name}`),
          c.pttl(`coolock:limit:${name}`),
        ]),
    );
    assertEquals(keys.slice(0, 4), [1, 1, 1, "3"]);
    assert(Number(keys[4]) > 50_000, "the limit lives as long as the slots");
    // Lock `<name>:1` is its own lock, not slot 1 of `<name>`.
    const other = await a.tryAcquire(request(`${name}:1`));
    assert(other, "a lock named like a slot is free");
    const removed = await forceRelease(a, name);
    assertEquals(removed.map((r) => r.what), ["lease", "lease", "lease"]);
    assert(
      (await get(`coolock:lock:${name}:1`)) !== null,
      "forcing one lock leaves the other alone",
    );
    assertEquals(await get(`coolock:limit:${name}`), null);
    const listed = await lockStatus(a, undefined);
    assert(listed.some((s) => s.name === `${name}:1`), "listed by SCAN");
    assert(!listed.some((s) => s.name === name), "a forced lock is free");
    await other.release(0);
  },
);

Deno.test(
  "redis: status lists a lock held only in a slot above 0",
  withServer,
  async () => {
    const name = lockName("list-slot");
    await using a = redis(uri);
    const first = await a.tryAcquire(request(name, { limit: 2 }));
    const second = await a.tryAcquire(request(name, { limit: 2 }));
    assert(first && second, "both slots");
    await first.release(0);
    const all = await lockStatus(a, undefined);
    const mine = all.find((s) => s.name === name);
    assert(mine, "listed");
    assertEquals(mine.holders.map((h) => h.slot), [1]);
    assertEquals(mine.limit, 2);
    await second.release(0);
  },
);

Deno.test(
  "redis: lock names are Redis key bytes, unescaped",
  withServer,
  async () => {
    const name = `${lockName("bytes")} 'x"; *?[] /%2F 🔒`;
    await using a = redis(uri);
    const owner = `test:${crypto.randomUUID()}`;
    const claim = await a.tryAcquire(request(name, { owner }));
    assert(claim, "acquired");
    const value = await get(`coolock:lock:${name}`);
    assertEquals(JSON.parse(value!).owner, owner);
    const [status] = await lockStatus(a, name);
    assertEquals(status.holders[0].owner, owner);
    await claim.release(0);
    assertEquals(await get(`coolock:lock:${name}`), null);
  },
);

Deno.test(
  "redis: a release wakes waiters by pub/sub on one shared connection",
  withServer,
  async () => {
    const names = [lockName("wake"), lockName("wake"), lockName("wake")];
    await using a = redis(uri);
    await using b = redis(uri);
    const held = await Promise.all(
      names.map((name) => acquire({ backend: a, lock: name, guardTime: 0 })),
    );
    const waiters = names.map((name) =>
      acquire({ backend: b, lock: name, guardTime: 0, waitTimeout: 10 })
    );
    await sleep(400);
    const clients = await admin(
      server!.port,
      (c) => c.client("LIST"),
    ) as string;
    const ours = clients.split("\n").filter((line) =>
      line.includes("name=coolock")
    );
    // a's main connection, and b's main and subscriber connections.
    assertEquals(ours.length, 3, `connections:\n${ours.join("\n")}`);
    const handoffs: number[] = [];
    for (let i = 0; i < names.length; i++) {
      const releasedAt = performance.now();
      await held[i].release();
      const next = await waiters[i];
      handoffs.push(performance.now() - releasedAt);
      assert(next.token > held[i].token, "the waiter's token is newer");
      await next.release();
    }
    console.log(
      `redis: pub/sub handoff ${
        handoffs.map((ms) => ms.toFixed(1)).join(", ")
      } ms`,
    );
    // Without the notification the waiter polls about twice a second.
    for (const ms of handoffs) assert(ms < 200, `handoff took ${ms} ms`);
  },
);

Deno.test(
  "redis: waitForChange sees a release that came before SUBSCRIBE",
  withServer,
  async () => {
    const name = lockName("early");
    await using a = redis(uri);
    const started = performance.now();
    await a.waitForChange!(request(name), AbortSignal.timeout(5_000));
    const ms = performance.now() - started;
    assert(ms < 1_000, `a free lock ends the wait at once, not after ${ms} ms`);
  },
);

const tlsReady = available(redisTlsServer);
Deno.test("redis: rediss:// with ca, cert and key files", {
  ignore: !tlsReady,
}, async () => {
  const tls = await startServer(redisTlsServer);
  try {
    const base = `rediss://127.0.0.1:${tls.port}/0`;
    const files =
      `ca=${tls.dir}/ca.crt&cert=${tls.dir}/client.crt&key=${tls.dir}/client.key`;
    await using good = redis(`${base}?${files}`);
    assertEquals(good.permissions?.filter((p) => p.name === "read").length, 3);
    await settle(good);
    const claim = await good.tryAcquire(request(lockName("tls")));
    assert(claim, "acquired over TLS with a client certificate");
    await claim.release(0);
    await using noCert = redis(
      `${base}?ca=${tls.dir}/ca.crt&connect_timeout=2`,
    );
    await assertRejects(
      () => noCert.tryAcquire(request(lockName("tls"))),
      BackendUnavailableError,
    );
    await using noCa = redis(`${base}?connect_timeout=2`);
    const error = await assertRejects(
      () => noCa.tryAcquire(request(lockName("tls"))),
      BackendUnavailableError,
    );
    assertMatch(error.message, /certificate/i);
  } finally {
    await stop(tls);
  }
});

Deno.test(
  "redis: ?sentinel= finds the master through a Sentinel, and check warns about failover",
  withServer,
  async () => {
    const sentinel = await startServer(redisSentinel(server!.port));
    try {
      const down = freePort();
      await using backend = redis(
        `redis://127.0.0.1:${down},127.0.0.1:${sentinel.port}/0?sentinel=mymaster`,
      );
      const name = lockName("sentinel");
      const claim = await backend.tryAcquire(request(name));
      assert(claim, "acquired through the Sentinel");
      assert((await get(`coolock:lock:${name}`)) !== null, "on the master");
      await claim.release(0);
      const results = await backend.check!(AbortSignal.timeout(10_000));
      const replication = results.find((r) => r.name === "replication");
      assertEquals(replication?.status, "warn");
      assertMatch(replication!.detail, /Sentinel failover can lose a lock/);
      await using wrong = redis(
        `redis://127.0.0.1:${sentinel.port}/0?sentinel=nosuchmaster`,
      );
      await assertRejects(
        () => wrong.tryAcquire(request(name)),
        BackendUnavailableError,
      );
    } finally {
      await stop(sentinel);
    }
  },
);
