/**
 * The Redis backend against a real redis-server: the generic contract suite,
 * then what is particular to Redis (URIs, the Lua compare-and-set, fencing,
 * pub/sub wake-ups, TLS and Sentinel).
 */

import { Redis } from "npm:ioredis@6.0.0";
import { redis } from "../backends/redis.ts";
import type { Backend, LockRequest } from "../src/backend.ts";
import { BackendUnavailableError, LockLostError } from "../src/backend.ts";
import { acquire } from "../src/lease.ts";
import { contract } from "./contract.ts";
import type { ContractFixture } from "./fixture.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "./helpers/assert.ts";
import { redisSentinel, redisServer, redisTlsServer } from "./servers/redis.ts";
import {
  available,
  freePort,
  sharedServer,
  startServer,
  type TestServer,
} from "./servers/server.ts";

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

const fixture: ContractFixture | undefined = server && {
  name: "redis",
  uri: uriAt(server.port),
  uriAt,
  uriWithSecret: (secret) =>
    `redis://coolock:${secret}@127.0.0.1:${server.port}/0?connect_timeout=3`,
  unreachableUri: uriAt(freePort()),
  open: (uri = uriAt(server.port)) => redis(uri),
  ttl: 2,
  server,
  remove: (lock) =>
    admin(async (client) => void await client.del(`coolock:lock:${lock}`)),
};

contract(fixture);

let unique = 0;
function request(name: string, overrides: Partial<LockRequest> = {}) {
  return {
    name,
    owner: `test:${crypto.randomUUID()}`,
    node: "test",
    expiresInMs: 30_000,
    guardMs: 0,
    wait: false,
    signal: AbortSignal.timeout(10_000),
    ...overrides,
  };
}
const lockName = (tag: string) => `redis-${tag}-${Date.now()}-${unique++}`;
const withServer = { ignore: !server };

/**
 * Kills a server of this test's own. The server's status promise is unref'd
 * (tests/servers/server.ts), so something must keep the event loop alive
 * while kill() waits for it.
 */
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
  const bad = (uri: string, pattern: RegExp) => {
    const error = assertThrows(() => redis(uri), TypeError);
    assertMatch(error.message, pattern);
    assert(!error.message.includes("hunter2"), error.message);
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

Deno.test("redis: importing and opening the backend loads no client", async () => {
  // --no-npm fails any npm import that runs, so only a lazy one passes.
  const module = new URL("../backends/redis.ts", import.meta.url).href;
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      "--no-npm",
      `const { redis } = await import("${module}");` +
      `await redis("redis://127.0.0.1:1").close(); console.log("clean");`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(child.stdout).trim();
  assertEquals(out, "clean", new TextDecoder().decode(child.stderr));
});

Deno.test(
  "redis: a stale claim's renew and release leave a newer holder alone",
  {
    ...withServer,
  },
  async () => {
    const name = lockName("stale");
    await using a = redis(fixture!.uri);
    await using b = redis(fixture!.uri);
    const stale = await a.tryAcquire(request(name, { expiresInMs: 300 }));
    assert(stale, "the first claim");
    await new Promise((resolve) => setTimeout(resolve, 400));
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

Deno.test("redis: guard time on release is a PEXPIRE to what is left", {
  ...withServer,
}, async () => {
  const name = lockName("guard");
  await using a = redis(fixture!.uri);
  const claim = await a.tryAcquire(request(name));
  assert(claim, "acquired");
  await claim.release(1_500);
  const ttl = await admin((c) => c.pttl(`coolock:lock:${name}`));
  assert(ttl > 1_000 && ttl <= 1_500, `held for the guard time, ${ttl} ms`);
  assertEquals(await a.tryAcquire(request(name)), undefined);
  await new Promise((resolve) => setTimeout(resolve, 1_600));
  const next = await a.tryAcquire(request(name));
  assert(next, "free after the guard time");
  await next.release(0);
});

Deno.test(
  "redis: fencing tokens increase across instances and outlive the lock",
  {
    ...withServer,
  },
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
      if (i === 2) await new Promise((resolve) => setTimeout(resolve, 100));
      else await claim.release(0);
    }
    for (let i = 1; i < tokens.length; i++) {
      assert(tokens[i] > tokens[i - 1], `increasing: ${tokens.join(", ")}`);
    }
    const fenceTtl = await admin((c) => c.pttl(`coolock:fence:${name}`));
    assertEquals(fenceTtl, -1, "the counter never expires");
  },
);

Deno.test("redis: lock names are Redis key bytes, unescaped", {
  ...withServer,
}, async () => {
  const name = `${lockName("bytes")} 'x"; *?[] /%2F 🔒`;
  await using a = redis(fixture!.uri);
  const owner = `test:${crypto.randomUUID()}`;
  const claim = await a.tryAcquire(request(name, { owner }));
  assert(claim, "acquired");
  assertEquals(await admin((c) => c.get(`coolock:lock:${name}`)), owner);
  await claim.release(0);
  assertEquals(await admin((c) => c.exists(`coolock:lock:${name}`)), 0);
});

Deno.test(
  "redis: a release wakes waiters by pub/sub on one shared connection",
  {
    ...withServer,
  },
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
    await new Promise((resolve) => setTimeout(resolve, 400));
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

Deno.test("redis: waitForChange sees a release that came before SUBSCRIBE", {
  ...withServer,
}, async () => {
  const name = lockName("early");
  await using a = redis(fixture!.uri);
  const started = performance.now();
  await a.waitForChange!(request(name), AbortSignal.timeout(5_000));
  const ms = performance.now() - started;
  assert(ms < 1_000, `a free lock ends the wait at once, not after ${ms} ms`);
});

Deno.test("redis: an unreachable or hung server rejects in bounded time", {
  ...withServer,
}, async () => {
  await using down = redis(`redis://:hunter2@127.0.0.1:${freePort()}/0`);
  let started = performance.now();
  const refused = await assertRejects(
    () => down.tryAcquire(request(lockName("down"))),
    BackendUnavailableError,
  );
  assert(performance.now() - started < 3_000, "refused at once");
  assert(!refused.message.includes("hunter2"), refused.message);

  const hung = await startServer(redisServer);
  try {
    await using backend = redis(uriAt(hung.port));
    const claim = await backend.tryAcquire(request(lockName("hung")));
    assert(claim, "acquired before the hang");
    hung.pause();
    started = performance.now();
    const renewal = await assertRejects(() =>
      claim.renew(30_000, AbortSignal.timeout(1_000))
    );
    assert(!(renewal instanceof LockLostError), "a hang is not a loss");
    assert(performance.now() - started < 2_000, "the signal ends the renew");
    started = performance.now();
    await assertRejects(
      () =>
        backend.tryAcquire(
          request(lockName("hung"), { signal: AbortSignal.timeout(60_000) }),
        ),
      BackendUnavailableError,
    );
    const ms = performance.now() - started;
    assert(ms < 8_000, `the command timeout ends the call, not ${ms} ms`);
    hung.resume();
    const again = await backend.tryAcquire(request(lockName("back")));
    assert(again, "a new connection works once the server answers again");
    await again.release(0);
    await claim.release(0);
  } finally {
    hung.resume();
    await stop(hung);
  }
});

Deno.test("redis: close() releases held claims and ends every connection", {
  ...withServer,
}, async () => {
  const name = lockName("close");
  const backend: Backend = redis(fixture!.uri);
  const claim = await backend.tryAcquire(request(name));
  assert(claim, "acquired");
  await backend.waitForChange!(
    request(lockName("close-wait")),
    AbortSignal.timeout(1_000),
  );
  await backend.close();
  assertEquals(await admin((c) => c.exists(`coolock:lock:${name}`)), 0);
  await assertRejects(
    () => backend.tryAcquire(request(name)),
    BackendUnavailableError,
  );
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
    await stop(tls);
  }
});

Deno.test("redis: ?sentinel= finds the master through a Sentinel", {
  ...withServer,
}, async () => {
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
    await stop(sentinel);
  }
});
