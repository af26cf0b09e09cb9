/**
 * The PostgreSQL backend: a session advisory lock, keyed by
 * `hashtextextended(name, 0)` (64 bits), on one connection per lease. The
 * server drops the lock when the session ends, so a dead holder frees it at
 * once; a row in `coolock_locks` carries what must outlive the session (the
 * fencing counter and the guard-time end, by the server's clock).
 *
 * @module
 */

import type postgresJs from "npm:postgres@3.4.9";
import type { Backend } from "../../../src/backend.ts";
import { parsePostgresUri, type PostgresUri } from "./uri.ts";
import { type SqlDialect, SqlLockBackend } from "../mod.ts";

type Sql = postgresJs.Sql;

const key = (sql: Sql, name: string) => sql`hashtextextended(${name}::text, 0)`;

// Proves, inside the statement, that this very session holds the lock: after
// a silent reconnect a query would otherwise run on a session without it.
const holds = (sql: Sql, name: string) =>
  sql`EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
    AND pid = pg_backend_pid() AND granted AND objsubid = 1
    AND ((classid::int8 << 32) | objid::int8) = ${key(sql, name)})`;

// The server ends a session idle (unrenewed) for longer than the lease, which
// frees the lock when the holder is partitioned away but its TCP peer lives
// (a proxy, a NAT). The slack lets the holder's own deadline fire first.
const IDLE_SLACK_MS = 1_000;
const expireIdle = (sql: Sql, ms: number) =>
  sql`CASE WHEN current_setting('server_version_num')::int >= 140000
    THEN set_config('idle_session_timeout',
      ${String(Math.ceil(ms + IDLE_SLACK_MS))}, false)
    END`;

const fromNow = (sql: Sql, ms: number) =>
  sql`now() + ${String(ms)}::float8 * interval '1 ms'`;

const createTable = (sql: Sql) =>
  sql`CREATE TABLE IF NOT EXISTS coolock_locks (name text PRIMARY KEY,
    fence bigint NOT NULL, held_until timestamptz NOT NULL, owner text NOT NULL)`;

function dialect(uri: PostgresUri): SqlDialect<Sql> {
  let loading: Promise<typeof postgresJs> | undefined;
  const load = () =>
    loading ??= import("npm:postgres@3.4.9").then((m) => m.default);
  return {
    display: uri.display,
    timeoutMs: uri.timeoutMs,
    noun: "session",
    load,
    async open(gone) {
      const postgres = await load();
      const sql = postgres({
        ...uri.options,
        // postgres.js takes host and port lists; its types only say one.
        host: uri.options.host as unknown as string,
        port: uri.options.port as unknown as number,
        max: 1,
        idle_timeout: 0,
        max_lifetime: null,
        keep_alive: 5,
        fetch_types: false,
        onnotice: () => {},
        onclose: () => gone(),
        connection: {
          application_name: "coolock",
          // A partitioned holder's session (and lock) goes within ~25 s.
          tcp_keepalives_idle: 10,
          tcp_keepalives_interval: 5,
          tcp_keepalives_count: 3,
        },
      });
      return {
        client: sql,
        end: () => sql.end({ timeout: 0 }).catch(() => {}),
      };
    },
    async lock(run, name, waitMs) {
      if (waitMs === 0) {
        const [{ got }] = await run((sql) =>
          sql`SELECT pg_try_advisory_lock(${key(sql, name)}) AS got`
        );
        return got;
      }
      return await run((sql) =>
        sql`WITH t AS MATERIALIZED
            (SELECT set_config('lock_timeout', ${String(waitMs)}, true))
          SELECT pg_advisory_lock(${key(sql, name)}) FROM t`.then(
          () => true,
          (error) => {
            if (error?.code === "55P03") return false; // lock_timeout
            throw error;
          },
        )
      );
    },
    async unlock(run, name) {
      await run((sql) => sql`SELECT pg_advisory_unlock(${key(sql, name)})`);
    },
    async stamp(run, { name, owner, guardMs, expiresInMs }) {
      const stamp = (sql: Sql) =>
        sql`INSERT INTO coolock_locks AS l (name, fence, held_until, owner)
          SELECT ${name}, 1, ${fromNow(sql, guardMs)}, ${owner}
            WHERE ${holds(sql, name)}
          ON CONFLICT (name) DO UPDATE SET fence = l.fence + 1,
            held_until = excluded.held_until, owner = excluded.owner
            WHERE l.held_until <= now()
          RETURNING l.fence::text, ${expireIdle(sql, expiresInMs)}`;
      const rows = await run((sql) =>
        stamp(sql).catch(async (error) => {
          if (error?.code !== "42P01") throw error;
          await createTable(sql).catch(() => {}); // Racing creators: one wins.
          return stamp(sql);
        })
      );
      return rows.length === 0 ? undefined : BigInt(rows[0].fence);
    },
    async renew(run, { name, owner }, expiresInMs) {
      const rows = await run((sql) =>
        sql`SELECT ${expireIdle(sql, expiresInMs)} FROM coolock_locks
          WHERE name = ${name} AND owner = ${owner} AND ${holds(sql, name)}`
      );
      return rows.length > 0;
    },
    async hold(run, { name, owner }, holdMs) {
      await run((sql) =>
        sql`UPDATE coolock_locks SET held_until = ${fromNow(sql, holdMs)}
          WHERE name = ${name} AND owner = ${owner} AND ${holds(sql, name)}`
      );
    },
    async guardLeftMs(run, name) {
      const [row] = await run((sql) =>
        sql`SELECT ceil(extract(epoch FROM held_until - now()) * 1000)::float8
          AS ms FROM coolock_locks WHERE name = ${name}`
          .catch(() => [])
      );
      return row?.ms ?? 0;
    },
  };
}

/**
 * The PostgreSQL backend. The URI is libpq's:
 * `postgres[ql]://user:password@host[:port][/database]`, with `sslmode`
 * (`disable`, `prefer` (the default), `require`, `verify-ca`, `verify-full`),
 * `sslrootcert` (or `ca`), `sslcert` (or `cert`), `sslkey` (or `key`) and
 * `connect_timeout` (seconds, default 5). It needs the right to create the
 * table `coolock_locks` (or an existing one) in the search path.
 *
 * @param uri the server's URI
 *
 * @example
 * ```ts ignore
 * import { postgres } from "./mod.ts";
 * import { withLock } from "../../../mod.ts";
 * await using backend = postgres("postgres://app:secret@db.internal/app");
 * await withLock({ backend, lock: "nightly-report" }, () => "done");
 * ```
 */
export function postgres(uri: string | URL): Backend {
  const text = String(uri);
  const parsed = parsePostgresUri(text);
  return new SqlLockBackend(
    text.slice(0, text.indexOf(":")).toLowerCase(),
    dialect(parsed),
  );
}
