/**
 * The Redis backend against a real redis-server: the generic contract suite,
 * then what is particular to Redis (URIs, the Lua compare-and-set, fencing,
 * pub/sub wake-ups, TLS and Sentinel).
 */

import { Redis } from "npm:ioredis@6.0.0";
import { redis } from "../../../backends/redis/mod.ts";
import {
  BackendUnavailableError,
  LockLostError,
} from "../../../src/backend.ts";
import { acquire } from "../../../src/lease.ts";
import { contract } from "../../contract/suite.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "../../helpers/assert.ts";
import {
  assertBadUri,
  fixtureOf,
  lockNamesOf,
  requestsWith,
  sleep,
  stopServer,
  testCloseReleases,
  testHungServer,
  testLoadsNoClient,
  testUnreachable,
} from "../../helpers/backend_checks.ts";
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
} from "../../helpers/servers/server.ts";

const server = await sharedServer(redisServer);
const uriAt = (port: number) => `redis://127.0.0.1:${port}/0`;

/** Runs `work` on a client of its own, out of band. */
async function admin<T>(work: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis({ port: server!.port, lazyConnect: true });
  await client.connect();
  try {
    return await work(client);
  } finally {
    client.disconnect();
  }
}

const fixture = fixtureOf(server, {
  name: "redis",
  uriAt,
  uriWithSecret: (secret, port) =>
    `redis://coolock:${secret}@127.0.0.1:${port}/0?connect_timeout=3`,
  open: redis,
  ttl: 2,
  remove: (lock) =>
    admin(async (client) => void await client.del(`coolock:lock:${lock}`)),
});

contract(fixture);

const request = requestsWith({ expiresInMs: 30_000, timeoutMs: 10_000 });
const lockName = lockNamesOf("redis");
const withServer = { ignore: !server };

Deno.test("redis URIs: database, TLS files, Sentinel and bad values", () => {
  assertEquals(redis("redis://db").displayUri, "redis://db");
  assertEquals(redis("rediss://db:6380/15").scheme, "rediss");
  assertEquals(
    redis("redis://app:hunter2@db/2").displayUri,
    "redis://app:***@db/2",
  );
  redis("redis://s1:26379,s2:26379/0?sentinel=mymaster&sentinel_password=x");
  const bad = (uri: string, pattern: RegExp) =>
    assertBadUri(redis, uri, pattern);
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

testLoadsNoClient({
  label: "redis",
  module: "backends/redis/mod.ts",
  factory: "redis",
  uri: "redis://127.0.0.1:1",
  use: "close",
  noNpm: true,
  expect: ["clean", "clean"],
});

Deno.test(
  "redis: a stale claim's renew and release leave a newer holder alone",
  withServer,
  async () => {
    const name = lockName("stale");
    await using a = redis(fixture!.uri);
    await using b = redis(fixture!.uri);
    const stale = await a.tryAcquire(request(name, { expiresInMs: 300 }));
    assert(stale, "the first claim");
    await sleep(400);
    const fresh = await b.tryAcquire(request(name));
    assert(fresh, "the lock expired and a new owner took it");
    await assertRejects(
      () => stale.renew(60_000, AbortSignal.timeout(5_000)),
      LockLostError,
    );
    assert(stale.lost?.aborted, "the stale claim's lost signal fired");
    await stale.release(0);
    await stale.release(5_000);
    const [value, ttl] = await admin((client) =>
      Promise.all([
        client.get(`coolock:lock:${name}`),
        client.pttl(`coolock:lock:${name}`),
      ])
    );
    assert(value?.startsWith("test:"), "the newer holder's value is intact");
    assert(ttl > 25_000, `the newer holder's expiry is intact, not ${ttl} ms`);
    assert(!fresh.lost?.aborted, "the newer holder is not lost");
    await fresh.release(0);
  },
);

Deno.test(
  "redis: guard time on release is a PEXPIRE to what is left",
  withServer,
  async () => {
    const name = lockName("guard");
    await using a = redis(fixture!.uri);
    const claim = await a.tryAcquire(request(name));
    assert(claim, "acquired");
    await claim.release(1_500);
    const ttl = await admin((c) => c.pttl(`coolock:lock:${name}`));
    assert(ttl > 1_000 && ttl <= 1_500, `held for the guard time, ${ttl} ms`);
    assertEquals(await a.tryAcquire(request(name)), undefined);
    await sleep(1_600);
    const next = await a.tryAcquire(request(name));
    assert(next, "free after the guard time");
    await next.release(0);
  },
);

Deno.test(
  "redis: fencing tokens increase across instances and outlive the lock",
  withServer,
  async () => {
    const name = lockName("fence");
    await using a = redis(fixture!.uri);
    await using b = redis(fixture!.uri);
    const tokens: bigint[] = [];
    for (let i = 0; i < 6; i++) {
      const backend = i % 2 ? a : b;
      const claim = await backend.tryAcquire(
        request(name, { expiresInMs: i === 2 ? 50 : 30_000 }),
      );
      assert(claim, `acquisition ${i}`);
      tokens.push(claim.token);
      // One lease expires on its own instead of being released.
      if (i === 2) await sleep(100);
      else await claim.release(0);
    }
    for (let i = 1; i < tokens.length; i++) {
      assert(tokens[i] > tokens[i - 1], `increasing: ${tokens.join(", ")}`);
    }
    const fenceTtl = await admin((c) => c.pttl(`coolock:fence:${name}`));
    assertEquals(fenceTtl, -1, "the counter never expires");
  },
);

Deno.test(
  "redis: lock names are Redis key bytes, unescaped",
  withServer,
  async () => {
    const name = `${lockName("bytes")} 'x"; *?[] /%2F 🔒`;
    await using a = redis(fixture!.uri);
    const owner = `test:${crypto.randomUUID()}`;
    const claim = await a.tryAcquire(request(name, { owner }));
    assert(claim, "acquired");
    assertEquals(await admin((c) => c.get(`coolock:lock:${name}`)), owner);
    await claim.release(0);
    assertEquals(await admin((c) => c.exists(`coolock:lock:${name}`)), 0);
  },
);

Deno.test(
  "redis: a release wakes waiters by pub/sub on one shared connection",
  withServer,
  async () => {
    const names = [lockName("wake"), lockName("wake"), lockName("wake")];
    await using a = redis(fixture!.uri);
    await using b = redis(fixture!.uri);
    const held = await Promise.all(
      names.map((name) => acquire({ backend: a, lock: name, guardTime: 0 })),
    );
    const waiters = names.map((name) =>
      acquire({ backend: b, lock: name, guardTime: 0, waitTimeout: 10 })
    );
    await sleep(400);
    const clients = await admin((c) => c.client("LIST")) as string;
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
    // Without the notification the waiter polls about once a second.
    for (const ms of handoffs) assert(ms < 500, `handoff took ${ms} ms`);
  },
);

Deno.test(
  "redis: waitForChange sees a release that came before SUBSCRIBE",
  withServer,
  async () => {
    const name = lockName("early");
    await using a = redis(fixture!.uri);
    const started = performance.now();
    await a.waitForChange!(request(name), AbortSignal.timeout(5_000));
    const ms = performance.now() - started;
    assert(ms < 1_000, `a free lock ends the wait at once, not after ${ms} ms`);
  },
);

testUnreachable({
  label: "redis",
  open: redis,
  uriAt: (port) => `redis://:hunter2@127.0.0.1:${port}/0`,
  request,
  withinMs: 3_000,
  secret: "hunter2",
});

testHungServer({
  label: "redis",
  recipe: redisServer,
  open: redis,
  uriAt,
  request,
  renew: { expiresInMs: 30_000, signalMs: 1_000 },
  renewWithinMs: 2_000,
  // The command timeout ends the call.
  tryWithinMs: 8_000,
  recovers: true,
  ignore: !server,
});

testCloseReleases({
  label: "redis",
  open: () => redis(fixture!.uri),
  request,
  lockName,
  keys: (name) => admin((c) => c.exists(`coolock:lock:${name}`)),
  waitsOnOther: true,
  rejectsAfterClose: true,
  ignore: !server,
});

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
    await stopServer(tls);
  }
});

Deno.test(
  "redis: ?sentinel= finds the master through a Sentinel",
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
      assertEquals(
        await admin((c) => c.get(`coolock:lock:${name}`)) !== null,
        true,
      );
      await claim.release(0);
      await using wrong = redis(
        `redis://127.0.0.1:${sentinel.port}/0?sentinel=nosuchmaster`,
      );
      await assertRejects(
        () => wrong.tryAcquire(request(name)),
        BackendUnavailableError,
      );
    } finally {
      await stopServer(sentinel);
    }
  },
);
