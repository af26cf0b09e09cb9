/**
 * The operator's calls on PostgreSQL: `status` reads the rows and
 * `pg_locks`; `forceRelease` ends every lease and guard of a lock (its rows
 * and their fencing counter stay) and terminates the sessions that hold its
 * advisory locks, which needs the holder's role, membership in
 * `pg_signal_backend`, or superuser (without it, the holder loses the lock
 * at its next renewal, its row's owner being gone); `check` probes the
 * tables in a transaction it rolls back, reads the version and the clock,
 * and looks for a transaction-mode pooler in between.
 *
 * @module
 */

import type { CheckResult, Removal } from "../../../src/backend.ts";
import type { SqlSlotRow } from "../dialect.ts";
import type { SqlRun } from "../session.ts";
import { oneLine } from "../session.ts";
import type { Sql } from "./client.ts";
import { ensureSchema, holderPid, withSchema } from "./schema.ts";
import type { PostgresTarget } from "./uri.ts";

/** Every slot's row of `name`, or of every lock, with its holder's pid. */
export async function statusPostgres(
  run: SqlRun<Sql>,
  name: string | undefined,
): Promise<SqlSlotRow[]> {
  const [exists] = await run((sql) =>
    sql`SELECT to_regclass('coolock_locks') IS NOT NULL AS ok`
  );
  if (!exists.ok) return [];
  const rows = await withSchema(
    run,
    (sql) =>
      sql`WITH n AS (SELECT * FROM coolock_locks
        WHERE ${name ?? null}::text IS NULL OR name = ${name ?? null}::text),
      s AS (SELECT name, 0 AS slot, token, owner, node, since, held_until,
          guard_until FROM n
        UNION ALL SELECT c.name, c.slot, c.token, c.owner, c.node, c.since,
          c.held_until, c.guard_until
        FROM coolock_slots c JOIN n ON n.name = c.name)
    SELECT s.name, s.slot, s.token::text AS token, s.owner, s.node, s.since,
      (extract(epoch FROM s.held_until - now()) * 1000)::float8 AS left_ms,
      (extract(epoch FROM s.guard_until - now()) * 1000)::float8
        AS guard_left_ms,
      ${holderPid(sql, sql`s.name`, sql`s.slot::int8`)} AS pid,
      n.fence::text AS fence,
      CASE WHEN n.lim_until > now() THEN n.lim END AS lim
    FROM s JOIN n ON n.name = s.name`,
  );
  return rows.map((row) => ({
    name: row.name,
    slot: Number(row.slot),
    ...(row.token === null ? {} : { token: BigInt(row.token) }),
    ...(row.owner ? { owner: row.owner } : {}),
    ...(row.node ? { node: row.node } : {}),
    ...(row.since instanceof Date ? { since: row.since } : {}),
    leftMs: Number(row.left_ms),
    ...(row.guard_left_ms === null
      ? {}
      : { guardLeftMs: Number(row.guard_left_ms) }),
    ...(row.pid === null ? {} : { session: String(row.pid) }),
    fence: BigInt(row.fence),
    ...(row.lim === null ? {} : { limit: Number(row.lim) }),
  }));
}

/**
 * Ends the leases and guards of `name` in one statement (the rows stay),
 * then terminates the sessions that hold its advisory locks.
 */
export async function forceReleasePostgres(
  run: SqlRun<Sql>,
  name: string,
): Promise<Removal[]> {
  const [exists] = await run((sql) =>
    sql`SELECT to_regclass('coolock_locks') IS NOT NULL AS ok,
      current_setting('server_version_num')::int AS version`
  );
  if (!exists.ok) return [];
  const rows = await withSchema(
    run,
    (sql) =>
      sql`WITH old AS (SELECT name, 0 AS slot, owner, token, held_until,
          guard_until FROM coolock_locks WHERE name = ${name}::text
        UNION ALL SELECT name, slot, owner, token, held_until, guard_until
          FROM coolock_slots WHERE name = ${name}::text),
      u AS (UPDATE coolock_locks SET held_until = 'epoch', owner = '',
          lim_until = NULL WHERE name = ${name}::text RETURNING 1),
      v AS (UPDATE coolock_slots SET held_until = 'epoch', owner = ''
          WHERE name = ${name}::text RETURNING 1)
    SELECT slot, owner, token::text AS token, held_until > now() AS live,
      coalesce(guard_until > now(), false) AS guarded,
      ${holderPid(sql, sql`name`, sql`slot::int8`)} AS pid,
      pg_backend_pid() AS me
    FROM old ORDER BY slot`,
  );
  const removed: Removal[] = [];
  for (const row of rows) {
    const who = `slot ${row.slot} of ${row.owner || "an unknown owner"}${
      row.token === null ? "" : `, token ${row.token}`
    }`;
    if (row.live) {
      removed.push(
        row.pid !== null
          ? { what: "lease", detail: who }
          : row.guarded
          ? { what: "guard", detail: `guard time of ${who}` }
          : { what: "lease", detail: `${who}, whose session is gone` },
      );
    }
    if (row.pid === null || row.pid === row.me) continue;
    const pid = Number(row.pid);
    const ended = await run((sql) =>
      (exists.version >= 140000
        ? sql`SELECT pg_terminate_backend(${pid}::int, 2000) AS ok`
        : sql`SELECT pg_terminate_backend(${pid}::int) AS ok`).then(
          ([answer]) => answer.ok ? "ended" : "already gone",
          (error) =>
            `not ended (${
              oneLine(error)
            }): its holder loses the lock at its next renewal`,
        )
    );
    removed.push({ what: "session", detail: `backend pid ${pid}, ${ended}` });
  }
  return removed;
}

/** Thrown to roll the probe's transaction back. */
const ROLLBACK = Symbol("rollback");

/** Version, clock, permissions (a rolled-back probe) and pooling. */
export async function checkPostgres(
  run: SqlRun<Sql>,
  target: PostgresTarget,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const [version] = await run((sql) =>
    sql`SELECT current_setting('server_version') AS text,
      current_setting('server_version_num')::int AS num`
  );
  results.push(
    version.num >= 140000
      ? {
        name: "version",
        status: "ok",
        detail: `PostgreSQL ${version.text}`,
      }
      : {
        name: "version",
        status: "warn",
        detail:
          `PostgreSQL ${version.text} has no idle_session_timeout (14 and later): a stopped holder's session keeps its lock until TCP keepalives or its death end it`,
      },
  );
  const before = Date.now();
  const [clock] = await run((sql) =>
    sql`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`
  );
  const after = Date.now();
  const skew = Number(clock.ms) - (before + after) / 2;
  results.push({
    name: "clock",
    status: Math.abs(skew) > 1_000 ? "warn" : "ok",
    detail: `the server's clock is ${Math.abs(skew).toFixed(1)} ms ${
      skew >= 0 ? "ahead of" : "behind"
    } this host's (±${
      ((after - before) / 2).toFixed(1)
    } ms); leases and guard time are judged by the server's clock alone`,
    ms: Math.round(skew * 10) / 10,
  });
  const probe = "\u001fcoolock-check";
  const permission = await run((sql) =>
    sql.begin(async (tx) => {
      const [had] = await tx`SELECT to_regclass('coolock_locks') IS NOT NULL
        AND to_regclass('coolock_slots') IS NOT NULL AS ok`;
      await ensureSchema(tx as unknown as Sql);
      await tx`INSERT INTO coolock_locks (name, fence, held_until, owner)
        VALUES (${probe}, 0, now(), '') ON CONFLICT (name)
        DO UPDATE SET owner = coolock_locks.owner`;
      await tx`INSERT INTO coolock_slots (name, slot, token, held_until, owner)
        VALUES (${probe}, 1, 0, now(), '') ON CONFLICT (name, slot)
        DO UPDATE SET owner = coolock_slots.owner`;
      throw { [ROLLBACK]: had.ok === true };
    }).then(
      () => ({ status: "fail", detail: "the probe was not rolled back" }),
      (error) =>
        error && typeof error === "object" && ROLLBACK in error
          ? {
            status: "ok",
            detail: `may ${
              error[ROLLBACK] ? "" : "create and "
            }write coolock_locks and coolock_slots (probed in a transaction that was rolled back)`,
          }
          : {
            status: "fail",
            detail: `can't use the tables coolock_locks and coolock_slots: ${
              oneLine(error)
            }`,
          },
    )
  );
  results.push({ name: "permissions", ...permission } as CheckResult);
  const sessions = [];
  for (let i = 0; i < 2; i++) {
    const [row] = await run((sql) =>
      sql`SELECT pg_backend_pid() AS pid, inet_server_port() AS port`
    );
    sessions.push(row);
  }
  const ports = target.hosts.map((host) => host.port);
  results.push(
    sessions[0].pid !== sessions[1].pid
      ? {
        name: "pooling",
        status: "fail",
        detail:
          "two statements ran in two server sessions: a pooler in transaction mode (PgBouncer?) sits in between, and session advisory locks need one session per connection",
      }
      : sessions[0].port !== null && !ports.includes(sessions[0].port)
      ? {
        name: "pooling",
        status: "warn",
        detail: `the server listens on port ${
          sessions[0].port
        }, not the URI's: a proxy or pooler sits in between; it must keep one server session per connection (PgBouncer: pool_mode = session)`,
      }
      : {
        name: "pooling",
        status: "ok",
        detail: "one server session per connection, no pooler seen",
      },
  );
  return results;
}
