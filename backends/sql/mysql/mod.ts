/**
 * The MySQL and MariaDB backend: a `GET_LOCK` named lock on one connection
 * per lease. The server drops the lock when the connection ends, so a dead
 * holder frees it at once; a row in `coolock_locks` carries what must outlive
 * the connection (the fencing counter and the guard-time end, by the server's
 * clock). Named locks are local to one server: a replica doesn't see them.
 *
 * @module
 */

import type { Connection } from "npm:mysql2@3.24.6/promise";
import type { Backend } from "../../../src/backend.ts";
import { withTimeout } from "../../../src/timing.ts";
import { lockKey, type MysqlUri, parseMysqlUri } from "./uri.ts";
import { type SqlDialect, SqlLockBackend } from "../mod.ts";
import { type SqlRun, unavailable } from "../session.ts";

/** The server ends a connection idle (unrenewed) for longer than the lease. */
const IDLE_SLACK_MS = 1_000;

const MINE = "IS_USED_LOCK(?) = CONNECTION_ID()";
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS coolock_locks (
  name VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY,
  fence BIGINT UNSIGNED NOT NULL, held_until DATETIME(6) NOT NULL,
  owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL)`;
const HELD_UNTIL = "UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND";
const STAMP = `UPDATE coolock_locks SET fence = LAST_INSERT_ID(fence + 1),
  held_until = ${HELD_UNTIL}, owner = ?
  WHERE name = ? AND held_until <= UTC_TIMESTAMP(6) AND ${MINE}`;
const FIRST_STAMP = `INSERT IGNORE INTO coolock_locks
  (name, fence, held_until, owner) SELECT ?, 1, ${HELD_UNTIL}, ? FROM DUAL
  WHERE ${MINE}`;
const EXPIRE_IDLE = "SET SESSION wait_timeout = CAST(? AS UNSIGNED)";

type Row = Record<string, unknown>;
type Result = Row[] & { affectedRows?: number; insertId?: number | string };

const micros = (ms: number) => Math.ceil(Math.max(0, ms) * 1000);
const idleSeconds = (ms: number) => Math.ceil((ms + IDLE_SLACK_MS) / 1000);

/** Runs one statement through a session's bounded `run`. */
function exec(
  run: SqlRun<Connection>,
  sql: string,
  params: (string | number)[],
): Promise<Result> {
  // Text can't be escaped safely for every sql_mode (NO_BACKSLASH_ESCAPES),
  // so it goes as a prepared statement's parameter. Numbers and lock keys
  // can't break out of a literal, and the text protocol saves a round trip.
  const plain = params.every((p) => /^[\w.:-]*$/.test(String(p)));
  return run((conn) =>
    (plain ? conn.query(sql, params) : conn.execute(sql, params))
      .then(([rows]) => rows as unknown as Result)
  );
}

function dialect(uri: MysqlUri): SqlDialect<Connection> {
  const load = () => import("npm:mysql2@3.24.6/promise");
  return {
    display: uri.display,
    timeoutMs: uri.timeoutMs,
    noun: "connection",
    load,
    async open(gone) {
      const { default: mysql } = await load();
      const connecting = mysql.createConnection({
        ...uri.options,
        charset: "utf8mb4",
        supportBigNumbers: true,
        bigNumberStrings: true,
        enableKeepAlive: true,
        keepAliveInitialDelay: 5_000,
      });
      // An 'error' without a listener would crash the process.
      connecting.then((conn) => conn.on("error", () => {}), () => {});
      const conn = await withTimeout(connecting, uri.timeoutMs + 1_000)
        .catch((error) => {
          connecting.then((late) => late.destroy(), () => {});
          throw unavailable(uri, error);
        });
      conn.on("error", gone);
      conn.on("end", () => gone());
      return {
        client: conn,
        end: () => withTimeout(conn.end(), 1_000).catch(() => conn.destroy()),
      };
    },
    async lock(run, name, waitMs) {
      const [{ got }] = await exec(run, "SELECT GET_LOCK(?, ?) AS got", [
        await lockKey(name),
        waitMs / 1000,
      ]);
      return Number(got) === 1;
    },
    async unlock(run, name) {
      await exec(run, "SELECT RELEASE_LOCK(?)", [await lockKey(name)]);
    },
    async stamp(run, { name, owner, guardMs, expiresInMs }) {
      const key = await lockKey(name);
      const held = [micros(guardMs), owner, name, key];
      const stamped = await exec(run, STAMP, held).catch(async (error) => {
        if (error?.cause?.errno !== 1146) throw error; // No such table.
        await exec(run, CREATE_TABLE, []).catch(() => {});
        return exec(run, STAMP, held);
      });
      let token = stamped.affectedRows === 1
        ? BigInt(stamped.insertId ?? 0)
        : 0n;
      if (token === 0n) {
        const first = await exec(run, FIRST_STAMP, [
          name,
          micros(guardMs),
          owner,
          key,
        ]);
        if (first.affectedRows === 1) token = 1n;
      }
      if (token === 0n) return undefined;
      await exec(run, EXPIRE_IDLE, [idleSeconds(expiresInMs)]);
      return token;
    },
    async renew(run, { name, owner }, expiresInMs) {
      const [row] = await exec(
        run,
        `SELECT ${MINE} AS mine, (SELECT owner = ? FROM coolock_locks
          WHERE name = ?) AS owned`,
        [await lockKey(name), owner, name],
      );
      if (Number(row?.mine) !== 1 || Number(row?.owned) !== 1) return false;
      await exec(run, EXPIRE_IDLE, [idleSeconds(expiresInMs)]);
      return true;
    },
    async hold(run, { name, owner }, holdMs) {
      await exec(
        run,
        `UPDATE coolock_locks SET held_until = ${HELD_UNTIL}
          WHERE name = ? AND owner = ? AND ${MINE}`,
        [micros(holdMs), name, owner, await lockKey(name)],
      );
    },
    async guardLeftMs(run, name) {
      const [row] = await exec(
        run,
        `SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), held_until) AS us
          FROM coolock_locks WHERE name = ?`,
        [name],
      ).catch(() => []);
      return Number(row?.us) / 1000;
    },
  };
}

/**
 * The MySQL and MariaDB backend:
 * `mysql://user:password@host[:port]/database`, with `ssl-mode`
 * (`DISABLED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`), `ssl-ca` (or
 * `ca`), `ssl-cert` (or `cert`), `ssl-key` (or `key`) and `connect_timeout`
 * (seconds, default 5). It needs the right to create the table
 * `coolock_locks` (or an existing one) in the database.
 *
 * @param uri the server's URI
 *
 * @example
 * ```ts ignore
 * import { mysql } from "./mod.ts";
 * import { withLock } from "../../../mod.ts";
 * await using backend = mysql("mysql://app:secret@db.internal/app");
 * await withLock({ backend, lock: "nightly-report" }, () => "done");
 * ```
 */
export function mysql(uri: string | URL): Backend {
  const parsed = parseMysqlUri(String(uri));
  return new SqlLockBackend("mysql", dialect(parsed));
}
