/**
 * The PostgreSQL backend: the factory and its dialect. Slot `k` of a lock
 * is the session advisory lock `hashtextextended(name, k)`, held on one
 * connection per lease, together with the slot's row (`schema.ts`), whose
 * `held_until` the server judges with its own `now()`. Operator calls are
 * in `operate.ts`.
 *
 * @module
 */

import type { Backend } from "../../../src/backend.ts";

export type {
  Backend,
  BackendCapabilities,
  CheckResult,
  Claim,
  HolderStatus,
  LockRequest,
  LockStatus,
  Removal,
} from "../../../src/backend.ts";
import type { SqlDialect } from "../dialect.ts";
import { SqlLockBackend } from "../mod.ts";
import { sqlPermissions } from "../uri.ts";
import {
  loadPostgres,
  openPostgres,
  postgresEnv,
  postgresSys,
  type Sql,
  sqlState,
} from "./client.ts";
import {
  checkPostgres,
  forceReleasePostgres,
  statusPostgres,
} from "./operate.ts";
import {
  expireIdle,
  fromNow,
  holds,
  key,
  limitFits,
  limitUntil,
  liveLimit,
  slotIs,
  tableOf,
  withSchema,
} from "./schema.ts";
import { parsePostgresUri, type PostgresTarget } from "./uri.ts";

function dialect(target: PostgresTarget): SqlDialect<Sql> {
  return {
    display: target.display,
    timeoutMs: target.timeoutMs,
    noun: "session",
    permissions: sqlPermissions(
      target.hosts,
      target.files,
      postgresEnv(target),
      postgresSys(target),
    ),
    load: loadPostgres,
    open: (gone) => openPostgres(target, () => gone()),
    async survey(run, { name, limit }) {
      const [row] = await withSchema(
        run,
        (sql) =>
          sql`SELECT ${liveLimit(sql, name)} AS lim, concat_ws(',',
          (SELECT '0' FROM coolock_locks WHERE name = ${name}::text
            AND held_until > now()),
          (SELECT string_agg(slot::text, ',') FROM coolock_slots
            WHERE name = ${name}::text AND held_until > now()
              AND slot < ${limit}::int)) AS live`,
      );
      return {
        live: String(row.live ?? "").split(",").filter(Boolean).map(Number),
        ...(row.lim === null ? {} : { limit: Number(row.lim) }),
      };
    },
    async tryLock(run, { name }, slot) {
      const [row] = await withSchema(
        run,
        (sql) =>
          sql`SELECT CASE WHEN EXISTS (SELECT 1 FROM ${tableOf(sql, slot)}
            WHERE name = ${name}::text ${slotIs(sql, slot)}
              AND held_until > now())
          THEN false ELSE pg_try_advisory_lock(${key(sql, name, slot)}) END
          AS got, ${liveLimit(sql, name)} AS lim`,
      );
      return {
        got: row.got === true,
        ...(row.lim === null ? {} : { limit: Number(row.lim) }),
      };
    },
    lock(run, name, slot, waitMs) {
      return run((sql) =>
        sql`WITH t AS MATERIALIZED
            (SELECT set_config('lock_timeout', ${String(waitMs)}, true))
          SELECT pg_advisory_lock(${key(sql, name, slot)}) FROM t`.then(
          () => true,
          (error) => {
            if (sqlState(error) === "55P03") return false; // lock_timeout
            throw error;
          },
        )
      );
    },
    async unlock(run, name, slot) {
      await run((sql) =>
        sql`SELECT pg_advisory_unlock(${key(sql, name, slot)})`
      );
    },
    async stamp(run, request, slot) {
      const { name, owner, node, limit, guardMs } = request;
      const leaseMs = Math.max(request.expiresInMs, guardMs);
      const [row] = await withSchema(run, (sql) => {
        const lease = fromNow(sql, leaseMs);
        const guard = fromNow(sql, guardMs);
        const stamp = slot === 0
          ? sql`s AS (INSERT INTO coolock_locks AS l (name, fence,
              held_until, owner, node, since, token, guard_until, lim,
              lim_until)
            SELECT ${name}::text, 1, ${lease}, ${owner}::text, ${node}::text,
              now(), 1, ${guard}, ${limit}::int, ${lease}
              WHERE ${holds(sql, name, 0)}
            ON CONFLICT (name) DO UPDATE SET fence = l.fence + 1,
              token = l.fence + 1, held_until = excluded.held_until,
              owner = excluded.owner, node = excluded.node,
              since = excluded.since, guard_until = excluded.guard_until,
              lim = excluded.lim, lim_until = ${limitUntil(sql)}
            WHERE l.held_until <= now() AND ${limitFits(sql)}
            RETURNING l.token)`
          : sql`f AS (INSERT INTO coolock_locks AS l (name, fence,
              held_until, owner, lim, lim_until)
            SELECT ${name}::text, 1, 'epoch', '', ${limit}::int, ${lease}
              WHERE ${holds(sql, name, slot)} AND NOT EXISTS (SELECT 1
                FROM coolock_slots WHERE name = ${name}::text
                  AND slot = ${slot}::int AND held_until > now())
            ON CONFLICT (name) DO UPDATE SET fence = l.fence + 1,
              lim = excluded.lim, lim_until = ${limitUntil(sql)}
            WHERE ${limitFits(sql)}
            RETURNING l.fence),
          s AS (INSERT INTO coolock_slots AS s (name, slot, token,
              held_until, owner, node, since, guard_until)
            SELECT ${name}::text, ${slot}::int, f.fence, ${lease},
              ${owner}::text, ${node}::text, now(), ${guard} FROM f
            ON CONFLICT (name, slot) DO UPDATE SET token = excluded.token,
              held_until = excluded.held_until, owner = excluded.owner,
              node = excluded.node, since = excluded.since,
              guard_until = excluded.guard_until
            RETURNING s.token)`;
        return sql`WITH ${stamp}
          SELECT (SELECT token::text FROM s) AS token,
            ${liveLimit(sql, name)} AS lim,
            CASE WHEN EXISTS (SELECT 1 FROM s)
              THEN ${expireIdle(sql, leaseMs)} END AS idle`;
      });
      return {
        ...(row.token === null ? {} : { token: BigInt(row.token) }),
        ...(row.lim === null ? {} : { limit: Number(row.lim) }),
      };
    },
    async renew(run, { name, owner }, slot, expiresInMs) {
      const rows = await withSchema(run, (sql) => {
        const lease = fromNow(sql, expiresInMs);
        const extend = slot === 0
          ? sql`u AS (UPDATE coolock_locks SET held_until = ${lease},
              lim_until = GREATEST(lim_until, ${lease})
            WHERE name = ${name}::text AND owner = ${owner}::text
              AND ${holds(sql, name, 0)} RETURNING 1)`
          : sql`u AS (UPDATE coolock_slots SET held_until = ${lease}
            WHERE name = ${name}::text AND slot = ${slot}::int
              AND owner = ${owner}::text AND ${holds(sql, name, slot)}
            RETURNING 1),
          f AS (UPDATE coolock_locks SET
              lim_until = GREATEST(lim_until, ${lease})
            WHERE name = ${name}::text AND EXISTS (SELECT 1 FROM u)
            RETURNING 1)`;
        return sql`WITH ${extend}
          SELECT ${expireIdle(sql, expiresInMs)} AS idle FROM u`;
      });
      return rows.length > 0;
    },
    async hold(run, { name, owner }, slot, holdMs) {
      await withSchema(run, (sql) =>
        sql`UPDATE ${tableOf(sql, slot)}
          SET held_until = ${fromNow(sql, holdMs)}
          WHERE name = ${name}::text ${slotIs(sql, slot)}
            AND owner = ${owner}::text AND ${holds(sql, name, slot)}`);
    },
    async leftMs(run, name, slot) {
      const [row] = await run((sql) =>
        sql`SELECT (extract(epoch FROM held_until - now()) * 1000)::float8
          AS ms FROM ${tableOf(sql, slot)}
          WHERE name = ${name}::text ${slotIs(sql, slot)}`
          .catch(() => [])
      );
      return Number(row?.ms ?? 0);
    },
    status: (run, name) => statusPostgres(run, name),
    forceRelease: (run, name) => forceReleasePostgres(run, name),
    async ping(run) {
      const started = performance.now();
      await run((sql) => sql`SELECT 1`);
      return performance.now() - started;
    },
    async whoami(run) {
      const [row] = await run((sql) => sql`SELECT current_user AS u`);
      return String(row.u);
    },
    credentialsProblem(error) {
      const state = sqlState(error);
      // 28P01 bad password, 28000 no such role or no entry in pg_hba.conf,
      // 3D000 no such database.
      if (!["28P01", "28000", "3D000"].includes(state ?? "")) {
        return undefined;
      }
      const cause = (error as { cause?: unknown }).cause ?? error;
      return `the server refused the login: ${
        (cause as Error).message.replace(/\s+/g, " ")
      }`;
    },
    check: (run) => checkPostgres(run, target),
  };
}

/**
 * The PostgreSQL backend. The URI is libpq's:
 * `postgres[ql]://user:password@host[:port][,host[:port]…][/database]`,
 * with `sslmode` (`disable`, `prefer` (the default), `require`, `verify-ca`,
 * `verify-full`), `sslrootcert` (or `ca`), `sslcert` (or `cert`), `sslkey`
 * (or `key`) and `connect_timeout` (seconds, default 5). It creates the
 * tables `coolock_locks` and `coolock_slots` in the search path when they
 * are missing, or uses existing ones. A bad URI is a `TypeError` here,
 * before anything connects.
 *
 * @param uri the server's URI
 * @returns the backend; nothing connects until the first lock
 *
 * @example Taking a lock on PostgreSQL
 * ```ts ignore
 * import { postgres } from "@coolock/coolock/postgres";
 * import { withLock } from "@coolock/coolock";
 * await using backend = postgres("postgres://app:secret@db.internal/app");
 * await withLock({ backend, lock: "nightly-report" }, () => "done");
 * ```
 */
export function postgres(uri: string | URL): Backend {
  const text = String(uri);
  const target = parsePostgresUri(text);
  return new SqlLockBackend(
    text.slice(0, text.indexOf(":")).toLowerCase(),
    dialect(target),
  );
}
