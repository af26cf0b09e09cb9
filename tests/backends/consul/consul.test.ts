/**
 * What is particular to the consul backend, against in-process Consul
 * fakes: its URIs, the sessions it creates (on the wire, and as Consul
 * stores them), lock-delay, the servers' TTL minimum, ACL tokens,
 * datacenters, key names, fencing tokens, the monitor, guard time, waiting,
 * close(), TLS and one-line errors. The generic contract runs from
 * tests/contract/consul.test.ts; node failures are in node_failure.test.ts.
 */

import { consul } from "../../../backends/consul/mod.ts";
import { consulKey } from "../../../backends/consul/keys.ts";
import {
  type Backend,
  BackendUnavailableError,
  LockLostError,
} from "../../../src/backend.ts";
import { startConsulFake } from "./fake/mod.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../../helpers/assert.ts";
import { consulFakeRecipe } from "../../helpers/servers/consul_fake.ts";
import { startServer } from "../../helpers/servers/server.ts";
import { oneLine, runCli } from "../../helpers/cli.ts";
import {
  claimOf,
  request,
  sessionsOf,
  sleep,
  uriOf,
  withBackend,
} from "./helpers.ts";

const uriAt = (port: number) => `consul://127.0.0.1:${port}`;

Deno.test("consul backend: URIs: scheme, options, capabilities and permissions, and a token that never shows", () => {
  const backend = consul(
    "consul://agent:8501?token=hunter2&dc=eu&lock-delay=2&session-ttl-min=3",
  );
  assertEquals(backend.scheme, "consul");
  assertEquals(
    backend.displayUri,
    "consul://agent:8501?token=***&dc=eu&lock-delay=2&session-ttl-min=3",
  );
  assertEquals(backend.capabilities, {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: 3_000,
    maxTtlMs: 86_400_000,
    clock: "server",
    listsLocks: true,
    storesLimit: true,
  });
  assertEquals(backend.permissions, [{ name: "net", host: "agent:8501" }]);
  assertEquals(consul("consul://agent").capabilities.minTtlMs, 10_000);
  assertEquals(consul("consul://agent").permissions, [
    { name: "net", host: "agent:8500" },
    { name: "env", variable: "CONSUL_HTTP_TOKEN" },
  ]);
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
    ["consul://agent?session-ttl-min=0.5", /session_ttl_min, from 1 to 86400/],
    ["consul://agent?session-ttl-min=x", /bad 'session-ttl-min' value/],
    ["consul://agent:99999", /bad port/],
  ];
  for (const [uri, pattern] of cases) {
    const error = assertThrows(() => consul(uri), TypeError);
    assertMatch(error.message, pattern);
    assert(!error.message.includes("hunter2"), error.message);
    assert(!error.message.includes("\n"), "one line");
  }
});

Deno.test("consul backend: what npm:consul 2.0.1 sends to create a session: Checks: [], Behavior delete, the TTL and its lock-delay", async () => {
  const bodies: unknown[] = [];
  await using capture = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
  }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/v1/session/create") {
      bodies.push(await req.json());
      return Response.json({ ID: "00000000-0000-0000-0000-000000000001" });
    }
    if (url.pathname === "/v1/txn") {
      return Response.json({
        Results: null,
        Errors: [{
          OpIndex: 0,
          What: "failed to lock key, lock is already held",
        }],
      }, { status: 409 });
    }
    if (url.pathname.startsWith("/v1/kv/")) {
      return new Response(null, {
        status: 404,
        headers: { "x-consul-index": "5" },
      });
    }
    return Response.json(true);
  });
  await using backend = consul(
    `${uriAt(capture.addr.port)}?session-ttl-min=1`,
  );
  assertEquals(
    await backend.tryAcquire(request("wire", { expiresInMs: 12_500 })),
    undefined,
  );
  assertEquals(bodies.length, 1, "one session");
  const { Name, ...fields } = bodies[0] as Record<string, unknown>;
  assertMatch(String(Name), /^coolock test:/);
  assertEquals(fields, {
    Behavior: "delete",
    Checks: [],
    LockDelay: "13000ms",
    TTL: "13s",
  });
});

Deno.test("consul backend: sessions have no health checks (fixupEmptySessionChecks), Behavior delete, and a lock-delay of their TTL up to 60 s", async () => {
  await withBackend({}, async (backend, fake) => {
    const claim = await claimOf(backend, "checkless", { expiresInMs: 4_000 });
    const [session] = sessionsOf(fake).values();
    assertEquals(
      [
        session.NodeChecks,
        session.ServiceChecks,
        session.Behavior,
        session.TTL,
      ],
      [[], null, "delete", "4s"],
    );
    assertEquals(session.LockDelay, 4_000_000_000, "the lock-delay is the TTL");
    await claim.release(0);
    const long = await claimOf(backend, "long", { expiresInMs: 90_000 });
    const [longSession] = sessionsOf(fake).values();
    assertEquals([longSession.TTL, longSession.LockDelay], [
      "90s",
      60_000_000_000,
    ]);
    await long.release(0);
  });
  await withBackend({ query: "&lock-delay=0.5" }, async (backend, fake) => {
    const claim = await claimOf(backend, "chosen", { expiresInMs: 4_000 });
    const [session] = sessionsOf(fake).values();
    assertEquals(session.LockDelay, 500_000_000, "?lock-delay= overrides it");
    await claim.release(0);
  });
});

Deno.test("consul backend: an invalidated holder's key stays locked for the lock-delay (state/session.go deleteSessionTxn)", async () => {
  await withBackend({}, async (backend, fake) => {
    const held = await claimOf(backend, "delay", { expiresInMs: 1_500 });
    const [session] = sessionsOf(fake).keys();
    fake.cluster.destroySession(session);
    const destroyedAt = performance.now();
    while (!held.lost!.aborted) await sleep(10);
    let next;
    while (!next) {
      next = await backend.tryAcquire(request("delay"));
      if (!next) await sleep(50);
    }
    const freeAfter = performance.now() - destroyedAt;
    assert(
      freeAfter >= 1_450 && freeAfter < 2_500,
      `free after ${freeAfter} ms`,
    );
    await next.release(0);
    await held.release(0);
  });
});

Deno.test("consul backend: the servers' session_ttl_min is learned from their refusal, and session-ttl-min= lets shorter TTLs through", async () => {
  await using strict = startConsulFake({ sessionTtlMinMs: 12_000 });
  await using backend = consul(uriAt(strict.port));
  const claim = await claimOf(backend, "learn", { expiresInMs: 10_000 });
  assertEquals(
    [...sessionsOf(strict).values()][0].TTL,
    "12s",
    "retried with 12 s",
  );
  await claim.release(0);
  const again = await claimOf(backend, "learn", { expiresInMs: 10_000 });
  assertEquals([...sessionsOf(strict).values()][0].TTL, "12s");
  await again.release(0);
  await using short = startConsulFake({ sessionTtlMinMs: 2_000 });
  await using quick = consul(`${uriAt(short.port)}?session-ttl-min=2`);
  assertEquals(quick.capabilities.minTtlMs, 2_000);
  const fast = await claimOf(quick, "short", { expiresInMs: 2_000 });
  assertEquals([...sessionsOf(short).values()][0].TTL, "2s");
  await fast.release(0);
  const tooLong = await assertRejects(
    () => quick.tryAcquire(request("day", { expiresInMs: 90_000_000 })),
    RangeError,
  );
  assertMatch(tooLong.message, /at most 86400 s/);
});

Deno.test("consul backend: the ACL token comes from ?token= or CONSUL_HTTP_TOKEN; a refused one is a clear line", async () => {
  await using fake = startConsulFake({
    sessionTtlMinMs: 1_000,
    acl: {
      tokens: [
        { secret: "s3cret-token", rules: "management" },
        {
          secret: "read-only",
          rules: { key: { "": "read" }, session: { "": "write" } },
        },
      ],
    },
  });
  const base = `${uriAt(fake.port)}?session-ttl-min=1`;
  for (const uri of [`${base}&token=wrong-one`, base]) {
    await using backend = consul(uri);
    const error = await assertRejects(
      () => backend.tryAcquire(request("acl")),
      BackendUnavailableError,
    );
    assertMatch(error.message, /ACL token was refused/);
    assert(!`${error.message}${error.stack}`.includes("wrong-one"), "hidden");
    assert(!error.message.includes("\n"), "one line");
  }
  await using readOnly = consul(`${base}&token=read-only`);
  const denied = await assertRejects(
    () => readOnly.tryAcquire(request("acl")),
    BackendUnavailableError,
  );
  assertMatch(
    denied.message,
    /ACL token was refused \(Permission denied: .*key:write/,
  );
  assertEquals(fake.cluster.sessions.size, 0, "its session was destroyed");
  await using byQuery = consul(`${base}&token=s3cret-token`);
  await (await claimOf(byQuery, "acl")).release(0);
  Deno.env.set("CONSUL_HTTP_TOKEN", "s3cret-token");
  try {
    await using byEnv = consul(base);
    assert(!byEnv.displayUri.includes("s3cret"), "the env token never shows");
    await (await claimOf(byEnv, "acl")).release(0);
  } finally {
    Deno.env.delete("CONSUL_HTTP_TOKEN");
  }
});

Deno.test("consul backend: dc= must be the agent's own datacenter: another is one clear line, before any session", async () => {
  await withBackend({ query: "&dc=dc1" }, async (backend) => {
    await (await claimOf(backend, "dc")).release(0);
  });
  await withBackend({ query: "&dc=dc2" }, async (backend, fake) => {
    const error = await assertRejects(
      () => backend.tryAcquire(request("dc")),
      RangeError,
    );
    assertMatch(
      error.message,
      /names datacenter 'dc2', but the agent is in 'dc1': Consul creates a lock's session only in the agent's own datacenter/,
    );
    assertEquals(fake.cluster.sessions.size, 0);
    const run = await runCli([
      "--backend",
      uriOf(fake, 0, "&dc=dc2"),
      "--ttl",
      "1",
      "--kill-after",
      "0.1",
      "--",
      "echo",
      "must-not-run",
    ]);
    assertEquals(run.code, 64, run.stderr);
    assertMatch(
      oneLine(run.stderr),
      /names datacenter 'dc2', but the agent is in 'dc1'/,
    );
    assertEquals(run.stdout, "");
  });
  // Without agent:read, the agent's refusal of the session says the same.
  await using fake = startConsulFake({
    sessionTtlMinMs: 1_000,
    acl: {
      tokens: [{
        secret: "blind-token",
        rules: { key: { "": "write" }, session: { "": "write" } },
      }],
    },
  });
  await using blind = consul(
    `${uriAt(fake.port)}?session-ttl-min=1&token=blind-token&dc=dc2`,
  );
  const error = await assertRejects(
    () => blind.tryAcquire(request("dc")),
    RangeError,
  );
  assertMatch(
    error.message,
    /names datacenter 'dc2', but the agent is in another one/,
  );
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

Deno.test("consul backend: fencing tokens are ModifyIndex at acquisition and grow across deletions, unlike LockIndex", async () => {
  await withBackend({}, async (backend, fake) => {
    const key = consulKey("fence");
    const first = await claimOf(backend, "fence");
    assertEquals(first.token, BigInt(fake.state.kv.get(key)!.ModifyIndex));
    await first.release(0);
    const second = await claimOf(backend, "fence");
    assertEquals(fake.state.kv.get(key)!.LockIndex, 2);
    await second.release(0);
    // Out of band, the key goes: LockIndex starts over, ModifyIndex does not.
    fake.state.deleteKey(key, fake.state.nextIndex());
    fake.state.commit([{ key }]);
    const third = await claimOf(backend, "fence");
    assertEquals(fake.state.kv.get(key)!.LockIndex, 1);
    assert(
      first.token < second.token && second.token < third.token,
      `${first.token} < ${second.token} < ${third.token}`,
    );
    await third.release(0);
  });
});

Deno.test("consul backend: the lost signal fires when the session goes; renew then rejects with LockLostError", async () => {
  await withBackend({}, async (backend, fake) => {
    const claim = await claimOf(backend, "lost");
    await claim.renew(2_000, AbortSignal.timeout(5_000));
    const [session] = sessionsOf(fake).keys();
    fake.cluster.destroySession(session);
    const started = performance.now();
    while (!claim.lost!.aborted && performance.now() - started < 2_000) {
      await sleep(10);
    }
    assert(claim.lost!.reason instanceof LockLostError, "lost with a reason");
    assert(performance.now() - started < 500, "lost within a blocking query");
    await assertRejects(
      () => claim.renew(2_000, AbortSignal.timeout(5_000)),
      LockLostError,
    );
    await claim.release(0);
  });
});

Deno.test("consul backend: an error of the monitor's query is a possible loss at once, as api/lock.go monitorLock does", async () => {
  await withBackend({}, async (backend, fake) => {
    const claim = await claimOf(backend, "leaderless");
    const changing = fake.leaderChange(1_500);
    const started = performance.now();
    while (!claim.lost!.aborted && performance.now() - started < 3_000) {
      await sleep(10);
    }
    const ms = performance.now() - started;
    assert(claim.lost!.aborted, "the monitor's error counts as a loss");
    assertMatch(
      (claim.lost!.reason as Error).message,
      /could not confirm it \(No cluster leader\), so it may be gone/,
    );
    assert(ms < 1_000, `lost ${ms.toFixed(0)} ms after the error`);
    await changing;
    await claim.release(0);
    assertEquals(fake.cluster.sessions.size, 0, "released once it could");
  });
});

Deno.test("consul backend: guard time on release is a guard key's lock-delay; the released key says until when", async () => {
  await withBackend({}, async (backend, fake) => {
    const claim = await claimOf(backend, "guard");
    await claim.release(1_500);
    const releasedAt = performance.now();
    assertEquals(fake.cluster.sessions.size, 0, "both sessions are gone");
    const entry = fake.state.kv.get(consulKey("guard"))!;
    assertEquals(entry.Session, undefined);
    const value = JSON.parse(new TextDecoder().decode(entry.Value!));
    assert(
      value.guardUntil && value.probe?.startsWith("coolock/guard/.guard-"),
      JSON.stringify(value),
    );
    assert(
      fake.state.lockDelayed(value.probe),
      "the guard key is in its lock-delay",
    );
    assert(
      !fake.state.lockDelayed(consulKey("guard")),
      "the lock's key is not",
    );
    assertEquals(await backend.tryAcquire(request("guard")), undefined);
    let next;
    while (!next && performance.now() - releasedAt < 4_000) {
      next = await backend.tryAcquire(request("guard"));
      if (!next) await sleep(50);
    }
    const heldFor = performance.now() - releasedAt;
    assert(next, "free after the guard time");
    assert(heldFor >= 1_450 && heldFor < 2_500, `held ${heldFor} ms`);
    assertEquals(
      fake.state.kv.has(value.probe),
      false,
      "the guard key was cleared",
    );
    await next.release(0);
  });
});

Deno.test("consul backend: a guard time over 60 s rests on the guard session's TTL, then 60 s of lock-delay", async () => {
  await withBackend({}, async (backend, fake) => {
    const claim = await claimOf(backend, "long-guard");
    await claim.release(75_000);
    const [guard] = [...sessionsOf(fake).values()];
    assertEquals(
      fake.cluster.sessions.size,
      1,
      "only the guard session is left",
    );
    assertEquals([guard.TTL, guard.LockDelay], ["15s", 60_000_000_000]);
    const held = [...fake.state.kv.values()].find((e) =>
      e.Session === guard.ID
    );
    assert(
      held?.Key.startsWith("coolock/long-guard/.guard-"),
      "it holds the guard key",
    );
    assertEquals(await backend.tryAcquire(request("long-guard")), undefined);
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
  await using fake = startConsulFake({ sessionTtlMinMs: 1_000 });
  await using other = consul(uriOf(fake));
  const held = await claimOf(other, "close-other");
  const backend = consul(uriOf(fake));
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
  assertEquals(
    fake.cluster.sessions.size,
    1,
    "the closed one's session is gone",
  );
  assertEquals(fake.state.kv.get(consulKey("close"))?.Session, undefined);
  assert(claim.lost!.aborted === false, "a release is not a loss");
  await held.release(0);
});

Deno.test("consul backend: a server that is not a Consul agent is one clear line", async () => {
  // Go's http.NotFound: "404 page not found\n", as a proxy or an old agent says.
  await using other = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response("404 page not found\n", {
        status: 404,
        headers: { "content-type": "text/plain; charset=utf-8" },
      }),
  );
  await using backend: Backend = consul(uriAt(other.addr.port));
  const error = await assertRejects(
    () => backend.status!("x", AbortSignal.timeout(5_000)),
    BackendUnavailableError,
  );
  assert(
    !error.message.includes("\n"),
    `one line: ${JSON.stringify(error.message)}`,
  );
});

Deno.test("consul backend: an agent's multi-line error is one line", async () => {
  await using agent = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) =>
      new URL(req.url).pathname.startsWith("/v1/kv/")
        ? new Response(null, {
          status: 404,
          headers: { "x-consul-index": "3" },
        })
        : new Response(
          "rpc error making call:\n  Missing node registration\n",
          {
            status: 500,
            headers: { "content-type": "text/plain; charset=utf-8" },
          },
        ),
  );
  await using backend = consul(uriAt(agent.addr.port));
  const error = await assertRejects(
    () => backend.tryAcquire(request("lines")),
    BackendUnavailableError,
  );
  assertMatch(
    error.message,
    /: rpc error making call: Missing node registration$/,
  );
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
      { tls, query: `&ca=${dir}/cert.pem` },
      async (backend) => {
        assertEquals(backend.permissions, [
          {
            name: "net",
            host: `127.0.0.1:${
              new URL(backend.displayUri.replace("consul+https", "http")).port
            }`,
          },
          { name: "env", variable: "CONSUL_HTTP_TOKEN" },
          { name: "read", path: `${dir}/cert.pem` },
        ]);
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
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const secret = `tok-${crypto.randomUUID()}`;
    const agent = await startServer(
      consulFakeRecipe(
        ["--token", secret, "--session-ttl-min", "2s"],
        "consul-acl",
      ),
    );
    try {
      const run = (token: string) =>
        runCli([
          "--backend",
          `${uriAt(agent.port)}?session-ttl-min=2&token=${token}`,
          "--ttl",
          "2",
          "--kill-after",
          "0.5",
          "--guard-time",
          "0",
          "--",
          "echo",
          "ran",
        ]);
      const refused = await run(`${secret}x`);
      assertEquals(refused.code, 69, refused.stderr);
      const line = oneLine(refused.stderr);
      assertMatch(line, /ACL token was refused \(ACL not found\)/);
      assert(!line.includes(secret), `no token in: ${line}`);
      const allowed = await run(secret);
      assertEquals(
        [allowed.code, allowed.stdout.trim()],
        [0, "ran"],
        allowed.stderr,
      );
    } finally {
      const keepAlive = setInterval(() => {}, 50);
      await agent.kill();
      clearInterval(keepAlive);
    }
  },
});
