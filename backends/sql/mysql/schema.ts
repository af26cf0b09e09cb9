/**
 * Where MySQL and MariaDB keep a lock: slot `k`'s `GET_LOCK` name
 * ({@linkcode lockKey}; slot 0's is the previous release's), and the two
 * tables (see `../dialect.ts`): `coolock_locks`, whose first four columns
 * are the previous release's table, and `coolock_slots`. Times are
 * `DATETIME(6)` in UTC, judged by the server's `UTC_TIMESTAMP(6)`.
 *
 * @module
 */

import type { SqlRun } from "../session.ts";
import { type Connection, errno, query } from "./client.ts";

/**
 * The `GET_LOCK` name of slot `slot` of a lock: a readable prefix and 160
 * bits of SHA-256, 64 characters at most (MySQL 8's limit). Every name is
 * hashed, so that distinct names never collide, not even by case (the
 * server may compare lock names case-insensitively) or by length. Slots
 * above 0 hash the name with a NUL and the slot, which no lock name holds.
 */
export async function lockKey(name: string, slot = 0): Promise<string> {
  const input = slot === 0 ? name : `${name}\u0000${slot}`;
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(input)),
  );
  const hex = Array.from(
    digest.subarray(0, 20),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  return `coolock:${name.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 15)}:${hex}`;
}

/** The server's clock, for every lease and guard time. */
export const UTC = "UTC_TIMESTAMP(6)";
/** `UTC_TIMESTAMP(6)` plus a parameter's microseconds. */
export const FROM_NOW = `${UTC} + INTERVAL ? MICROSECOND`;
/** This connection holds the `GET_LOCK` name given as a parameter. */
export const MINE = "IS_USED_LOCK(?) = CONNECTION_ID()";

/** Milliseconds as whole microseconds, for {@linkcode FROM_NOW}. */
export const micros = (ms: number): number => Math.ceil(Math.max(0, ms) * 1000);

/**
 * The server ends a connection idle (unrenewed) for longer than the lease,
 * so that a stopped or partitioned holder's `GET_LOCK` goes once its row has
 * run out. `wait_timeout` is whole seconds, at most 365 days: a longer
 * lease's idle bound is clamped, which only ends a stuck connection sooner;
 * its row still holds.
 */
export const EXPIRE_IDLE = "SET SESSION wait_timeout = ?";
const IDLE_SLACK_MS = 1_000;
/** The `wait_timeout` for a lease of `ms`. */
export const idleSeconds = (ms: number): number =>
  Math.min(31_536_000, Math.ceil((ms + IDLE_SLACK_MS) / 1000));

/** The table of slot `slot`'s row, and the condition that picks it. */
export const tableOf = (slot: number): string =>
  slot === 0 ? "coolock_locks" : "coolock_slots";
export const slotIs = (slot: number): string =>
  slot === 0 ? "" : `AND slot = ${Math.trunc(slot)}`;

/**
 * The limit stored with a name (parameter) while leases under it may live.
 * Its columns are qualified: MySQL would take an unknown `lim` (a table of
 * the previous release) for the outer query's alias.
 */
export const LIVE_LIMIT = `(SELECT b.lim FROM coolock_locks b
  WHERE b.name = ? AND b.lim_until > ${UTC})`;

/**
 * Assignments of `coolock_locks` for a stamp: until when the limit binds,
 * then the limit. MySQL assigns left to right (MariaDB may assign all at
 * once); both read the old `lim` here. Parameters: limit, lease µs, lease
 * µs, limit.
 */
export const SET_LIMIT = `lim_until = IF(lim <=> ? AND lim_until > ${FROM_NOW},
  lim_until, ${FROM_NOW}), lim = ?`;
/** The stored limit lets a stamp in. Parameter: limit. */
export const LIMIT_FITS = `(lim IS NULL OR lim = ? OR lim_until IS NULL
  OR lim_until <= ${UTC})`;

const TEXT = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin";
const NEW_COLUMNS = [
  ["node", `VARCHAR(255) ${TEXT} NULL`],
  ["since", "DATETIME(6) NULL"],
  ["token", "BIGINT UNSIGNED NULL"],
  ["guard_until", "DATETIME(6) NULL"],
  ["lim", "INT NULL"],
  ["lim_until", "DATETIME(6) NULL"],
];
const LOCKS_TABLE = `CREATE TABLE IF NOT EXISTS coolock_locks (
  name VARCHAR(200) ${TEXT} PRIMARY KEY,
  fence BIGINT UNSIGNED NOT NULL, held_until DATETIME(6) NOT NULL,
  owner VARCHAR(255) ${TEXT} NOT NULL,
  ${NEW_COLUMNS.map(([column, type]) => `${column} ${type}`).join(", ")})`;
const SLOTS_TABLE = `CREATE TABLE IF NOT EXISTS coolock_slots (
  name VARCHAR(200) ${TEXT} NOT NULL, slot INT NOT NULL,
  token BIGINT UNSIGNED NOT NULL, held_until DATETIME(6) NOT NULL,
  owner VARCHAR(255) ${TEXT} NOT NULL, node VARCHAR(255) ${TEXT} NULL,
  since DATETIME(6) NULL, guard_until DATETIME(6) NULL,
  PRIMARY KEY (name, slot))`;

/** Table exists, duplicate column: another coolock created it first. */
const RACED = [1050, 1060];

/** Which of the two tables exist, and the columns `coolock_locks` lacks. */
export async function schemaOf(
  conn: Connection,
): Promise<{ locks: boolean; slots: boolean; missing: string[] }> {
  const rows = await query(
    conn,
    `SELECT TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE()
        AND TABLE_NAME IN ('coolock_locks', 'coolock_slots')`,
  );
  const has = (table: string, column?: string) =>
    rows.some((row) =>
      String(row.t).toLowerCase() === table &&
      (column === undefined || String(row.c).toLowerCase() === column)
    );
  return {
    locks: has("coolock_locks"),
    slots: has("coolock_slots"),
    missing: NEW_COLUMNS.map(([column]) => column).filter((column) =>
      !has("coolock_locks", column)
    ),
  };
}

/**
 * Creates the tables, or adds this release's columns to the previous
 * release's `coolock_locks`: nullable columns (an instant change on
 * MariaDB 10.3 and MySQL 8.0), which that release's statements never name,
 * so old and new coolocks keep working side by side. Only what is missing
 * is created, so a user without CREATE or ALTER rights works on ready
 * tables.
 */
export async function ensureSchema(conn: Connection): Promise<void> {
  const found = await schemaOf(conn);
  const raced = (error: unknown) => {
    if (!RACED.includes(errno(error) ?? 0)) throw error;
  };
  if (!found.locks) await query(conn, LOCKS_TABLE).catch(raced);
  else if (found.missing.length > 0) {
    const add = NEW_COLUMNS.filter(([column]) => found.missing.includes(column))
      .map(([column, type]) => `ADD COLUMN ${column} ${type}`).join(", ");
    await query(conn, `ALTER TABLE coolock_locks ${add}`).catch((error) => {
      if (errno(error) !== 1142) return raced(error);
      throw new Error(
        `table coolock_locks lacks this release's columns (${found.missing}) and this user may not add them: have a user with the ALTER privilege run coolock once, or run ALTER TABLE coolock_locks ${add}`,
      );
    });
  }
  if (!found.slots) await query(conn, SLOTS_TABLE).catch(raced);
}

/** Runs `work`, creating or upgrading the tables once if they fall short. */
export function withSchema<T>(
  run: SqlRun<Connection>,
  work: (conn: Connection) => Promise<T>,
): Promise<T> {
  return run((conn) =>
    work(conn).catch(async (error) => {
      // No such table, unknown column.
      if (![1146, 1054].includes(errno(error) ?? 0)) throw error;
      await ensureSchema(conn);
      return work(conn);
    })
  );
}
