/**
 * The operator's calls on MySQL and MariaDB: `status` reads the rows and
 * `IS_USED_LOCK` of each slot's name; `forceRelease` ends every lease and
 * guard of a lock in one transaction (its rows and their fencing counter
 * stay) and `KILL`s the connections that hold its `GET_LOCK` names, which
 * needs the holder's user or the CONNECTION ADMIN (SUPER) privilege (without
 * it, the holder loses the lock at its next renewal, its row's owner being
 * gone); `check` reads the version and the clock, probes the tables in a
 * transaction it rolls back, and refuses a read-only server (a replica).
 *
 * @module
 */

import type { CheckResult, Removal } from "../../../src/backend.ts";
import type { SqlSlotRow } from "../dialect.ts";
import { oneLine, type SqlRun } from "../session.ts";
import { type Connection, errno, exec, query, type Result } from "./client.ts";
import { ensureSchema, lockKey, schemaOf, UTC } from "./schema.ts";

const FIELDS = (table: string, limits: string) =>
  `${table}.token, ${table}.owner, ${table}.node,
  DATE_FORMAT(${table}.since, '%Y-%m-%dT%H:%i:%s.%fZ') AS since,
  TIMESTAMPDIFF(MICROSECOND, ${UTC}, ${table}.held_until) AS left_us,
  TIMESTAMPDIFF(MICROSECOND, ${UTC}, ${table}.guard_until) AS guard_us,
  ${limits}.fence, IF(${limits}.lim_until > ${UTC}, ${limits}.lim, NULL)
    AS lim`;

const ROWS = `SELECT l.name, 0 AS slot, ${FIELDS("l", "l")}
  FROM coolock_locks l WHERE (? IS NULL OR l.name = ?)
  UNION ALL SELECT s.name, s.slot, ${FIELDS("s", "l")}
  FROM coolock_slots s JOIN coolock_locks l ON l.name = s.name
  WHERE (? IS NULL OR s.name = ?)`;

/** The connection that holds each row's `GET_LOCK` name, 100 at a time. */
async function holders(
  conn: Connection,
  rows: readonly Record<string, unknown>[],
): Promise<(string | undefined)[]> {
  const found: (string | undefined)[] = [];
  for (let at = 0; at < rows.length; at += 100) {
    const batch = rows.slice(at, at + 100);
    const keys = await Promise.all(
      batch.map((row) => lockKey(String(row.name), Number(row.slot))),
    );
    const [answer] = await query(
      conn,
      `SELECT ${keys.map((_, i) => `IS_USED_LOCK(?) AS c${i}`).join(", ")}`,
      keys,
    );
    keys.forEach((_, i) => {
      const id = answer[`c${i}`];
      found.push(id === null ? undefined : String(id));
    });
  }
  return found;
}

async function slotRows(
  conn: Connection,
  name: string | undefined,
): Promise<SqlSlotRow[]> {
  const rows: Result = await query(conn, ROWS, [
    name ?? null,
    name ?? null,
    name ?? null,
    name ?? null,
  ]);
  const sessions = await holders(conn, rows);
  return rows.map((row, i) => ({
    name: String(row.name),
    slot: Number(row.slot),
    ...(row.token === null ? {} : { token: BigInt(String(row.token)) }),
    ...(row.owner ? { owner: String(row.owner) } : {}),
    ...(row.node ? { node: String(row.node) } : {}),
    ...(row.since ? { since: new Date(String(row.since)) } : {}),
    leftMs: Number(row.left_us) / 1000,
    ...(row.guard_us === null
      ? {}
      : { guardLeftMs: Number(row.guard_us) / 1000 }),
    ...(sessions[i] === undefined ? {} : { session: sessions[i] }),
    fence: BigInt(String(row.fence)),
    ...(row.lim === null ? {} : { limit: Number(row.lim) }),
  }));
}

/** Runs `work` on the tables, or resolves `none` when there are none yet. */
function onTables<T>(
  run: SqlRun<Connection>,
  none: T,
  work: (conn: Connection) => Promise<T>,
): Promise<T> {
  return run(async (conn) => {
    const schema = await schemaOf(conn);
    if (!schema.locks) return none;
    if (!schema.slots || schema.missing.length > 0) await ensureSchema(conn);
    return work(conn);
  });
}

/** Every slot's row of `name`, or of every lock, with its holder. */
export function statusMysql(
  run: SqlRun<Connection>,
  name: string | undefined,
): Promise<SqlSlotRow[]> {
  return onTables(run, [], (conn) => slotRows(conn, name));
}

/**
 * Ends the leases and guards of `name` in one transaction (the rows stay),
 * then kills the connections that hold its `GET_LOCK` names.
 */
export async function forceReleaseMysql(
  run: SqlRun<Connection>,
  name: string,
): Promise<Removal[]> {
  const rows = await onTables(run, [], async (conn) => {
    await query(conn, "START TRANSACTION");
    try {
      // The counter row's lock holds off every slot's stamp meanwhile.
      await query(
        conn,
        "SELECT fence FROM coolock_locks WHERE name = ? FOR UPDATE",
        [name],
      );
      const rows = await slotRows(conn, name);
      await query(
        conn,
        `UPDATE coolock_locks SET held_until = '1970-01-01', owner = '',
          lim_until = NULL WHERE name = ?`,
        [name],
      );
      await query(
        conn,
        `UPDATE coolock_slots SET held_until = '1970-01-01', owner = ''
          WHERE name = ?`,
        [name],
      );
      await query(conn, "COMMIT");
      return rows;
    } catch (error) {
      await query(conn, "ROLLBACK").catch(() => {});
      throw error;
    }
  });
  const [{ me }] = await exec(run, "SELECT CONNECTION_ID() AS me");
  const removed: Removal[] = [];
  for (const row of rows) {
    const who = `slot ${row.slot} of ${row.owner ?? "an unknown owner"}${
      row.token === undefined ? "" : `, token ${row.token}`
    }`;
    if (row.leftMs > 0) {
      removed.push(
        row.session !== undefined
          ? { what: "lease", detail: who }
          : (row.guardLeftMs ?? 0) > 0
          ? { what: "guard", detail: `guard time of ${who}` }
          : { what: "lease", detail: `${who}, whose connection is gone` },
      );
    }
    if (row.session === undefined || row.session === String(me)) continue;
    const id = Number(row.session);
    const ended = await exec(run, "KILL CONNECTION ?", [id]).then(
      () => "ended",
      (error) =>
        errno(error) === 1094
          ? "already gone"
          : `not ended (${
            oneLine(error.cause ?? error)
          }): its holder loses the lock at its next renewal`,
    );
    removed.push({ what: "connection", detail: `connection ${id}, ${ended}` });
  }
  return removed;
}

/** Version, clock, permissions (a rolled-back probe) and read-only. */
export async function checkMysql(
  run: SqlRun<Connection>,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const [version] = await exec(run, "SELECT VERSION() AS v");
  results.push({
    name: "version",
    status: "ok",
    detail: `server ${version.v}`,
  });
  const before = Date.now();
  const [clock] = await exec(
    run,
    "SELECT UNIX_TIMESTAMP(SYSDATE(6)) * 1000 AS ms",
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
  const permission = await run(async (conn): Promise<CheckResult> => {
    try {
      const had = await schemaOf(conn);
      // DDL can't be rolled back here: what is missing is created for real,
      // as the first lock would.
      await ensureSchema(conn);
      await query(conn, "START TRANSACTION");
      try {
        await query(
          conn,
          `INSERT INTO coolock_locks (name, fence, held_until, owner)
            VALUES (?, 0, ${UTC}, '') ON DUPLICATE KEY UPDATE owner = owner`,
          [probe],
        );
        await query(
          conn,
          `INSERT INTO coolock_slots (name, slot, token, held_until, owner)
            VALUES (?, 1, 0, ${UTC}, '') ON DUPLICATE KEY UPDATE owner = owner`,
          [probe],
        );
      } finally {
        await query(conn, "ROLLBACK");
      }
      const made = !had.locks || !had.slots || had.missing.length > 0;
      return {
        name: "permissions",
        status: "ok",
        detail:
          `may write coolock_locks and coolock_slots (probed in a transaction that was rolled back)${
            made ? "; created what was missing of them" : ""
          }`,
      };
    } catch (error) {
      return {
        name: "permissions",
        status: "fail",
        detail: `can't use the tables coolock_locks and coolock_slots: ${
          oneLine(error)
        }`,
      };
    }
  });
  results.push(permission);
  const [mode] = await exec(run, "SELECT @@global.read_only AS ro");
  results.push(
    Number(mode.ro) === 1
      ? {
        name: "primary",
        status: "fail",
        detail:
          "the server is read-only (a replica?): coolock needs the primary, and GET_LOCK locks are local to one server",
      }
      : {
        name: "primary",
        status: "ok",
        detail:
          "read-write; GET_LOCK locks are local to this server, so every node must use this one",
      },
  );
  return results;
}
