/**
 * The consul backend against the Consul API fake (tests/fakes/consul.ts;
 * no Consul server can be installed here): the generic contract suite
 * against the fake as a process of its own, then what is particular to
 * sessions, lock-delay, blocking queries and ACL tokens, against in-process
 * fakes.
 */

import { consul } from "../../../backends/consul/mod.ts";
import { consulKey } from "../../../backends/consul/keys.ts";
import {
  type Backend,
  BackendUnavailableError,
  type Claim,
  LockLostError,
} from "../../../src/backend.ts";
import { contract } from "../../contract/suite.ts";
import { type ConsulFakeOptions, startConsulFake } from "./fake/mod.ts";
import { assert, assertEquals, assertRejects } from "../../helpers/assert.ts";
import {
  assertBadUri,
  assertUnreachable,
  fixtureOf,
  requestsWith,
  sleep,
  testLoadsNoClient,
} from "../../helpers/backend_checks.ts";
import {
  consulFakeRecipe,
  consulFakeServer,
} from "../../helpers/servers/consul_fake.ts";
import {
  freePort,
  sharedServer,
  startServer,
} from "../../helpers/servers/server.ts";
import { oneLine, runCli } from "../../helpers/cli.ts";

// COOLOCK_CONSUL_FAKE_FLAGS="--ttl-multiplier 2" reaps sessions at 2 x TTL,
// as a real Consul leader does.
const fakeFlags = (Deno.env.get("COOLOCK_CONSUL_FAKE_FLAGS") ?? "").split(" ")
  .filter(Boolean);
const server = await sharedServer(
  fakeFlags.length ? consulFakeRecipe(fakeFlags) : consulFakeServer,
);
const uriAt = (port: number) => `consul://127.0.0.1:${port}`;

const fixture = fixtureOf(server, {
  name: "consul",
  uriAt,
  uriWithSecret: (secret, port) =>
    `${uriAt(port)}?token=${encodeURIComponent(secret)}`,
  open: consul,
  ttl: 10,
  remove: async (lock) => {
    const response = await fetch(
      `http://127.0.0.1:${server!.port}/v1/kv/${consulKey(lock)}`,
      { method: "DELETE" },
    );
    await response.body?.cancel();
  },
});

contract(fixture);

type Fake = ReturnType<typeof startConsulFake>;
const request = requestsWith({ expiresInMs: 10_000, timeoutMs: 10_000 });

/** Runs `fn` with an in-process fake and a backend on it, closing both. */
async function withBackend(
  options: ConsulFakeOptions & { query?: string },
  fn: (backend: Backend, fake: Fake) => Promise<void>,
): Promise<void> {
  await using fake = startConsulFake({ port: 0, ...options });
  await using backend = consul(
    `${options.tls ? "consul+https" : "consul"}://127.0.0.1:${fake.port}${
      options.query ?? ""
    }`,
  );
  await fn(backend, fake);
}

async function claimOf(backend: Backend, name: string): Promise<Claim> {
  const claim = await backend.tryAcquire(request(name));
  assert(claim, `'${name}' is acquired`);
  return claim;
}

testLoadsNoClient({
  label: "consul backend",
  module: "backends/consul/mod.ts",
  factory: "consul",
  uri: "consul://127.0.0.1:1",
  use: "close",
  noNpm: true,
  expect: ["clean", "clean"],
});

Deno.test("consul backend: URIs: scheme, options and a token that never shows", () => {
  const backend = consul(
    "consul://agent:8501?token=hunter2&dc=eu&lock-delay=2",
  );
  assertEquals(backend.scheme, "consul");
  assertEquals(
    backend.displayUri,
    "consul://agent:8501?token=***&dc=eu&lock-delay=2",
  );
  assertEquals(backend.capabilities, {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: 10_000,
    maxTtlMs: 366 * 86_400_000,
    clock: "server",
    listsLocks: false,
    storesLimit: false,
  });
  assertEquals(consul("consul+http://[::1]").scheme, "consul+http");
  assertEquals(
    consul("consul+https://agent").displayUri,
    "consul+https://agent",
  );
});

Deno.test("consul backend: bad URIs are TypeErrors that say what is wrong, without the token", () => {
  const cases: [string, RegExp][] = [
    ["redis://agent", /must start with consul:\/\//],
    ["consul://a:8500,b:8500", /exactly one Consul agent/],
    ["consul://user:hunter2@agent", /no user name or password/],
    ["consul://agent/prefix?token=hunter2", /has a path '\/prefix'/],
    ["consul://agent?token=hunter2&tokn=x", /unknown option 'tokn'/],
    [
      "consul://agent?ca=/etc/hostname",
      /'ca' option, which needs consul\+https/,
    ],
    ["consul+https://agent?cert=/etc/hostname", /both 'cert' and 'key'/],
    ["consul+https://agent?ca=/nonexistent/ca.pem", /can't be read/],
    ["consul://agent?lock-delay=61", /Consul allows 0 to 60 seconds/],
    ["consul://agent?lock-delay=soon&token=hunter2", /bad 'lock-delay' value/],
    ["consul://agent:99999", /bad port/],
  ];
  for (const [uri, pattern] of cases) assertBadUri(consul, uri, pattern);
});

Deno.test("consul backend: the ACL token comes from ?token= or CONSUL_HTTP_TOKEN; a refused one is a clear error", async () => {
  await using fake = startConsulFake({ port: 0, token: "s3cret-token" });
  for (const uri of [`${uriAt(fake.port)}?token=wrong-one`, uriAt(fake.port)]) {
    await using backend = consul(uri);
    const error = await assertRejects(
      () => backend.tryAcquire(request("acl")),
      BackendUnavailableError,
    );
    assert(/ACL token was refused/.test(error.message), error.message);
    assert(!`${error.message}${error.stack}`.includes("wrong-one"), "hidden");
  }
  await using byQuery = consul(`${uriAt(fake.port)}?token=s3cret-token`);
  await (await claimOf(byQuery, "acl")).release(0);
  Deno.env.set("CONSUL_HTTP_TOKEN", "s3cret-token");
  try {
    await using byEnv = consul(uriAt(fake.port));
    assert(!byEnv.displayUri.includes("s3cret"), "the env token never shows");
    await (await claimOf(byEnv, "acl")).release(0);
  } finally {
    Deno.env.delete("CONSUL_HTTP_TOKEN");
  }
});

Deno.test("consul backend: ?dc= goes with every request; an unknown datacenter is unavailable", async () => {
  await withBackend({ query: "?dc=dc1" }, async (backend) => {
    await (await claimOf(backend, "dc")).release(0);
  });
  await withBackend({ query: "?dc=mars" }, async (backend) => {
    const error = await assertRejects(
      () => backend.tryAcquire(request("dc")),
      BackendUnavailableError,
    );
    assert(/No path to datacenter/.test(error.message), error.message);
  });
});

Deno.test("consul backend: each lock name is one key under coolock/ that Consul 1.21.5 accepts", async () => {
  const names = [
    "a/b",
    "a_2Fb",
    "..",
    "../x",
    "%2F",
    "a.b",
    "a b",
    "锁 🔒",
    "x",
  ];
  await withBackend({ validateKeys: true }, async (backend, fake) => {
    const claims = [];
    for (const name of names) claims.push(await claimOf(backend, name));
    const keys = [...fake.state.kv.keys()];
    assertEquals(new Set(keys).size, names.length, "distinct keys");
    for (const key of keys) {
      assert(/^coolock\/[A-Za-z0-9_-]+$/.test(key), `'${key}' is one segment`);
    }
    assertEquals(consulKey("a/b"), "coolock/a_2Fb");
    assertEquals(consulKey("a_2Fb"), "coolock/a_5F2Fb");
    for (const claim of claims) await claim.release(0);
  });
});

Deno.test("consul backend: the npm client turns a refused acquire into undefined; the backend loses at once", async () => {
  await withBackend({}, async (backend, fake) => {
    const held = await claimOf(backend, "quirk");
    const { default: Consul } = await import("npm:consul@2.0.1");
    const client = new Consul({ host: "127.0.0.1", port: fake.port });
    try {
      const { ID } = await client.session.create({ ttl: "10s" });
      const result = await client.kv.set({
        key: consulKey("quirk"),
        value: "x",
        acquire: ID,
      });
      assertEquals(result, undefined, "not false");
      await client.session.destroy(ID);
    } finally {
      client.destroy();
    }
    const started = performance.now();
    assertEquals(await backend.tryAcquire(request("quirk")), undefined);
    assert(performance.now() - started < 1_000, "lost at once");
    await held.release(0);
  });
});

Deno.test("consul backend: fencing tokens are ModifyIndex at acquisition and grow across deletions, unlike LockIndex", async () => {
  await withBackend({}, async (backend, fake) => {
    const key = consulKey("fence");
    const first = await claimOf(backend, "fence");
    assertEquals(first.token, BigInt(fake.state.kv.get(key)!.ModifyIndex));
    await first.release(0);
    const second = await claimOf(backend, "fence");
    assertEquals(fake.state.kv.get(key)!.LockIndex, 2);
    // Out of band, the key goes: LockIndex starts over, ModifyIndex does not.
    fake.state.deleteKey(key, fake.state.nextIndex());
    fake.state.emit([{ key }]);
    const third = await claimOf(backend, "fence");
    assertEquals(fake.state.kv.get(key)!.LockIndex, 1);
    assert(
      first.token < second.token && second.token < third.token,
      `${first.token} < ${second.token} < ${third.token}`,
    );
    await second.release(0);
    await third.release(0);
  });
});

Deno.test("consul backend: the lost signal fires when the session goes; renew then rejects with LockLostError", async () => {
  await withBackend({}, async (backend, fake) => {
    const claim = await claimOf(backend, "lost");
    await claim.renew(10_000, AbortSignal.timeout(5_000));
    const [session] = fake.state.sessions.keys();
    fake.state.destroySession(session);
    const started = performance.now();
    while (!claim.lost!.aborted && performance.now() - started < 2_000) {
      await sleep(10);
    }
    assert(claim.lost!.reason instanceof LockLostError, "lost with a reason");
    assert(performance.now() - started < 500, "lost within a blocking query");
    await assertRejects(
      () => claim.renew(10_000, AbortSignal.timeout(5_000)),
      LockLostError,
    );
    await claim.release(0);
  });
});

Deno.test("consul backend: release with a guard time hands the key to a guard session; others wait out its lock-delay", async () => {
  await withBackend({}, async (backend, fake) => {
    const claim = await claimOf(backend, "guard");
    await claim.release(1_500);
    const releasedAt = performance.now();
    assertEquals(fake.state.sessions.size, 0, "both sessions are gone");
    assertEquals(fake.state.kv.size, 0, "the guard session deleted the key");
    assertEquals(await backend.tryAcquire(request("guard")), undefined);
    await sleep(1_000);
    assertEquals(await backend.tryAcquire(request("guard")), undefined);
    let next: Claim | undefined;
    while (!next && performance.now() - releasedAt < 4_000) {
      next = await backend.tryAcquire(request("guard"));
      if (!next) await sleep(50);
    }
    const heldFor = performance.now() - releasedAt;
    assert(next, "free after the guard time");
    assert(heldFor >= 1_450 && heldFor < 2_500, `held ${heldFor} ms`);
    await next.release(0);
  });
});

Deno.test("consul backend: a guard time over 60 s rests on the guard session's TTL, then 60 s of lock-delay", async () => {
  await withBackend({}, async (backend, fake) => {
    const claim = await claimOf(backend, "long-guard");
    await claim.release(75_000);
    const [guard] = [...fake.state.sessions.values()];
    assertEquals(fake.state.sessions.size, 1, "only the guard session is left");
    assertEquals([guard.TTL, guard.LockDelay], ["15s", 60_000_000_000]);
    assertEquals(
      fake.state.kv.get(consulKey("long-guard"))!.Session,
      guard.ID,
    );
    assertEquals(await backend.tryAcquire(request("long-guard")), undefined);
  });
});

Deno.test("consul backend: ?lock-delay= keeps an invalidated holder's key from others", async () => {
  await withBackend({ query: "?lock-delay=1" }, async (backend, fake) => {
    await claimOf(backend, "delay");
    const [session] = [...fake.state.sessions.values()];
    assertEquals(session.LockDelay, 1_000_000_000);
    assertEquals(session.Behavior, "delete");
    fake.state.destroySession(session.ID);
    assertEquals(await backend.tryAcquire(request("delay")), undefined);
    await sleep(1_100);
    await (await claimOf(backend, "delay")).release(0);
  });
});

Deno.test("consul backend: waitForChange wakes on a release within milliseconds and stops on abort", async () => {
  await withBackend({}, async (backend, fake) => {
    const held = await claimOf(backend, "notify");
    const waiter = request("notify", { wait: true });
    assertEquals(await backend.tryAcquire(waiter), undefined);
    const woke = backend.waitForChange!(waiter, AbortSignal.timeout(5_000));
    await sleep(200);
    const releasedAt = performance.now();
    await held.release(0);
    await woke;
    const latency = performance.now() - releasedAt;
    assert(latency < 500, `woke ${latency} ms after the release`);
    const next = await claimOf(backend, "notify");
    const stop = new AbortController();
    const waiting = backend.waitForChange!(request("notify"), stop.signal);
    await sleep(100);
    stop.abort(new Error("gave up"));
    await assertRejects(() => waiting);
    // Its query is at most 0.7 s long (see NOTIFY_WAIT_MS).
    const aborted = performance.now();
    while (fake.state.waiting > 1 && performance.now() - aborted < 2_000) {
      await sleep(20);
    }
    assertEquals(fake.state.waiting, 1, "only the claim's monitor is left");
    await next.release(0);
  });
});

Deno.test("consul backend: close() releases held claims and ends every blocking query", async () => {
  await using fake = startConsulFake({ port: 0 });
  await using other = consul(uriAt(fake.port));
  const held = await claimOf(other, "close-other");
  const backend = consul(uriAt(fake.port));
  const claim = await claimOf(backend, "close");
  const waiter = request("close-other", { wait: true });
  assertEquals(await backend.tryAcquire(waiter), undefined);
  const waiting = backend.waitForChange!(waiter, AbortSignal.timeout(30_000));
  await sleep(100);
  assertEquals(fake.state.waiting, 3, "two monitors and a waiter");
  const rejected = assertRejects(() => waiting);
  await backend.close();
  await rejected;
  await sleep(100);
  assertEquals(fake.state.waiting, 1, "only the other backend's monitor");
  assertEquals(fake.state.sessions.size, 1, "the closed one's session is gone");
  assertEquals(fake.state.kv.get(consulKey("close"))?.Session, undefined);
  assert(claim.lost!.aborted === false, "a release is not a loss");
  await held.release(0);
});

Deno.test("consul backend: an unreachable or hung agent rejects with BackendUnavailableError in bounded time", async () => {
  await using refused = consul(uriAt(freePort()));
  await assertUnreachable({
    backend: refused,
    request: request("down"),
    withinMs: 2_000,
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    await using hung = consul(uriAt(listener.addr.port));
    const started = performance.now();
    const error = await assertRejects(
      () => hung.tryAcquire(request("hung")),
      BackendUnavailableError,
    );
    const ms = performance.now() - started;
    assert(ms < 7_000, `gave up after ${ms} ms: ${error.message}`);
  } finally {
    listener.close();
    await accepting;
    for (const conn of held) conn.close();
  }
});

Deno.test("consul backend: consul+https checks the agent's certificate against the ca file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coolock-consul-tls-" });
  try {
    const openssl = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    assert(openssl.success, "openssl made a certificate");
    const tls = {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
    await withBackend(
      { tls, query: `?ca=${dir}/cert.pem` },
      async (backend) => {
        await (await claimOf(backend, "tls")).release(0);
      },
    );
    await withBackend({ tls }, async (backend) => {
      await assertRejects(
        () => backend.tryAcquire(request("tls")),
        BackendUnavailableError,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "consul backend: the CLI against an agent that requires a token: refused without leaking it, run with it",
  ignore: server === undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const secret = `tok-${crypto.randomUUID()}`;
    const agent = await startServer(consulFakeRecipe(["--token", secret]));
    try {
      const run = (token: string) =>
        runCli([
          "--backend",
          `${uriAt(agent.port)}?token=${token}`,
          "--guard-time",
          "0",
          "--",
          "echo",
          "ran",
        ]);
      const refused = await run(`${secret}x`);
      assertEquals(refused.code, 69, refused.stderr);
      const line = oneLine(refused.stderr);
      assert(/ACL token was refused/.test(line), line);
      assert(!line.includes(secret), `no token in: ${line}`);
      const allowed = await run(secret);
      assertEquals([allowed.code, allowed.stdout.trim()], [0, "ran"]);
    } finally {
      await agent.kill();
    }
  },
});
