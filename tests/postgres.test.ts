/**
 * The PostgreSQL backend against a real PostgreSQL 15: the generic contract
 * suite, then what is particular to advisory locks and the `coolock_locks`
 * row.
 */

import assert from "node:assert/strict";
import postgresJs from "npm:postgres@3.4.9";
import { postgres } from "../backends/postgres.ts";
import type { Backend, Claim, LockRequest } from "../src/backend.ts";
import { BackendUnavailableError, LockLostError } from "../src/backend.ts";
import { acquire } from "../src/lease.ts";
import { contract } from "./contract.ts";
import type { ContractFixture } from "./fixture.ts";
import { eventually } from "./helpers/cli.ts";
import { startProxy } from "./helpers/proxy.ts";
import {
  POSTGRES_DATABASE,
  POSTGRES_PASSWORD,
  POSTGRES_USER,
  postgresServer,
  postgresTlsServer,
  testCertificates,
  wholeServer,
} from "./servers/postgres.ts";
import { freePort, sharedServer, startServer } from "./servers/server.ts";

const shared = await sharedServer(postgresServer);
const server = shared && wholeServer(shared);

const uriAt = (port: number, password = POSTGRES_PASSWORD) =>
  `postgres://${POSTGRES_USER}:${
    encodeURIComponent(password)
  }@127.0.0.1:${port}/${POSTGRES_DATABASE}`;

/** Runs `work` on a connection of its own, out of band. */
async function admin<T>(
  work: (sql: postgresJs.Sql) => Promise<T>,
): Promise<T> {
  const sql = postgresJs({
    host: "127.0.0.1",
    port: server!.port,
    user: POSTGRES_USER,
    pass: POSTGRES_PASSWORD,
    database: POSTGRES_DATABASE,
    max: 1,
    onnotice: () => {},
  });
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Ends the session that holds `lock`, as an operator would. */
function terminateHolder(lock: string): Promise<number> {
  return admin(async (sql) => {
    const rows = await sql`SELECT pg_terminate_backend(pid) FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND objsubid = 1
        AND ((classid::int8 << 32) | objid::int8) = hashtextextended(${lock}, 0)`;
    return rows.length;
  });
}

const fixture: ContractFixture | undefined = server && {
  name: "postgres",
  uri: uriAt(server.port),
  uriAt: (port) => uriAt(port),
  uriWithSecret: (secret) => uriAt(server.port, secret),
  unreachableUri: uriAt(freePort()),
  open: (uri) => postgres(uri ?? uriAt(server.port)),
  ttl: 2,
  server,
  remove: async (lock) => {
    await terminateHolder(lock);
  },
};

contract(fixture);

const skip = fixture === undefined;
let counter = 0;

function request(
  name: string,
  extra: Partial<LockRequest> = {},
): LockRequest {
  return {
    name,
    owner: `test:${Deno.pid}:${++counter}`,
    node: "test",
    expiresInMs: 4_000,
    guardMs: 0,
    wait: false,
    signal: new AbortController().signal,
    ...extra,
  };
}

async function withBackends(
  count: number,
  body: (...backends: Backend[]) => Promise<void>,
): Promise<void> {
  const backends = Array.from({ length: count }, () => fixture!.open());
  try {
    await body(...backends);
  } finally {
    await Promise.all(backends.map((backend) => backend.close()));
  }
}

function sessions(): Promise<number> {
  return admin(async (sql) => {
    const [{ n }] = await sql`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE application_name = 'coolock'`;
    return n;
  });
}

Deno.test("postgres URIs are checked at once, without the password", () => {
  const good = postgres("postgresql://app:s3cret@db.example:6543/locks");
  assert.equal(good.scheme, "postgresql");
  assert.equal(good.displayUri, "postgresql://app:***@db.example:6543/locks");
  assert.equal(postgres("postgres://db").scheme, "postgres");
  const bad: [string, RegExp][] = [
    ["postgres://u:s3cret@db?sslmode=sometimes", /'sslmode'.*'sometimes'/],
    ["postgres://u:s3cret@db?sslmode=require&color=red", /unknown.*'color'/],
    ["postgres://u:s3cret@/db", /no host/],
    ["postgres://u:s3cret@db:99999/x", /bad port '99999'/],
    ["postgres://u:s3cret@db?ca=/nonexistent/ca.pem", /'ca' file/],
    ["postgres://u:s3cret@db?sslcert=/etc/hostname", /both 'sslcert'/],
    ["postgres://u:s3cret@db?connect_timeout=soon", /'connect_timeout'/],
    ["mysql://u:s3cret@db", /not a postgres/],
  ];
  for (const [uri, message] of bad) {
    assert.throws(() => postgres(uri), (error: Error) => {
      assert.ok(error instanceof TypeError, uri);
      assert.match(error.message, message);
      assert.doesNotMatch(error.message, /s3cret/);
      return true;
    });
  }
});

Deno.test("importing and opening the backend loads no npm client", async () => {
  const code = `import { postgres } from ${
    JSON.stringify(new URL("../backends/postgres.ts", import.meta.url).href)
  }; postgres("postgres://db.invalid/x"); console.log("ok");`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-npm", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "ok");
});

Deno.test({
  name: "postgres: names with quotes, semicolons and emoji are only data",
  ignore: skip,
  async fn() {
    const names = [
      "it's; DROP TABLE coolock_locks; --",
      'say "hi"',
      "naïve/ünïcödé ☃ 🚀",
      "%s%n\\'",
      "a".repeat(200),
      "a".repeat(199) + "b",
    ];
    await withBackends(2, async (a, b) => {
      const claims: Claim[] = [];
      for (const name of names) {
        const claim = await a.tryAcquire(request(name));
        assert.ok(claim, `first owner takes ${name}`);
        assert.equal(await b.tryAcquire(request(name)), undefined, name);
        claims.push(claim);
      }
      await Promise.all(claims.map((claim) => claim.release(0)));
      const again = await b.tryAcquire(request(names[0]));
      assert.ok(again);
      await again.release(0);
    });
    await admin(async (sql) => {
      const [{ n }] = await sql`SELECT count(*)::int AS n FROM pg_tables
        WHERE tablename = 'coolock_locks'`;
      assert.equal(n, 1);
    });
  },
});

Deno.test({
  name: "postgres: 100 distinct names are held at once without colliding",
  ignore: skip,
  async fn() {
    await withBackends(1, async (backend) => {
      const names = Array.from({ length: 100 }, (_, i) => `collide-${i}`);
      const claims = await Promise.all(
        names.map((name) => backend.tryAcquire(request(name))),
      );
      assert.equal(claims.filter(Boolean).length, names.length);
      await Promise.all(claims.map((claim) => claim?.release(0)));
    });
  },
});

Deno.test({
  name: "postgres: fencing tokens increase across backends and guard time",
  ignore: skip,
  async fn() {
    const name = `fence-${crypto.randomUUID()}`;
    await withBackends(2, async (a, b) => {
      const tokens: bigint[] = [];
      for (const backend of [a, b, a, b]) {
        const claim = await backend.tryAcquire(request(name));
        assert.ok(claim);
        tokens.push(claim.token);
        await claim.release(0);
      }
      assert.deepEqual(tokens, [1n, 2n, 3n, 4n]);
    });
  },
});

Deno.test({
  name: "postgres: guard time outlives the holder's session, by the server",
  ignore: skip,
  async fn() {
    const name = `guard-${crypto.randomUUID()}`;
    await withBackends(2, async (a, b) => {
      const claim = await a.tryAcquire(request(name, { guardMs: 1_500 }));
      assert.ok(claim);
      const started = performance.now();
      assert.equal(await terminateHolder(name), 1);
      await eventually(() => claim.lost!.aborted, 2_000, "lost");
      assert.equal(await b.tryAcquire(request(name)), undefined);
      let next: Claim | undefined;
      await eventually(
        async () => (next = await b.tryAcquire(request(name))) !== undefined,
        5_000,
        "the guard time to pass",
      );
      const waited = performance.now() - started;
      assert.ok(waited > 1_200, `waited ${waited} ms`);
      assert.equal(next!.token, claim.token + 1n);
      await next!.release(800);
      assert.equal(await a.tryAcquire(request(name)), undefined);
    });
  },
});

Deno.test({
  name: "postgres: a session ended on the server loses the claim at once",
  ignore: skip,
  async fn() {
    const name = `terminate-${crypto.randomUUID()}`;
    await withBackends(2, async (a, b) => {
      const claim = await a.tryAcquire(request(name));
      assert.ok(claim);
      await claim.renew(4_000, AbortSignal.timeout(2_000));
      const started = performance.now();
      await terminateHolder(name);
      await eventually(() => claim.lost!.aborted, 1_000, "claim.lost");
      assert.ok(claim.lost!.reason instanceof Error);
      console.log(`lost after ${(performance.now() - started).toFixed(0)} ms`);
      await assert.rejects(
        claim.renew(4_000, AbortSignal.timeout(2_000)),
        LockLostError,
      );
      const next = await b.tryAcquire(request(name));
      assert.ok(next);
      // The stale claim's release must not free the new holder's lock.
      await claim.release(0);
      assert.equal(await a.tryAcquire(request(name)), undefined);
      await next.release(0);
    });
  },
});

Deno.test({
  name: "postgres: renew refuses a lock whose row another owner took",
  ignore: skip,
  async fn() {
    const name = `row-${crypto.randomUUID()}`;
    await withBackends(1, async (a) => {
      const claim = await a.tryAcquire(request(name));
      assert.ok(claim);
      await admin((sql) =>
        sql`UPDATE coolock_locks SET owner = 'intruder' WHERE name = ${name}`
      );
      await assert.rejects(
        claim.renew(4_000, AbortSignal.timeout(2_000)),
        LockLostError,
      );
      await claim.release(0);
    });
  },
});

Deno.test({
  name: "postgres: a SIGKILLed holder process frees the lock at once",
  ignore: skip,
  async fn() {
    const name = `sigkill-${crypto.randomUUID()}`;
    const code = `import { postgres } from ${
      JSON.stringify(new URL("../backends/postgres.ts", import.meta.url).href)
    };
      const claim = await postgres(${JSON.stringify(fixture!.uri)}).tryAcquire({
        name: ${JSON.stringify(name)}, owner: "child", node: "child",
        expiresInMs: 60000, guardMs: 0, wait: false,
        signal: new AbortController().signal });
      console.log(claim ? "held" : "missed");
      setInterval(() => {}, 1000);`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    assert.equal(new TextDecoder().decode(value).trim(), "held");
    await withBackends(1, async (backend) => {
      assert.equal(await backend.tryAcquire(request(name)), undefined);
      child.kill("SIGKILL");
      await child.status;
      reader.releaseLock();
      await child.stdout.cancel();
      const started = performance.now();
      let claim: Claim | undefined;
      await eventually(
        async () =>
          (claim = await backend.tryAcquire(request(name))) !== undefined,
        2_000,
        "the lock to be free",
      );
      console.log(`free after ${(performance.now() - started).toFixed(0)} ms`);
      await claim!.release(0);
    });
  },
});

Deno.test({
  name: "postgres: a SIGSTOPped server loses the lease by its deadline",
  ignore: skip,
  async fn() {
    const name = `sigstop-${crypto.randomUUID()}`;
    await withBackends(1, async (backend) => {
      const lease = await acquire({
        backend,
        lock: name,
        ttl: 2,
        guardTime: 0,
      });
      const started = performance.now();
      server!.pause();
      try {
        await eventually(() => lease.signal.aborted, 4_000, "lease.signal");
        const after = performance.now() - started;
        assert.ok(after < 2_500, `lost after ${after} ms`);
        assert.ok(lease.signal.reason instanceof LockLostError);
      } finally {
        server!.resume();
      }
      await lease.release();
    });
  },
});

Deno.test({
  name:
    "postgres: a partitioned holder's session ends on the server by its TTL",
  ignore: skip,
  async fn() {
    const name = `partition-${crypto.randomUUID()}`;
    await using proxy = startProxy(server!.port);
    const held = postgres(uriAt(proxy.port));
    await withBackends(1, async (other) => {
      const lease = await acquire({
        backend: held,
        lock: name,
        ttl: 2,
        guardTime: 0,
      });
      proxy.partition();
      const started = performance.now();
      await eventually(() => lease.signal.aborted, 4_000, "lease.signal");
      const lostAt = performance.now() - started;
      let claim: Claim | undefined;
      await eventually(
        async () =>
          (claim = await other.tryAcquire(request(name))) !== undefined,
        6_000,
        "the server to end the partitioned session",
      );
      const freeAt = performance.now() - started;
      console.log(
        `lost at ${lostAt.toFixed(0)} ms, free at ${freeAt.toFixed(0)} ms`,
      );
      assert.ok(lostAt < freeAt, "the holder knew first");
      await claim!.release(0);
      proxy.heal();
      await lease.release();
    });
    await held.close();
  },
});

Deno.test({
  name: "postgres: wait mode hands off at release, and cleans up on abort",
  ignore: skip,
  async fn() {
    const name = `wait-${crypto.randomUUID()}`;
    const before = await sessions();
    await withBackends(2, async (a, b) => {
      const first = await acquire({
        backend: a,
        lock: name,
        ttl: 3,
        guardTime: 0,
      });
      const waiting = acquire({
        backend: b,
        lock: name,
        ttl: 3,
        guardTime: 0,
        waitTimeout: 10,
      });
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const released = performance.now();
      await first.release();
      const second = await waiting;
      const handoff = performance.now() - released;
      console.log(`handoff ${handoff.toFixed(1)} ms`);
      assert.ok(handoff < 500, `handoff took ${handoff} ms`);
      assert.ok(second.token > first.token);

      const stop = new AbortController();
      const third = acquire({
        backend: a,
        lock: name,
        ttl: 3,
        guardTime: 0,
        waitTimeout: 30,
        signal: stop.signal,
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const aborted = performance.now();
      stop.abort(new Error("stop waiting"));
      await assert.rejects(third, /stop waiting/);
      assert.ok(performance.now() - aborted < 200);
      await second.release();
    });
    await eventually(
      async () => (await sessions()) <= before,
      3_000,
      "every session to close",
    );
  },
});

Deno.test({
  name: "postgres: a bad password or no server is BackendUnavailableError",
  ignore: skip,
  async fn() {
    for (
      const uri of [
        fixture!.uriWithSecret("wr0ng-s3cret"),
        fixture!.unreachableUri,
      ]
    ) {
      const backend = postgres(uri);
      const started = performance.now();
      await assert.rejects(backend.tryAcquire(request("x")), (error: Error) => {
        assert.ok(error instanceof BackendUnavailableError, error.message);
        assert.doesNotMatch(error.message, /s3cret|coolock-test-pw/);
        return true;
      });
      assert.ok(performance.now() - started < 6_000);
      await backend.close();
    }
  },
});

/** A TCP port that accepts connections and never says a word. */
function blackHole(): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) conns.push(conn);
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const conn of conns) conn.close();
      await accepting;
    },
  };
}

Deno.test({
  name: "postgres: a server that never answers fails within connect_timeout",
  ignore: skip,
  async fn() {
    const hole = blackHole();
    const backend = postgres(`${uriAt(hole.port)}?connect_timeout=1`);
    const started = performance.now();
    await assert.rejects(
      backend.tryAcquire(request("x")),
      BackendUnavailableError,
    );
    const took = performance.now() - started;
    assert.ok(took < 3_000, `took ${took} ms`);
    await backend.close();
    await hole.close();
  },
});

Deno.test({
  name:
    "postgres: TLS with sslrootcert verifies the server, sslmode=require insists",
  ignore: skip,
  async fn() {
    const certs = await testCertificates();
    const tlsServer = await startServer(postgresTlsServer(certs));
    try {
      const base = uriAt(tlsServer.port);
      const name = `tls-${crypto.randomUUID()}`;
      for (
        const query of [
          `sslrootcert=${certs.ca}`,
          `ca=${certs.ca}&sslmode=verify-ca`,
        ]
      ) {
        await using backend = postgres(`${base}?${query}`);
        const claim = await backend.tryAcquire(request(name));
        assert.ok(claim, query);
        const sql = postgresJs({
          host: "127.0.0.1",
          port: tlsServer.port,
          user: POSTGRES_USER,
          pass: POSTGRES_PASSWORD,
          database: POSTGRES_DATABASE,
          max: 1,
        });
        const [{ ssl }] = await sql`SELECT s.ssl FROM pg_stat_ssl s
          JOIN pg_locks l ON l.pid = s.pid WHERE l.locktype = 'advisory'
            AND ((l.classid::int8 << 32) | l.objid::int8) = hashtextextended(${name}, 0)`;
        await sql.end();
        assert.equal(ssl, true, "the holder's session is encrypted");
        await claim.release(0);
      }
      for (
        const uri of [
          `${base}?sslrootcert=${certs.otherCa}`,
          `${fixture!.uri}?sslmode=require`,
        ]
      ) {
        await using backend = postgres(uri);
        await assert.rejects(
          backend.tryAcquire(request(name)),
          BackendUnavailableError,
          uri,
        );
      }
    } finally {
      // The server's child process is unref'd: a timer keeps the loop alive
      // until its exit is seen.
      const awake = setInterval(() => {}, 50);
      await tlsServer.kill().finally(() => clearInterval(awake));
      await Deno.remove(tlsServer.dir, { recursive: true });
      await Deno.remove(certs.dir, { recursive: true });
    }
  },
});
