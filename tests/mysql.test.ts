/**
 * The MySQL backend against a real MariaDB 10.11 (Debian ships no MySQL
 * server): the generic contract suite, then what is particular to `GET_LOCK`
 * and the `coolock_locks` row.
 */

import assert from "node:assert/strict";
import mysql2 from "npm:mysql2@3.24.6/promise";
import { mysql } from "../backends/mysql.ts";
import { lockKey } from "../backends/mysql_uri.ts";
import type { Backend, Claim, LockRequest } from "../src/backend.ts";
import { BackendUnavailableError, LockLostError } from "../src/backend.ts";
import { acquire } from "../src/lease.ts";
import { contract } from "./contract.ts";
import type { ContractFixture } from "./fixture.ts";
import { eventually } from "./helpers/cli.ts";
import { startProxy } from "./helpers/proxy.ts";
import {
  MARIADB_DATABASE,
  MARIADB_PASSWORD,
  MARIADB_TLS_USER,
  MARIADB_USER,
  mariadbServer,
  mariadbTlsServer,
} from "./servers/mariadb.ts";
import { testCertificates } from "./servers/postgres.ts";
import { freePort, sharedServer, startServer } from "./servers/server.ts";

const server = await sharedServer(mariadbServer);

const uriAt = (port: number, password = MARIADB_PASSWORD) =>
  `mysql://${MARIADB_USER}:${
    encodeURIComponent(password)
  }@127.0.0.1:${port}/${MARIADB_DATABASE}`;

/** Runs `work` on a connection of its own, out of band. */
async function admin<T>(
  work: (conn: mysql2.Connection) => Promise<T>,
): Promise<T> {
  const conn = await mysql2.createConnection({
    host: "127.0.0.1",
    port: server!.port,
    user: MARIADB_USER,
    password: MARIADB_PASSWORD,
    database: MARIADB_DATABASE,
  });
  conn.on("error", () => {});
  try {
    return await work(conn);
  } finally {
    await conn.end();
  }
}

/** Kills the connection that holds `lock`, as an operator would. */
function killHolder(lock: string): Promise<number> {
  return admin(async (conn) => {
    const [rows] = await conn.execute("SELECT IS_USED_LOCK(?) AS id", [
      await lockKey(lock),
    ]);
    const id = (rows as { id: number | null }[])[0].id;
    if (id === null) return 0;
    await conn.query("KILL ?", [Number(id)]);
    return 1;
  });
}

const fixture: ContractFixture | undefined = server && {
  name: "mysql",
  uri: uriAt(server.port),
  uriAt: (port) => uriAt(port),
  uriWithSecret: (secret) => uriAt(server.port, secret),
  unreachableUri: uriAt(freePort()),
  open: (uri) => mysql(uri ?? uriAt(server.port)),
  // mysql2 takes ~120 ms to load (ten times that with 20 processes on 2
  // cores), and the first deadline counts from before the load.
  ttl: 3,
  server,
  remove: async (lock) => {
    await killHolder(lock);
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
  return admin(async (conn) => {
    const [rows] = await conn.query(
      `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
        WHERE USER = ? AND ID <> CONNECTION_ID()`,
      [MARIADB_USER],
    );
    return Number((rows as { n: number }[])[0].n);
  });
}

Deno.test("mysql URIs are checked at once, without the password", () => {
  const good = mysql("mysql://app:s3cret@db.example:3307/locks");
  assert.equal(good.scheme, "mysql");
  assert.equal(good.displayUri, "mysql://app:***@db.example:3307/locks");
  const bad: [string, RegExp][] = [
    ["mysql://u:s3cret@db/x?ssl-mode=sometimes", /'ssl-mode'.*'sometimes'/],
    ["mysql://u:s3cret@db/x?ssl-mode=PREFERRED", /'ssl-mode'.*'PREFERRED'/],
    ["mysql://u:s3cret@db/x?color=red", /unknown.*'color'/],
    ["mysql://u:s3cret@db", /one database/],
    ["mysql://u:s3cret@a,b/x", /exactly one host/],
    ["mysql://:s3cret@db/x", /no user/],
    ["mysql://u:s3cret@db:0/x", /bad port '0'/],
    ["mysql://u:s3cret@db/x?ssl-ca=/nonexistent/ca.pem", /'ssl-ca' file/],
    ["mysql://u:s3cret@db/x?cert=/etc/hostname", /both 'ssl-cert'/],
    ["mysql://u:s3cret@db/x?connect_timeout=-1", /'connect_timeout'/],
    ["postgres://u:s3cret@db/x", /not a mysql/],
  ];
  for (const [uri, message] of bad) {
    assert.throws(() => mysql(uri), (error: Error) => {
      assert.ok(error instanceof TypeError, uri);
      assert.match(error.message, message);
      assert.doesNotMatch(error.message, /s3cret/);
      return true;
    });
  }
});

Deno.test("mysql lock keys fit 64 characters and keep names apart", async () => {
  const names = [
    "job",
    "Job",
    "JOB",
    "x".repeat(200),
    "x".repeat(199) + "y",
    "ünïcødé 🔒",
    "ünïcødé 🔓",
    "a b",
    "a_b",
  ];
  const keys = await Promise.all(names.map(lockKey));
  assert.equal(
    new Set(keys.map((key) => key.toLowerCase())).size,
    names.length,
  );
  for (const key of keys) {
    assert.ok(key.length <= 64, key);
    assert.match(key, /^[\x21-\x7e]+$/);
  }
  assert.ok(keys[0].startsWith("coolock:job:"));
});

Deno.test("importing and opening the backend loads no npm client", async () => {
  const code = `import { mysql } from ${
    JSON.stringify(new URL("../backends/mysql.ts", import.meta.url).href)
  }; mysql("mysql://u@db.invalid/x"); console.log("ok");`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-npm", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "ok");
});

Deno.test({
  name: "mysql: names with quotes, backslashes, case and emoji are only data",
  ignore: skip,
  async fn() {
    const names = [
      "it's; DROP TABLE coolock_locks; --",
      'say "hi"',
      "naïve/ünïcödé ☃ 🚀",
      "%s%n\\'",
      "\\'; SELECT 1; --",
      "Case",
      "case",
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
    await admin(async (conn) => {
      const [rows] = await conn.query(
        "SELECT COUNT(*) AS n FROM coolock_locks WHERE name IN (?)",
        [names],
      );
      assert.equal(Number((rows as { n: number }[])[0].n), names.length);
    });
  },
});

Deno.test({
  name: "mysql: 100 distinct names are held at once without colliding",
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
  name: "mysql: fencing tokens increase across backends and guard time",
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
  name: "mysql: guard time outlives the holder's connection, by the server",
  ignore: skip,
  async fn() {
    const name = `guard-${crypto.randomUUID()}`;
    await withBackends(2, async (a, b) => {
      const claim = await a.tryAcquire(request(name, { guardMs: 1_500 }));
      assert.ok(claim);
      const started = performance.now();
      assert.equal(await killHolder(name), 1);
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
  name: "mysql: a connection killed on the server loses the claim at once",
  ignore: skip,
  async fn() {
    const name = `terminate-${crypto.randomUUID()}`;
    await withBackends(2, async (a, b) => {
      const claim = await a.tryAcquire(request(name));
      assert.ok(claim);
      await claim.renew(4_000, AbortSignal.timeout(2_000));
      const started = performance.now();
      await killHolder(name);
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
  name: "mysql: renew refuses a lock whose row another owner took",
  ignore: skip,
  async fn() {
    const name = `row-${crypto.randomUUID()}`;
    await withBackends(1, async (a) => {
      const claim = await a.tryAcquire(request(name));
      assert.ok(claim);
      await admin((conn) =>
        conn.execute(
          "UPDATE coolock_locks SET owner = 'intruder' WHERE name = ?",
          [name],
        )
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
  name: "mysql: a SIGKILLed holder process frees the lock at once",
  ignore: skip,
  async fn() {
    const name = `sigkill-${crypto.randomUUID()}`;
    const code = `import { mysql } from ${
      JSON.stringify(new URL("../backends/mysql.ts", import.meta.url).href)
    };
      const claim = await mysql(${JSON.stringify(fixture!.uri)}).tryAcquire({
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
  name: "mysql: a SIGSTOPped server loses the lease by its deadline",
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
    "mysql: a partitioned holder's connection ends on the server by its TTL",
  ignore: skip,
  async fn() {
    const name = `partition-${crypto.randomUUID()}`;
    await using proxy = startProxy(server!.port);
    const held = mysql(uriAt(proxy.port));
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
        "the server to end the partitioned connection",
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
  name: "mysql: wait mode hands off at release, and cleans up on abort",
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
  name: "mysql: a bad password or no server is BackendUnavailableError",
  ignore: skip,
  async fn() {
    for (
      const uri of [
        fixture!.uriWithSecret("wr0ng-s3cret"),
        fixture!.unreachableUri,
      ]
    ) {
      const backend = mysql(uri);
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
  name: "mysql: a server that never answers fails within connect_timeout",
  ignore: skip,
  async fn() {
    const hole = blackHole();
    const backend = mysql(`${uriAt(hole.port)}?connect_timeout=1`);
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
  name: "mysql: TLS with ssl-ca verifies the server, ssl-mode=REQUIRED insists",
  ignore: skip,
  async fn() {
    const certs = await testCertificates();
    const tlsServer = await startServer(mariadbTlsServer(certs));
    try {
      // This user may log in over TLS only.
      const base = uriAt(tlsServer.port).replace(
        `//${MARIADB_USER}:`,
        `//${MARIADB_TLS_USER}:`,
      );
      const name = `tls-${crypto.randomUUID()}`;
      for (
        const query of [
          `ssl-ca=${certs.ca}`,
          `ca=${certs.ca}&ssl-mode=VERIFY_CA`,
          "ssl-mode=REQUIRED",
        ]
      ) {
        await using backend = mysql(`${base}?${query}`);
        const claim = await backend.tryAcquire(request(name));
        assert.ok(claim, query);
        await claim.release(0);
      }
      for (
        const uri of [
          `${base}?ssl-ca=${certs.otherCa}`,
          `${base}?ssl-mode=DISABLED`,
          `${fixture!.uri}?ssl-mode=REQUIRED`,
        ]
      ) {
        await using backend = mysql(uri);
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
