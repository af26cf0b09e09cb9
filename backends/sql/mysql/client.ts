/**
 * The one place that names the MySQL client, mysql2, and its version:
 * loaded on first use, so that importing the backend costs nothing until a
 * lock is taken. One mysql2 connection is one server connection; it never
 * reconnects by itself. mysql2 reads `NODE_DEBUG` when it loads (and `TZ`,
 * where it may), hence {@linkcode MYSQL_ENV}.
 *
 * @module
 */

import type { Connection } from "npm:mysql2@3.24.6/promise";
import { importNpm } from "../../../src/npm.ts";
import { withTimeout } from "../../../src/timing.ts";
import { type SqlLink, type SqlRun, unavailable } from "../session.ts";
import type { MysqlTarget } from "./uri.ts";

export type { Connection };

/** The environment variables mysql2 reads. */
export const MYSQL_ENV: readonly string[] = ["NODE_DEBUG", "TZ"];

/** A statement's rows, or its result header's counts. */
export type Result = Record<string, unknown>[] & {
  affectedRows?: number;
  insertId?: number | string;
};

/** Loads mysql2, once. */
const SPECIFIER = "npm:mysql2@3.24.6/promise";
export const loadMysql = () =>
  // A CommonJS package: its export is the module's default.
  importNpm<{ default: typeof import("npm:mysql2@3.24.6/promise") }>(
    SPECIFIER,
  );

/** The server's error number of a mysql2 error, also when wrapped as a `cause`. */
export function errno(error: unknown): number | undefined {
  for (let e = error; e instanceof Error; e = e.cause) {
    const number = (e as { errno?: unknown }).errno;
    if (typeof number === "number") return number;
  }
  return undefined;
}

/** Runs one statement on a connection. */
export function query(
  conn: Connection,
  sql: string,
  params: readonly unknown[] = [],
): Promise<Result> {
  // Text can't be escaped safely for every sql_mode (NO_BACKSLASH_ESCAPES),
  // so it goes as a prepared statement's parameter. Numbers and lock keys
  // can't break out of a literal, and the text protocol saves a round trip.
  const plain = params.every((p) =>
    p === null || typeof p === "number" || /^[\w.:-]*$/.test(String(p))
  );
  const values = params as (string | number | null)[];
  return (plain ? conn.query(sql, values) : conn.execute(sql, values))
    .then(([rows]) => rows as unknown as Result);
}

/** Runs one statement through a session's bounded `run`. */
export function exec(
  run: SqlRun<Connection>,
  sql: string,
  params: readonly unknown[] = [],
): Promise<Result> {
  return run((conn) => query(conn, sql, params));
}

/** Opens one connection; `gone` is told when it ends by itself. */
export async function openMysql(
  target: MysqlTarget,
  gone: (error?: Error) => void,
): Promise<SqlLink<Connection>> {
  const { default: mysql } = await loadMysql();
  const connecting = mysql.createConnection({
    ...target.options,
    charset: "utf8mb4",
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    enableKeepAlive: true,
    keepAliveInitialDelay: 5_000,
  });
  // An 'error' without a listener would crash the process.
  connecting.then((conn) => conn.on("error", () => {}), () => {});
  const conn = await withTimeout(connecting, target.timeoutMs + 1_000)
    .catch((error) => {
      connecting.then((late) => late.destroy(), () => {});
      throw unavailable(target, error);
    });
  conn.on("error", gone);
  conn.on("end", () => gone());
  return {
    client: conn,
    end: () => withTimeout(conn.end(), 1_000).catch(() => conn.destroy()),
  };
}
