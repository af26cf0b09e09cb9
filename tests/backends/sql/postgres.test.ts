/**
 * The PostgreSQL backend against a real PostgreSQL 15: the generic contract
 * suite, then the shared SQL suite (tests/sql_suite.ts) with what is
 * particular to advisory locks and the `coolock_locks` row.
 */

import assert from "node:assert/strict";
import postgresJs from "npm:postgres@3.4.9";
import { postgres } from "../../../backends/sql/postgres/mod.ts";
import { contract } from "../../contract/suite.ts";
import type { ContractFixture } from "../../contract/fixture.ts";
import {
  POSTGRES_DATABASE,
  POSTGRES_PASSWORD,
  POSTGRES_USER,
  postgresServer,
  postgresTlsServer,
  wholeServer,
} from "../../helpers/servers/postgres.ts";
import { freePort, sharedServer } from "../../helpers/servers/server.ts";
import { sqlSuite } from "./suite.ts";

const shared = await sharedServer(postgresServer);
const server = shared && wholeServer(shared);

const uriAt = (port: number, password = POSTGRES_PASSWORD) =>
  `postgres://${POSTGRES_USER}:${
    encodeURIComponent(password)
  }@127.0.0.1:${port}/${POSTGRES_DATABASE}`;

/** Runs `work` on a connection of its own, out of band. */
async function admin<T>(
  work: (sql: postgresJs.Sql) => Promise<T>,
  port = server!.port,
): Promise<T> {
  const sql = postgresJs({
    host: "127.0.0.1",
    port,
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

/** The sessions that hold the advisory lock for `lock`. */
const holders = (sql: postgresJs.Sql, lock: string) =>
  sql`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
    AND objsubid = 1
    AND ((classid::int8 << 32) | objid::int8) = hashtextextended(${lock}, 0)`;

/** Ends the session that holds `lock`, as an operator would. */
function terminateHolder(lock: string): Promise<number> {
  return admin(async (sql) => {
    const rows = await sql`SELECT pg_terminate_backend(pid)
      FROM (${holders(sql, lock)}) h`;
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
  freeWithinMs: 5_000,
  entry: { module: "backends/sql/postgres/mod.ts", factory: "postgres" },
  faults: { pause: true, partition: true },
  server,
  remove: async (lock) => {
    await terminateHolder(lock);
  },
};

contract(fixture);

sqlSuite({
  name: "postgres",
  module: new URL("../../../backends/sql/postgres/mod.ts", import.meta.url),
  open: postgres,
  noun: "session",
  offlineUri: "postgres://db.invalid/x",
  badUris: [
    ["postgres://u:s3cret@db?sslmode=sometimes", /'sslmode'.*'sometimes'/],
    ["postgres://u:s3cret@db?sslmode=require&color=red", /unknown.*'color'/],
    ["postgres://u:s3cret@/db", /no host/],
    ["postgres://u:s3cret@db:99999/x", /bad port '99999'/],
    ["postgres://u:s3cret@db?ca=/nonexistent/ca.pem", /'ca' file/],
    ["postgres://u:s3cret@db?sslcert=/etc/hostname", /both 'sslcert'/],
    ["postgres://u:s3cret@db?connect_timeout=soon", /'connect_timeout'/],
    ["mysql://u:s3cret@db", /not a postgres/],
  ],
  fixture,
  killHolder: terminateHolder,
  stealRow: async (lock) => {
    await admin((sql) =>
      sql`UPDATE coolock_locks SET owner = 'intruder' WHERE name = ${lock}`
    );
  },
  rows: (names) =>
    admin(async (sql) => {
      const [{ n }] = await sql`SELECT count(*)::int AS n FROM coolock_locks
        WHERE name IN ${sql(names)}`;
      return n;
    }),
  tables: () =>
    admin(async (sql) => {
      const [{ n }] = await sql`SELECT count(*)::int AS n FROM pg_tables
        WHERE tablename = 'coolock_locks'`;
      return n;
    }),
  sessions: () =>
    admin(async (sql) => {
      const [{ n }] = await sql`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE application_name = 'coolock'`;
      return n;
    }),
  tls: {
    server: postgresTlsServer,
    uriAt: (port) => uriAt(port),
    accepted: (certs) => [
      `sslrootcert=${certs.ca}`,
      `ca=${certs.ca}&sslmode=verify-ca`,
    ],
    refused: (base, certs) => [
      `${base}?sslrootcert=${certs.otherCa}`,
      `${fixture!.uri}?sslmode=require`,
    ],
    encrypted: (port, lock) =>
      admin(async (sql) => {
        const [{ ssl }] = await sql`SELECT s.ssl FROM pg_stat_ssl s
          JOIN (${holders(sql, lock)}) h ON h.pid = s.pid`;
        return ssl;
      }, port),
  },
});

Deno.test("postgres URIs name their scheme and hide the password", () => {
  const good = postgres("postgresql://app:s3cret@db.example:6543/locks");
  assert.equal(good.scheme, "postgresql");
  assert.equal(good.displayUri, "postgresql://app:***@db.example:6543/locks");
  assert.equal(postgres("postgres://db").scheme, "postgres");
});
