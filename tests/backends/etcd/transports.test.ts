/**
 * What both etcd transports must do alike, table-driven over `etcd` (JSON
 * gateway) and `etcd3` (gRPC), against a real etcd 3.4: URIs, the key and
 * value layout, a failed try that leaves nothing behind, endpoint failover,
 * user and password auth (with re-authentication, and against a server
 * with auth off), TLS with client certificates, guard time as a fresh
 * lease, and a lost signal on an overwritten key.
 */

import type { Backend } from "../../../src/backend.ts";
import {
  BackendUnavailableError,
  LockLostError,
} from "../../../src/backend.ts";
import { acquire } from "../../../src/lease.ts";
import { checkBackend } from "../../../src/operate.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../../helpers/assert.ts";
import {
  enableAuth,
  ETCD_ROOT_PASSWORD,
  etcdAdmin,
  etcdAuthServer,
  etcdDeletePrefix,
  etcdKeys,
  etcdLeaseTtl,
  etcdTlsServer,
} from "../../helpers/servers/etcd.ts";
import {
  available,
  freePort,
  startServer,
  type TestServer,
} from "../../helpers/servers/server.ts";
import {
  entriesOf,
  FACTORIES,
  lockName,
  prefixOf,
  request,
  server,
  sleep,
  uriOf,
  withServer,
} from "./fixture.ts";

/** What differs between the transports in these tests. */
const TRANSPORTS = [
  {
    scheme: "etcd",
    wrongMessage: /authentication failed/,
    // grpc-js needs a host name for SNI under Deno.
    tlsHost: "127.0.0.1",
    noCaMessage: /certificate|issuer/i,
  },
  {
    scheme: "etcd3",
    wrongMessage: /authentication failed/,
    tlsHost: "localhost",
    noCaMessage: undefined,
  },
] as const;

/** Kills a server of the test's own; a timer keeps the loop alive meanwhile. */
async function stop(own: TestServer): Promise<void> {
  const keepAlive = setInterval(() => {}, 50);
  try {
    own.resume();
    await own.kill();
  } finally {
    clearInterval(keepAlive);
  }
}

for (const t of TRANSPORTS) {
  const { scheme } = t;
  const open: (uri: string) => Backend = FACTORIES[scheme];

  Deno.test(`${scheme} URIs: schemes, host lists, key root and bad values`, () => {
    assertEquals(open(`${scheme}://h1`).displayUri, `${scheme}://h1`);
    assertEquals(
      open(`${scheme}+http://h1:2379,h2:2380`).scheme,
      `${scheme}+http`,
    );
    assertEquals(
      open(`${scheme}://root:hunter2@[::1]:2379/jobs?timeout=2`).displayUri,
      `${scheme}://root:***@[::1]:2379/jobs?timeout=2`,
    );
    const other = scheme === "etcd" ? "etcd3" : "etcd";
    const bad: Array<[string, RegExp]> = [
      [`${other}://root:hunter2@h1`, new RegExp(`is not ${scheme}://`)],
      ["redis://root:hunter2@h1", new RegExp(`is not ${scheme}://`)],
      [`${scheme}://root:hunter2@`, /names no host/],
      [`${scheme}://:hunter2@h1`, /password but no user name/],
      [`${scheme}://root:hunter2@h1:99999`, /bad port '99999'/],
      [`${scheme}://root:hunter2@h1,,h2`, /empty or bad host/],
      [`${scheme}://root:hunter2@h1?tls=1`, /unknown option 'tls'/],
      [
        `${scheme}://root:hunter2@h1?ca=/etc/hostname`,
        new RegExp(`TLS options: use ${scheme}\\+https`),
      ],
      [
        `${scheme}+https://root:hunter2@h1?cert=/etc/hostname`,
        /both 'cert' and 'key'/,
      ],
      [
        `${scheme}+https://root:hunter2@h1?ca=/nonexistent.pem`,
        /'ca' file .* can't/,
      ],
      [`${scheme}://root:hunter2@h1?timeout=soon`, /bad 'timeout' value/],
      [`${scheme}://root:hunter2@h1?timeout=0`, /zero 'timeout'/],
    ];
    for (const [uri, pattern] of bad) {
      const error = assertThrows(() => open(uri), TypeError);
      assertMatch(error.message, pattern);
      assert(!error.message.includes("hunter2"), error.message);
      assert(!error.message.includes("\n"), error.message);
    }
  });

  Deno.test(`${scheme}: the capabilities and permissions it states`, () => {
    const backend = open(
      `${scheme}+https://db1:2379,[::1]:2380?ca=/etc/hostname`,
    );
    const caps = backend.capabilities;
    assertEquals(caps.maxTtlMs, 9_000_000_000_000, "etcd's MaxLeaseTTL");
    assertEquals([caps.storesLimit, caps.listsLocks, caps.fairQueue], [
      true,
      true,
      true,
    ]);
    const net = backend.permissions!.filter((p) => p.name === "net");
    assertEquals(net.map((p) => (p as Deno.NetPermissionDescriptor).host), [
      "db1:2379",
      "[::1]:2380",
    ]);
    assert(
      backend.permissions!.some((p) =>
        p.name === "read" && p.path === "/etc/hostname"
      ),
      "read of the CA file",
    );
    assertEquals(
      backend.permissions!.some((p) => p.name === "env"),
      scheme === "etcd3",
      "only grpc-js reads environment variables",
    );
  });

  Deno.test(
    `${scheme}: keys, values and leases are as documented`,
    withServer,
    async () => {
      const name = lockName(`${scheme}-layout`) + " /%🔒";
      await using backend = open(uriOf(scheme));
      const owner = `test:1:${crypto.randomUUID().slice(0, 6)}`;
      const claim = await backend.tryAcquire(request(name, { owner }));
      assert(claim, "acquired");
      const keys = await etcdKeys(server!.port, prefixOf(name));
      assertEquals(keys.length, 1, "a mutex has one key, no slot key");
      assertMatch(
        keys[0].key,
        /^coolock\/etcd-etcd3?-layout-[^/]*%2F%25%F0%9F%94%92\/[0-9a-f]+$/,
      );
      assertEquals(
        keys[0].key.split("/").pop(),
        BigInt(keys[0].lease).toString(16),
        "the key is its lease id in hex",
      );
      const value = JSON.parse(keys[0].value);
      assertEquals(
        [value.owner, value.node, value.limit, value.slot],
        [owner, "test", 1, 0],
      );
      assert(Math.abs(value.since - Date.now()) < 5_000, "since is now");
      assertEquals(keys[0].createRevision, claim.token, "token = create rev");
      const ttl = await etcdLeaseTtl(server!.port, keys[0].lease);
      assert(ttl > 8 && ttl <= 10, `the lease lasts expiresInMs, ${ttl} s`);
      await claim.release(0);
      assertEquals((await etcdKeys(server!.port, prefixOf(name))).length, 0);
      assertEquals(await etcdLeaseTtl(server!.port, keys[0].lease), -1);
    },
  );

  Deno.test(
    `${scheme}: a failed try leaves no key behind`,
    withServer,
    async () => {
      const name = lockName(`${scheme}-loser`);
      await using a = open(uriOf(scheme));
      await using b = open(uriOf(scheme));
      const claim = await a.tryAcquire(request(name));
      assert(claim, "acquired");
      for (let i = 0; i < 3; i++) {
        assertEquals(await b.tryAcquire(request(name)), undefined);
      }
      assertEquals((await entriesOf(name)).length, 1);
      await claim.release(0);
    },
  );

  Deno.test(
    `${scheme}: the first endpoint is down, the next one answers`,
    withServer,
    async () => {
      const dead = freePort();
      await using backend = open(
        `${scheme}://127.0.0.1:${dead},127.0.0.1:${server!.port}`,
      );
      const started = performance.now();
      for (let i = 0; i < 3; i++) {
        const claim = await backend.tryAcquire(
          request(lockName(`${scheme}-failover`)),
        );
        assert(claim, "acquired through the live endpoint");
        await claim.renew(10_000, AbortSignal.timeout(5_000));
        await claim.release(0);
      }
      assert(performance.now() - started < 5_000, "failover is quick");
      await using none = open(
        `${scheme}://127.0.0.1:${dead},127.0.0.1:${freePort()}?timeout=2`,
      );
      const error = await assertRejects(
        () => none.tryAcquire(request(lockName(`${scheme}-failover`))),
        BackendUnavailableError,
      );
      assertMatch(error.message, /refused/i);
      assert(!/Resolution note|\n/.test(error.message), error.message);
    },
  );

  Deno.test(
    `${scheme}: user and password auth, with re-authentication; credentials checked`,
    withServer,
    async () => {
      const secured = await startServer(etcdAuthServer);
      try {
        const base = `127.0.0.1:${secured.port}`;
        // Before auth is on, a URI with credentials works as well.
        await using early = open(`${scheme}://root:whatever@${base}`);
        const before = await early.tryAcquire(request(lockName("auth-off")));
        assert(before, "credentials on a server with auth off are not needed");
        await before.release(0);
        await enableAuth(secured.port);
        await using good = open(
          `${scheme}://root:${ETCD_ROOT_PASSWORD}@${base}`,
        );
        const first = await good.tryAcquire(request(lockName("auth")));
        assert(first, "acquired with the password");
        await first.release(0);
        // The server's tokens expire after 1 s idle: the next call re-authenticates.
        await sleep(2_500);
        const second = await good.tryAcquire(request(lockName("auth")));
        assert(second, "acquired again after the token expired");
        await second.release(0);
        const checked = await checkBackend(good);
        assertEquals(
          checked.find((r) => r.name === "credentials")?.detail,
          "authenticated as 'root'",
        );
        assertEquals(checked.filter((r) => r.status === "fail"), []);
        await using wrong = open(
          `${scheme}://root:hunter2@${base}?timeout=2`,
        );
        const error = await assertRejects(
          () => wrong.tryAcquire(request(lockName("auth"))),
          BackendUnavailableError,
        );
        assertMatch(error.message, t.wrongMessage);
        assert(
          !`${error.message} ${error.stack}`.includes("hunter2"),
          error.message,
        );
        const refused = await checkBackend(wrong);
        assertEquals(
          refused.map((r) => `${r.name} ${r.status}`).slice(0, 3),
          ["reachable ok", "version ok", "credentials fail"],
          "check reports refused credentials as such, not as a dead server",
        );
        assertMatch(refused[2].detail, /refused user 'root'/);
        await using anonymous = open(`${scheme}://${base}?timeout=2`);
        await assertRejects(
          () => anonymous.tryAcquire(request(lockName("auth"))),
          BackendUnavailableError,
        );
        const none = await checkBackend(anonymous);
        const credentials = none.find((r) => r.name === "credentials")!;
        assertEquals(credentials.status, "fail");
        assertMatch(credentials.detail, /auth enabled: put user:password/);
      } finally {
        await stop(secured);
      }
    },
  );

  Deno.test({
    name: `${scheme}: ${scheme}+https:// with ca, cert and key files`,
    ignore: !available(etcdTlsServer),
    sanitizeOps: false,
    async fn() {
      const tls = await startServer(etcdTlsServer);
      try {
        const base = `${scheme}+https://${t.tlsHost}:${tls.port}`;
        const files =
          `ca=${tls.dir}/ca.pem&cert=${tls.dir}/client.pem&key=${tls.dir}/client-key.pem`;
        await using good = open(`${base}?${files}`);
        const name = lockName(`${scheme}-tls`);
        const claim = await good.tryAcquire(request(name));
        assert(claim, "acquired over TLS with a client certificate");
        const waiter = acquire({
          backend: good,
          lock: name,
          guardTime: 0,
          ttl: 2,
          waitTimeout: 10,
        });
        await sleep(300);
        await claim.release(0);
        await (await waiter).release();
        const checked = await checkBackend(good);
        assertEquals(
          checked.filter((r) => r.status === "fail"),
          [],
          "check works over TLS",
        );
        await using noCert = open(`${base}?ca=${tls.dir}/ca.pem&timeout=2`);
        await assertRejects(
          () => noCert.tryAcquire(request(name)),
          BackendUnavailableError,
        );
        if (t.noCaMessage) {
          await using noCa = open(`${base}?timeout=2`);
          const error = await assertRejects(
            () => noCa.tryAcquire(request(name)),
            BackendUnavailableError,
          );
          assertMatch(error.message, t.noCaMessage);
        }
      } finally {
        await stop(tls);
      }
    },
  });

  Deno.test(
    `${scheme}: guard time is a fresh lease of what is left, marked in the value`,
    withServer,
    async () => {
      const name = lockName(`${scheme}-guard`);
      await using a = open(uriOf(scheme));
      const claim = await a.tryAcquire(request(name, { expiresInMs: 30_000 }));
      assert(claim, "acquired");
      await claim.release(3_000);
      const [key] = await etcdKeys(server!.port, prefixOf(name));
      assert(key, "the key stays for the guard time");
      assert(JSON.parse(key.value).guard > 0, "the value says guard time");
      const ttl = await etcdLeaseTtl(server!.port, key.lease);
      assert(ttl >= 1 && ttl <= 3, `its lease has the guard left, ${ttl} s`);
      assertEquals(await a.tryAcquire(request(name)), undefined);
      await sleep(4_000);
      const next = await a.tryAcquire(request(name));
      assert(next, "free after the guard time");
      assert(next.token > claim.token, "a newer token");
      await next.release(0);
    },
  );

  Deno.test(
    `${scheme}: renewal shortens a guard-time lease once the guard has run`,
    withServer,
    async () => {
      const name = lockName(`${scheme}-shorten`);
      await using a = open(uriOf(scheme));
      const claim = await a.tryAcquire(request(name, { expiresInMs: 4_000 }));
      assert(claim, "acquired");
      // The lease still lasts longer than asked: only the key is checked.
      await claim.renew(2_000, AbortSignal.timeout(5_000));
      let [key] = await etcdKeys(server!.port, prefixOf(name));
      const first = key.lease;
      assert(await etcdLeaseTtl(server!.port, first) >= 3, "the long lease");
      await sleep(2_500);
      await claim.renew(2_000, AbortSignal.timeout(5_000));
      [key] = await etcdKeys(server!.port, prefixOf(name));
      assert(key.lease !== first, "moved to a short lease");
      assert(await etcdLeaseTtl(server!.port, key.lease) <= 2, "short");
      assertEquals(await etcdLeaseTtl(server!.port, first), -1);
      assert(!claim.lost?.aborted, "still held");
      await claim.renew(2_000, AbortSignal.timeout(5_000));
      await claim.release(0);
      assertEquals((await etcdKeys(server!.port, prefixOf(name))).length, 0);
    },
  );

  Deno.test(
    `${scheme}: an overwritten key fires the lost signal`,
    withServer,
    async () => {
      const name = lockName(`${scheme}-overwritten`);
      await using a = open(uriOf(scheme));
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
      assert(claim.lost.reason instanceof LockLostError, "a LockLostError");
      await assertRejects(
        () => claim.renew(10_000, AbortSignal.timeout(5_000)),
        LockLostError,
      );
      await claim.release(0);
      assertEquals(
        (await etcdKeys(server!.port, prefixOf(name)))[0].value,
        "intruder",
        "a stale release leaves the intruder's value",
      );
      await etcdDeletePrefix(server!.port, prefixOf(name));
    },
  );
}
