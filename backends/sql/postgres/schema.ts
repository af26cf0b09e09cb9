/**
 * Where PostgreSQL keeps a lock: slot `k`'s session advisory lock
 * `hashtextextended(name, k)` (64 bits; slot 0 is the previous release's
 * key, and a seed per slot keeps `"a"`'s slot 1 apart from a lock named
 * `"a:1"`), and the two tables (see `../dialect.ts`): `coolock_locks`, whose
 * first four columns are the previous release's table, and `coolock_slots`.
 * Also the SQL fragments every statement shares: the proof that this session
 * holds a slot's lock, lease ends by the server's clock, the idle bound.
 *
 * @module
 */

import type { SqlRun } from "../session.ts";
import { type Sql, sqlState } from "./client.ts";

/** The advisory lock key of one slot. */
export const key = (sql: Sql, name: string, slot: number) =>
  sql`hashtextextended(${name}::text, ${slot}::int8)`;

/**
 * The session holding slot `slot` of `name` (a `pid`), among `pg_locks`
 * rows; `name` and `slot` are SQL fragments of the outer query.
 */
export const holderPid = (
  sql: Sql,
  name: ReturnType<Sql>,
  slot: ReturnType<Sql>,
) =>
  sql`(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
    AND objsubid = 1 AND ((classid::int8 << 32) | objid::int8)
      = hashtextextended(${name}, ${slot}) LIMIT 1)`;

/**
 * Proves, inside the statement, that this very session holds the slot's
 * lock: after postgres.js's silent reconnect a statement would otherwise
 * run on a session without it.
 */
export const holds = (sql: Sql, name: string, slot: number) =>
  sql`EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
    AND pid = pg_backend_pid() AND granted AND objsubid = 1
    AND ((classid::int8 << 32) | objid::int8) = ${key(sql, name, slot)})`;

/**
 * Makes the server end this session once it idles (goes unrenewed) past the
 * lease, so that a stopped or partitioned holder's advisory lock goes once
 * its row has run out. The slack lets the holder's own deadline fire first.
 * The setting is an int of ms (24.8 days at most): a longer lease's idle
 * bound is clamped, which only ends a stuck session sooner; its row still
 * holds. PostgreSQL 14 has the setting; older servers rely on TCP
 * keepalives alone.
 */
export const expireIdle = (sql: Sql, ms: number) =>
  sql`CASE WHEN current_setting('server_version_num')::int >= 140000
    THEN set_config('idle_session_timeout',
      ${String(Math.min(2 ** 31 - 1, Math.ceil(ms + IDLE_SLACK_MS)))}, false)
    END`;
const IDLE_SLACK_MS = 1_000;

/** `now() + ms`, by the server's clock; any duration up to 366 days. */
export const fromNow = (sql: Sql, ms: number) =>
  sql`(now() + ${String(Math.max(0, ms))}::float8 * interval '1 ms')`;

/** The table that holds slot `slot`'s row, and the condition for the slot. */
export const tableOf = (sql: Sql, slot: number) =>
  sql(slot === 0 ? "coolock_locks" : "coolock_slots");
export const slotIs = (sql: Sql, slot: number) =>
  slot === 0 ? sql`` : sql`AND slot = ${slot}::int`;

/** The limit stored with `name` while a lease given under it may live. */
export const liveLimit = (sql: Sql, name: string) =>
  sql`(SELECT lim FROM coolock_locks WHERE name = ${name}::text
    AND lim_until > now())`;

/** In an upsert of `coolock_locks AS l`: the stored limit lets this one in. */
export const limitFits = (sql: Sql) =>
  sql`(l.lim IS NULL OR l.lim = excluded.lim OR l.lim_until IS NULL
    OR l.lim_until <= now())`;

/** In an upsert of `coolock_locks AS l`: until when the limit binds. */
export const limitUntil = (sql: Sql) =>
  sql`CASE WHEN l.lim = excluded.lim AND l.lim_until > excluded.lim_until
    THEN l.lim_until ELSE excluded.lim_until END`;

const NEW_COLUMNS = [
  ["node", "text"],
  ["since", "timestamptz"],
  ["token", "bigint"],
  ["guard_until", "timestamptz"],
  ["lim", "integer"],
  ["lim_until", "timestamptz"],
];

const LOCKS_TABLE = `CREATE TABLE IF NOT EXISTS coolock_locks (
  name text PRIMARY KEY, fence bigint NOT NULL,
  held_until timestamptz NOT NULL, owner text NOT NULL,
  ${NEW_COLUMNS.map(([column, type]) => `${column} ${type}`).join(", ")})`;
const SLOTS_TABLE = `CREATE TABLE IF NOT EXISTS coolock_slots (
  name text NOT NULL, slot integer NOT NULL, token bigint NOT NULL,
  held_until timestamptz NOT NULL, owner text NOT NULL, node text,
  since timestamptz, guard_until timestamptz, PRIMARY KEY (name, slot))`;

/** Racing creators: another coolock created it first. */
const RACED = ["42P07", "23505", "42701"];

/**
 * Creates the tables, or adds this release's columns to the previous
 * release's `coolock_locks`: nullable columns, which PostgreSQL adds without
 * rewriting the table and which that release's statements never name, so
 * old and new coolocks keep working side by side. Only what is missing is
 * created, so a user without CREATE rights works on ready tables.
 */
export async function ensureSchema(sql: Sql): Promise<void> {
  const names = NEW_COLUMNS.map(([column]) => column).join(",");
  const [found] = await sql`SELECT
    to_regclass('coolock_locks') IS NOT NULL AS locks,
    to_regclass('coolock_slots') IS NOT NULL AS slots,
    (SELECT string_agg(c, ',') FROM unnest(string_to_array(${names}, ',')) c
      WHERE NOT EXISTS (SELECT 1 FROM pg_attribute
        WHERE attrelid = to_regclass('coolock_locks') AND attname = c
          AND NOT attisdropped)) AS missing`;
  const raced = (error: unknown) => {
    if (!RACED.includes(sqlState(error) ?? "")) throw error;
  };
  if (!found.locks) await sql.unsafe(LOCKS_TABLE).catch(raced);
  else if (found.missing) {
    const missing = String(found.missing).split(",");
    const add = NEW_COLUMNS.filter(([column]) => missing.includes(column))
      .map(([column, type]) => `ADD COLUMN IF NOT EXISTS ${column} ${type}`)
      .join(", ");
    await sql.unsafe(`ALTER TABLE coolock_locks ${add}`).catch((error) => {
      if (sqlState(error) !== "42501") return raced(error);
      throw new Error(
        `table coolock_locks lacks this release's columns (${missing}) and this user may not add them: have its owner run coolock once, or run ALTER TABLE coolock_locks ${add}`,
      );
    });
  }
  if (!found.slots) await sql.unsafe(SLOTS_TABLE).catch(raced);
}

/** Runs `query`, creating or upgrading the tables once if they fall short. */
export function withSchema<T>(
  run: SqlRun<Sql>,
  query: (sql: Sql) => Promise<T>,
): Promise<T> {
  return run((sql) =>
    query(sql).catch(async (error) => {
      if (!["42P01", "42703"].includes(sqlState(error) ?? "")) throw error;
      await ensureSchema(sql);
      return query(sql);
    })
  );
}
