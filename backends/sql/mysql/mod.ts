/**
 * The MySQL and MariaDB backend: the factory and its dialect. Slot `k` of a
 * lock is a `GET_LOCK` name (`schema.ts`), held on one connection per
 * lease, together with the slot's row, whose `held_until` the server judges
 * with its own `UTC_TIMESTAMP(6)`. Named locks are local to one server: a
 * replica doesn't see them. Operator calls are in `operate.ts`.
 *
 * @module
 */

import type { Backend, LockRequest } from "../../../src/backend.ts";

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
import type { SqlDialect, SqlStamp } from "../dialect.ts";
import { SqlLockBackend } from "../mod.ts";
import type { SqlRun } from "../session.ts";
import { sqlPermissions } from "../uri.ts";
import {
  type Connection,
  errno,
  exec,
  loadMysql,
  MYSQL_ENV,
  openMysql,
  query,
} from "./client.ts";
import { checkMysql, forceReleaseMysql, statusMysql } from "./operate.ts";
import {
  EXPIRE_IDLE,
  FROM_NOW,
  idleSeconds,
  LIMIT_FITS,
  LIVE_LIMIT,
  lockKey,
  micros,
  MINE,
  SET_LIMIT,
  slotIs,
  tableOf,
  UTC,
  withSchema,
} from "./schema.ts";
import { type MysqlTarget, parseMysqlUri } from "./uri.ts";

const STAMP_FIRST = `UPDATE coolock_locks SET token = fence + 1, ${SET_LIMIT},
  held_until = ${FROM_NOW}, owner = ?, node = ?, since = ${UTC},
  guard_until = ${FROM_NOW}, fence = LAST_INSERT_ID(fence + 1)
  WHERE name = ? AND held_until <= ${UTC} AND ${LIMIT_FITS} AND ${MINE}`;
const STAMP_COUNTER = `UPDATE coolock_locks SET ${SET_LIMIT},
  fence = LAST_INSERT_ID(fence + 1)
  WHERE name = ? AND ${LIMIT_FITS} AND ${MINE} AND NOT EXISTS (SELECT 1
    FROM coolock_slots WHERE name = ? AND slot = ? AND held_until > ${UTC})`;
const STAMP_SLOT = `INSERT INTO coolock_slots (name, slot, token, held_until,
  owner, node, since, guard_until)
  VALUES (?, ?, ?, ${FROM_NOW}, ?, ?, ${UTC}, ${FROM_NOW})
  ON DUPLICATE KEY UPDATE token = ?, held_until = ${FROM_NOW}, owner = ?,
    node = ?, since = ${UTC}, guard_until = ${FROM_NOW}`;
// The row the fencing counter lives in, for a name that has none yet: free,
// so that the previous release takes it as it would a missing row.
const COUNTER_ROW = `INSERT IGNORE INTO coolock_locks
  (name, fence, held_until, owner) VALUES (?, 0, '1970-01-01', '')`;

/**
 * Stamps slot `slot`'s row; the counter row is created first when missing.
 * Resolves the new token, or undefined when the row (or the limit) refused.
 */
async function stampRow(
  conn: Connection,
  request: LockRequest,
  slot: number,
  key: string,
): Promise<bigint | undefined> {
  const { name, owner, node, limit, guardMs } = request;
  const lease = micros(Math.max(request.expiresInMs, guardMs));
  const guard = micros(guardMs);
  const setLimit = [limit, lease, lease, limit];
  for (let tries = 0; tries < 2; tries++) {
    const counted = slot === 0
      ? await query(conn, STAMP_FIRST, [
        ...setLimit,
        lease,
        owner,
        node,
        guard,
        name,
        limit,
        key,
      ])
      : await query(conn, STAMP_COUNTER, [
        ...setLimit,
        name,
        limit,
        key,
        name,
        slot,
      ]);
    if (counted.affectedRows === 1) {
      const token = BigInt(counted.insertId ?? 0);
      if (slot > 0) {
        await query(conn, STAMP_SLOT, [
          name,
          slot,
          String(token),
          lease,
          owner,
          node,
          guard,
          String(token),
          lease,
          owner,
          node,
          guard,
        ]);
      }
      return token;
    }
    const created = await query(conn, COUNTER_ROW, [name]);
    if (created.affectedRows !== 1) return undefined;
  }
  return undefined;
}

function dialect(target: MysqlTarget): SqlDialect<Connection> {
  const run1 = (run: SqlRun<Connection>, sql: string, params: unknown[]) =>
    withSchema(run, (conn) => query(conn, sql, params));
  return {
    display: target.display,
    timeoutMs: target.timeoutMs,
    noun: "connection",
    permissions: sqlPermissions(target.hosts, target.files, MYSQL_ENV),
    load: loadMysql,
    open: (gone) => openMysql(target, gone),
    async survey(run, { name, limit }) {
      const [row] = await run1(
        run,
        `SELECT ${LIVE_LIMIT} AS lim, CONCAT_WS(',',
          (SELECT '0' FROM coolock_locks WHERE name = ?
            AND held_until > ${UTC}),
          (SELECT GROUP_CONCAT(slot) FROM coolock_slots WHERE name = ?
            AND held_until > ${UTC} AND slot < ?)) AS live`,
        [name, name, name, limit],
      );
      return {
        live: String(row.live ?? "").split(",").filter(Boolean).map(Number),
        ...(row.lim === null ? {} : { limit: Number(row.lim) }),
      };
    },
    async tryLock(run, { name }, slot) {
      // IF() evaluates GET_LOCK only when the row has run out.
      const [row] = await run1(
        run,
        `SELECT IF(EXISTS (SELECT 1 FROM ${tableOf(slot)} WHERE name = ?
            ${slotIs(slot)} AND held_until > ${UTC}), 0, GET_LOCK(?, 0))
          AS got, ${LIVE_LIMIT} AS lim`,
        [name, await lockKey(name, slot), name],
      );
      return {
        got: Number(row.got) === 1,
        ...(row.lim === null ? {} : { limit: Number(row.lim) }),
      };
    },
    async lock(run, name, slot, waitMs) {
      const [{ got }] = await exec(run, "SELECT GET_LOCK(?, ?) AS got", [
        await lockKey(name, slot),
        waitMs / 1000,
      ]);
      return Number(got) === 1;
    },
    async unlock(run, name, slot) {
      await exec(run, "SELECT RELEASE_LOCK(?)", [await lockKey(name, slot)]);
    },
    async stamp(run, request, slot): Promise<SqlStamp> {
      const key = await lockKey(request.name, slot);
      const leaseMs = Math.max(request.expiresInMs, request.guardMs);
      return await withSchema(run, async (conn) => {
        const token = await stampRow(conn, request, slot, key);
        if (token !== undefined) {
          await query(conn, EXPIRE_IDLE, [idleSeconds(leaseMs)]);
          return { token };
        }
        const [row] = await query(conn, `SELECT ${LIVE_LIMIT} AS lim`, [
          request.name,
        ]);
        return row.lim === null ? {} : { limit: Number(row.lim) };
      });
    },
    async renew(run, { name, owner }, slot, expiresInMs) {
      const lease = micros(expiresInMs);
      const key = await lockKey(name, slot);
      const extended = await run1(
        run,
        slot === 0
          ? `UPDATE coolock_locks SET held_until = ${FROM_NOW},
              lim_until = GREATEST(COALESCE(lim_until, ${FROM_NOW}),
                ${FROM_NOW})
            WHERE name = ? AND owner = ? AND ${MINE}`
          : `UPDATE coolock_slots s JOIN coolock_locks l ON l.name = s.name
            SET s.held_until = ${FROM_NOW},
              l.lim_until = GREATEST(COALESCE(l.lim_until, ${FROM_NOW}),
                ${FROM_NOW})
            WHERE s.name = ? AND s.slot = ${Math.trunc(slot)}
              AND s.owner = ? AND ${MINE}`,
        [lease, lease, lease, name, owner, key],
      );
      if (!extended.affectedRows) return false;
      await exec(run, EXPIRE_IDLE, [idleSeconds(expiresInMs)]);
      return true;
    },
    async hold(run, { name, owner }, slot, holdMs) {
      await run1(
        run,
        `UPDATE ${tableOf(slot)} SET held_until = ${FROM_NOW}
          WHERE name = ? ${slotIs(slot)} AND owner = ? AND ${MINE}`,
        [micros(holdMs), name, owner, await lockKey(name, slot)],
      );
    },
    async leftMs(run, name, slot) {
      const [row] = await exec(
        run,
        `SELECT TIMESTAMPDIFF(MICROSECOND, ${UTC}, held_until) AS us
          FROM ${tableOf(slot)} WHERE name = ? ${slotIs(slot)}`,
        [name],
      ).catch(() => []);
      return Number(row?.us ?? 0) / 1000;
    },
    status: (run, name) => statusMysql(run, name),
    forceRelease: (run, name) => forceReleaseMysql(run, name),
    async ping(run) {
      const started = performance.now();
      await exec(run, "SELECT 1");
      return performance.now() - started;
    },
    async whoami(run) {
      const [row] = await exec(run, "SELECT CURRENT_USER() AS u");
      return String(row.u);
    },
    credentialsProblem(error) {
      // Access denied for the user, or to the database; no such database.
      if (![1045, 1044, 1049].includes(errno(error) ?? 0)) return undefined;
      const cause = (error as { cause?: unknown }).cause ?? error;
      return `the server refused the login: ${
        (cause as Error).message.replace(/\s+/g, " ")
      }`;
    },
    check: (run) => checkMysql(run),
  };
}

/**
 * The MySQL and MariaDB backend:
 * `mysql://user:password@host[:port]/database`, with `ssl-mode`
 * (`DISABLED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`), `ssl-ca` (or
 * `ca`), `ssl-cert` (or `cert`), `ssl-key` (or `key`) and `connect_timeout`
 * (seconds, default 5). It creates the tables `coolock_locks` and
 * `coolock_slots` in the database when they are missing, or uses existing
 * ones. A bad URI is a `TypeError` here, before anything connects.
 *
 * @param uri the server's URI
 * @returns the backend; nothing connects until the first lock
 *
 * @example Taking a lock on MySQL or MariaDB
 * ```ts ignore
 * import { mysql } from "@coolock/coolock/mysql";
 * import { withLock } from "@coolock/coolock";
 * await using backend = mysql("mysql://app:secret@db.internal/app");
 * await withLock({ backend, lock: "nightly-report" }, () => "done");
 * ```
 */
export function mysql(uri: string | URL): Backend {
  const target = parseMysqlUri(String(uri));
  return new SqlLockBackend("mysql", dialect(target));
}
