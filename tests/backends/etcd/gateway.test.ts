/**
 * The etcd backend (v3 JSON gateway, plain fetch) against a real etcd 3.4:
 * the generic contract suite, then what is particular to etcd (URIs,
 * endpoint failover, auth, TLS, the fair queue, watch wake-ups, leases).
 */

import { etcd } from "../../../backends/etcd/gateway/mod.ts";
import {
  BackendUnavailableError,
  LockLostError,
} from "../../../src/backend.ts";
import { acquire } from "../../../src/lease.ts";
import { contract } from "../../contract/suite.ts";
import {
  etcdChecks,
  etcdParts,
  keysOf,
  prefixOf,
  queueInOrder,
  server,
} from "./suite.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "../../helpers/assert.ts";
import {
  assertBadUri,
  logHandoffs,
  measureHandoffs,
  sleep,
  testHungServer,
  testLoadsNoClient,
} from "../../helpers/backend_checks.ts";
import {
  etcdAdmin,
  etcdDeletePrefix,
  etcdKeys,
  etcdLeaseTtl,
  etcdServer,
} from "../../helpers/servers/etcd.ts";
import { freePort } from "../../helpers/servers/server.ts";

const flavour = { scheme: "etcd", open: etcd, ttl: 2 } as const;
const { fixture, request, lockName, withServer } = etcdParts(flavour);

contract(fixture);

Deno.test("etcd URIs: schemes, host lists, key root and bad values", () => {
  assertEquals(etcd("etcd://h1").displayUri, "etcd://h1");
  assertEquals(etcd("etcd+http://h1:2379,h2:2380").scheme, "etcd+http");
  assertEquals(
    etcd("etcd://root:hunter2@[::1]:2379/jobs?timeout=2").displayUri,
    "etcd://root:***@[::1]:2379/jobs?timeout=2",
  );
  const bad = (uri: string, pattern: RegExp) =>
    assertBadUri(etcd, uri, pattern);
  bad("etcd3://root:hunter2@h1", /is not etcd:\/\//);
  bad("redis://root:hunter2@h1", /is not etcd:\/\//);
  bad("etcd://root:hunter2@", /names no host/);
  bad("etcd://:hunter2@h1", /password but no user name/);
  bad("etcd://root:hunter2@h1:99999", /bad port '99999'/);
  bad("etcd://root:hunter2@h1,,h2", /empty or bad host/);
  bad("etcd://root:hunter2@h1?tls=1", /unknown option 'tls'/);
  bad(
    "etcd://root:hunter2@h1?ca=/etc/hostname",
    /TLS options: use etcd\+https/,
  );
  bad(
    "etcd+https://root:hunter2@h1?cert=/etc/hostname",
    /both 'cert' and 'key'/,
  );
  bad("etcd+https://root:hunter2@h1?ca=/nonexistent.pem", /'ca' file .* can't/);
  bad("etcd://root:hunter2@h1?timeout=soon", /bad 'timeout' value 'soon'/);
  bad("etcd://root:hunter2@h1?timeout=0", /zero 'timeout'/);
});

// The gateway backend loads no npm client at all, even while it locks.
testLoadsNoClient({
  label: "etcd",
  module: "backends/etcd/gateway/mod.ts",
  factory: "etcd",
  uri: fixture?.uri ?? "etcd://127.0.0.1:1",
  use: "acquire",
  noNpm: true,
  expect: ["clean", "clean"],
  ignore: !server,
});

Deno.test(
  "etcd: keys, values and leases are as documented",
  withServer,
  async () => {
    const name = lockName("layout") + " /%🔒";
    await using backend = etcd(fixture!.uri);
    const owner = `test:${crypto.randomUUID()}`;
    const claim = await backend.tryAcquire(request(name, { owner }));
    assert(claim, "acquired");
    const keys = await etcdKeys(server!.port, prefixOf(name));
    assertEquals(keys.length, 1);
    assertMatch(
      keys[0].key,
      /^coolock\/etcd-layout-[^/]*%2F%25%F0%9F%94%92\/[0-9a-f]+$/,
    );
    assertEquals(keys[0].value, owner);
    assertEquals(
      keys[0].key.split("/").pop(),
      BigInt(keys[0].lease).toString(16),
    );
    const ttl = await etcdLeaseTtl(server!.port, keys[0].lease);
    assert(ttl > 8 && ttl <= 10, `the lease lasts expiresInMs, ${ttl} s`);
    await claim.release(0);
    assertEquals((await etcdKeys(server!.port, prefixOf(name))).length, 0);
    assertEquals(await etcdLeaseTtl(server!.port, keys[0].lease), -1);
  },
);

Deno.test("etcd: a failed try leaves no key behind", withServer, async () => {
  const name = lockName("loser");
  await using a = etcd(fixture!.uri);
  await using b = etcd(fixture!.uri);
  const claim = await a.tryAcquire(request(name));
  assert(claim, "acquired");
  for (let i = 0; i < 3; i++) {
    assertEquals(await b.tryAcquire(request(name)), undefined);
  }
  assertEquals((await etcdKeys(server!.port, prefixOf(name))).length, 1);
  await claim.release(0);
});

Deno.test(
  "etcd: the first endpoint is down, the next one answers",
  withServer,
  async () => {
    const dead = freePort();
    await using backend = etcd(
      `etcd://127.0.0.1:${dead},127.0.0.1:${server!.port}`,
    );
    const started = performance.now();
    const claim = await backend.tryAcquire(request(lockName("failover")));
    assert(claim, "acquired through the second endpoint");
    assert(performance.now() - started < 3_000, "failover is quick");
    await claim.renew(10_000, AbortSignal.timeout(5_000));
    await claim.release(0);
    await using none = etcd(`etcd://127.0.0.1:${dead},127.0.0.1:${freePort()}`);
    const error = await assertRejects(
      () => none.tryAcquire(request(lockName("failover"))),
      BackendUnavailableError,
    );
    assertMatch(error.message, /refused/i);
  },
);

testHungServer({
  label: "etcd",
  recipe: etcdServer,
  open: etcd,
  uriAt: (port) => `etcd://127.0.0.1:${port}?timeout=1`,
  request,
  renew: { expiresInMs: 10_000, signalMs: 5_000 },
  renewWithinMs: 2_500,
  tryWithinMs: 2_500,
  recovers: false,
  ignore: !server,
});

etcdChecks(flavour, {
  wrongQuery: "",
  wrongMessage: /authentication failed/,
  anonymousRejects: true,
  tlsHost: "127.0.0.1",
  noCaMessage: /certificate|issuer/i,
});

Deno.test(
  "etcd: a release wakes the next waiter by watch",
  withServer,
  async () => {
    const name = lockName("wake");
    await using a = etcd(fixture!.uri);
    await using b = etcd(fixture!.uri);
    const handoffs = await measureHandoffs({
      rounds: 5,
      pair: () => [a, b],
      lock: () => name,
      ttl: 2,
      waitTimeout: 10,
      // Past the first poll steps, so that only the watch can be quick.
      settle: () => sleep(1_500),
    });
    logHandoffs("etcd: watch", handoffs);
    for (const ms of handoffs) assert(ms < 500, `handoff took ${ms} ms`);
  },
);

Deno.test("etcd: waiters are served in arrival order", withServer, async () => {
  const name = lockName("fair");
  const backends = Array.from({ length: 4 }, () => etcd(fixture!.uri));
  try {
    const { order } = await queueInOrder(backends, name, { holdMs: 100 });
    assertEquals(order, [1, 2, 3]);
    assertEquals(await keysOf(name), 0);
  } finally {
    for (const backend of backends) await backend.close();
  }
});

Deno.test(
  "etcd: a waiter that gives up takes its queue key away",
  withServer,
  async () => {
    const name = lockName("giveup");
    await using a = etcd(fixture!.uri);
    await using b = etcd(fixture!.uri);
    const held = await acquire({
      backend: a,
      lock: name,
      guardTime: 0,
      ttl: 2,
    });
    await assertRejects(() =>
      acquire({ backend: b, lock: name, guardTime: 0, ttl: 2, waitTimeout: 1 })
    );
    await sleep(200);
    assertEquals((await etcdKeys(server!.port, prefixOf(name))).length, 1);
    await held.release();
    // The next holder is not blocked by a stale queue key.
    const next = await acquire({
      backend: b,
      lock: name,
      guardTime: 0,
      ttl: 2,
    });
    await next.release();
  },
);

Deno.test(
  "etcd: guard time is a fresh lease of what is left",
  withServer,
  async () => {
    const name = lockName("guard");
    await using a = etcd(fixture!.uri);
    const claim = await a.tryAcquire(request(name, { expiresInMs: 30_000 }));
    assert(claim, "acquired");
    await claim.release(3_000);
    const [key] = await etcdKeys(server!.port, prefixOf(name));
    assert(key, "the key stays for the guard time");
    const ttl = await etcdLeaseTtl(server!.port, key.lease);
    assert(ttl >= 1 && ttl <= 3, `its lease has the guard time left, ${ttl} s`);
    assertEquals(await a.tryAcquire(request(name)), undefined);
    await sleep(4_000);
    const next = await a.tryAcquire(request(name));
    assert(next, "free after the guard time");
    assert(next.token > claim.token, "a newer token");
    await next.release(0);
  },
);

Deno.test(
  "etcd: renewal shortens a guard-time lease once the guard has run",
  withServer,
  async () => {
    const name = lockName("shorten");
    await using a = etcd(fixture!.uri);
    const claim = await a.tryAcquire(request(name, { expiresInMs: 4_000 }));
    assert(claim, "acquired");
    // The lease still lasts longer than asked: only the key is checked.
    await claim.renew(2_000, AbortSignal.timeout(5_000));
    let [key] = await etcdKeys(server!.port, prefixOf(name));
    const first = key.lease;
    assert(
      await etcdLeaseTtl(server!.port, first) >= 3,
      "still the long lease",
    );
    await sleep(2_500);
    await claim.renew(2_000, AbortSignal.timeout(5_000));
    [key] = await etcdKeys(server!.port, prefixOf(name));
    assert(key.lease !== first, "moved to a short lease");
    assert(await etcdLeaseTtl(server!.port, key.lease) <= 2, "a short lease");
    assertEquals(await etcdLeaseTtl(server!.port, first), -1);
    assert(!claim.lost?.aborted, "still held");
    await claim.renew(2_000, AbortSignal.timeout(5_000));
    await claim.release(0);
    assertEquals((await etcdKeys(server!.port, prefixOf(name))).length, 0);
  },
);

Deno.test(
  "etcd: an overwritten key fires the lost signal",
  withServer,
  async () => {
    const name = lockName("overwritten");
    await using a = etcd(fixture!.uri);
    const claim = await a.tryAcquire(request(name));
    assert(claim, "acquired");
    const [key] = await etcdKeys(server!.port, prefixOf(name));
    await etcdAdmin(server!.port, "/v3/kv/put", {
      key: btoa(key.key),
      value: btoa("intruder"),
    });
    const started = performance.now();
    while (!claim.lost?.aborted && performance.now() - started < 3_000) {
      await sleep(10);
    }
    assert(claim.lost?.aborted, "the lost signal fired");
    assert(claim.lost.reason instanceof LockLostError, "with a LockLostError");
    await assertRejects(
      () => claim.renew(10_000, AbortSignal.timeout(5_000)),
      LockLostError,
    );
    await claim.release(0);
    assertEquals(
      (await etcdKeys(server!.port, prefixOf(name)))[0].value,
      "intruder",
    );
    await etcdDeletePrefix(server!.port, prefixOf(name));
  },
);
