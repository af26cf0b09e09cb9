/**
 * The PostgreSQL backend against a real PostgreSQL 15, beyond the contract
 * suite (tests/contract/postgres.test.ts): the shared SQL tests, with what
 * is particular to advisory locks, `pg_locks` and PostgreSQL's tables.
 */

import { postgres } from "../../../backends/sql/postgres/mod.ts";
import {
  loadPostgres,
  type Sql,
} from "../../../backends/sql/postgres/client.ts";
import { checkBackend } from "../../../src/operate.ts";
import { assertEquals } from "../../helpers/assert.ts";
import { startProxy } from "../../helpers/proxy.ts";
import {
  POSTGRES_DATABASE,
  POSTGRES_OTHER_DATABASE,
  POSTGRES_PASSWORD,
  POSTGRES_POWERLESS_USER,
  POSTGRES_USER,
  postgresTlsServer,
} from "../../helpers/servers/postgres.ts";
import type { PreviousRelease } from "./adapter.ts";
import { postgresFixture } from "./fixture.ts";
import { sqlSuite } from "./suite.ts";

const fixture = await postgresFixture();
const port = fixture?.server.port ?? 0;
const postgresJs = await loadPostgres();

const uriAt = (
  at: number,
  { user = POSTGRES_USER, database = POSTGRES_DATABASE } = {},
) =>
  `postgres://${user}:${
    encodeURIComponent(POSTGRES_PASSWORD)
  }@127.0.0.1:${at}/${database}`;

/** A connection of its own, out of band. */
const connect = (database = POSTGRES_DATABASE, at = port): Sql =>
  postgresJs({
    host: "127.0.0.1",
    port: at,
    user: POSTGRES_USER,
    pass: POSTGRES_PASSWORD,
    database,
    max: 1,
    onnotice: () => {},
  });

async function admin<T>(
  work: (sql: Sql) => Promise<T>,
  database = POSTGRES_DATABASE,
  at = port,
): Promise<T> {
  const sql = connect(database, at);
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** The previous release's statements (coolock 0.1.0), verbatim. */
function previous(database: string): Promise<PreviousRelease> {
  const sql = connect(database);
  const key = (name: string) => sql`hashtextextended(${name}::text, 0)`;
  return Promise.resolve({
    async take(name, guardMs = 0) {
      const [{ got }] = await sql`SELECT pg_try_advisory_lock(${
        key(name)
      }) AS got`;
      if (!got) return undefined;
      const rows = await sql`INSERT INTO coolock_locks AS l
          (name, fence, held_until, owner)
        SELECT ${name}, 1, now() + ${String(guardMs)}::float8 * interval '1 ms',
          ${"previous:1:x"}
          WHERE EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
            AND pid = pg_backend_pid() AND granted AND objsubid = 1
            AND ((classid::int8 << 32) | objid::int8) = ${key(name)})
        ON CONFLICT (name) DO UPDATE SET fence = l.fence + 1,
          held_until = excluded.held_until, owner = excluded.owner
          WHERE l.held_until <= now()
        RETURNING l.fence::text`;
      if (rows.length === 0) {
        await sql`SELECT pg_advisory_unlock(${key(name)})`;
        return undefined;
      }
      return BigInt(rows[0].fence);
    },
    close: () => sql.end({ timeout: 1 }),
  });
}

sqlSuite({
  name: "postgres",
  open: postgres,
  noun: "session",
  badUris: [
    ["postgres://u:s3cret@db?sslmode=sometimes", /'sslmode'.*'sometimes'/],
    ["postgres://u:s3cret@db?sslmode=require&color=red", /unknown.*'color'/],
    ["postgres://u:s3cret@/db", /no host/],
    ["postgres://u:s3cret@db:99999/x", /port/],
    ["postgres://u:s3cr/et@db/x", /'\/'|encode|%2F/i],
    ["postgres://u:s3cret@db/a/b", /database/],
    ["postgres://u:s3cret@db?ca=/nonexistent/ca.pem", /'ca' file/],
    ["postgres://u:s3cret@db?sslcert=/etc/hostname", /both 'sslcert'/],
    ["postgres://u:s3cret@db?connect_timeout=soon", /'connect_timeout'/],
    ["mysql://u:s3cret@db", /not a postgres/],
  ],
  fixture,
  leftMs: (lock, slot = 0) =>
    admin(async (sql) => {
      const [row] = slot === 0
        ? await sql`SELECT (extract(epoch FROM held_until - now()) * 1000)
            ::float8 AS ms FROM coolock_locks WHERE name = ${lock}`
        : await sql`SELECT (extract(epoch FROM held_until - now()) * 1000)
            ::float8 AS ms FROM coolock_slots
            WHERE name = ${lock} AND slot = ${slot}`;
      return row === undefined ? undefined : Number(row.ms);
    }),
  row: (lock) =>
    admin(async (sql) => {
      const [row] = await sql`SELECT * FROM coolock_locks
        WHERE name = ${lock}`;
      return row;
    }),
  stealRow: async (lock) => {
    await admin((sql) =>
      sql`UPDATE coolock_locks SET owner = 'intruder' WHERE name = ${lock}`
    );
  },
  rows: (names) =>
    admin(async (sql) => {
      const [{ n }] = await sql`SELECT count(*)::int AS n FROM coolock_locks
        WHERE name IN ${sql(names as string[])}`;
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
  previous: (database = "main") =>
    previous(
      database === "main" ? POSTGRES_DATABASE : POSTGRES_OTHER_DATABASE,
    ),
  other: {
    uri: uriAt(port, { database: POSTGRES_OTHER_DATABASE }),
    makeOldTable: (lock, fence) =>
      admin(async (sql) => {
        await sql`DROP TABLE IF EXISTS coolock_slots, coolock_locks`;
        // The previous release's table, as it created it.
        await sql`CREATE TABLE IF NOT EXISTS coolock_locks (name text PRIMARY KEY,
          fence bigint NOT NULL, held_until timestamptz NOT NULL,
          owner text NOT NULL)`;
        await sql`INSERT INTO coolock_locks VALUES
          (${lock}, ${fence}, now(), 'previous:1:x')`;
      }, POSTGRES_OTHER_DATABASE),
    columns: () =>
      admin(async (sql) => {
        const rows = await sql`SELECT column_name FROM
          information_schema.columns WHERE table_name = 'coolock_locks'`;
        return rows.map((row) => String(row.column_name));
      }, POSTGRES_OTHER_DATABASE),
  },
  powerlessUri: uriAt(port, { user: POSTGRES_POWERLESS_USER }),
  // libpq's variables fill in what the URI leaves out.
  envLogin: {
    uri: `postgres://127.0.0.1:${port}`,
    env: {
      PGUSER: POSTGRES_USER,
      PGPASSWORD: POSTGRES_PASSWORD,
      PGDATABASE: POSTGRES_DATABASE,
    },
  },
  tls: {
    server: postgresTlsServer,
    uriAt: (at) => uriAt(at),
    accepted: (certs) => [
      `sslrootcert=${certs.ca}`,
      `ca=${certs.ca}&sslmode=verify-ca`,
    ],
    refused: (base, certs) => [
      `${base}?sslrootcert=${certs.otherCa}`,
      `${fixture!.uri}?sslmode=require`,
    ],
    encrypted: (at, lock) =>
      admin(
        async (sql) => {
          const [{ ssl }] = await sql`SELECT s.ssl FROM pg_stat_ssl s
          JOIN pg_locks l ON l.pid = s.pid WHERE l.locktype = 'advisory'
            AND l.granted AND l.objsubid = 1
            AND ((l.classid::int8 << 32) | l.objid::int8)
              = hashtextextended(${lock}, 0)`;
          return ssl;
        },
        POSTGRES_DATABASE,
        at,
      ),
  },
});

Deno.test("postgres URIs name their scheme and hide the password", () => {
  const good = postgres("postgresql://app:s3cret@db.example:6543/locks");
  assertEquals(good.scheme, "postgresql");
  assertEquals(good.displayUri, "postgresql://app:***@db.example:6543/locks");
  assertEquals(postgres("postgres://db").scheme, "postgres");
});

Deno.test({
  name: "postgres: check warns about a proxy or pooler in between",
  ignore: fixture === undefined,
  async fn() {
    await using proxy = startProxy(port);
    await using backend = postgres(uriAt(proxy.port));
    const results = await checkBackend(backend);
    assertEquals(
      results.find((r) => r.name === "pooling")?.status,
      "warn",
      JSON.stringify(results),
    );
  },
});
