/**
 * `mysql://` URIs turned into mysql2 connection options, and lock names
 * turned into `GET_LOCK` names.
 *
 * @module
 */

import { parseBackendUri } from "../../../src/uri.ts";
import { checkSqlParams, connectTimeoutMs, sqlTls } from "../uri.ts";

/**
 * What a MySQL URI says, checked: the mysql2 options and the bound on every
 * call.
 *
 * @example
 * ```ts
 * import { parseMysqlUri } from "./uri.ts";
 * const parsed = parseMysqlUri("mysql://app:pw@db/locks");
 * console.log(parsed.display, parsed.options.database); // mysql://app:***@db/locks locks
 * ```
 */
export interface MysqlUri {
  /** The URI with its password replaced by `***`. */
  readonly display: string;
  /** Connection options for mysql2's `createConnection()`. */
  readonly options: {
    host: string;
    port: number;
    user: string;
    password?: string;
    database: string;
    ssl?: Record<string, unknown>;
    connectTimeout: number;
  };
  /** How long one call may take, in milliseconds. */
  readonly timeoutMs: number;
}

const TLS = {
  mode: "ssl-mode",
  ca: "ssl-ca",
  cert: "ssl-cert",
  key: "ssl-key",
  modes: ["DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"],
  fallback: (files: { ca?: string; cert?: string }) =>
    files.ca ? "VERIFY_IDENTITY" : files.cert ? "REQUIRED" : "DISABLED",
  normalize: (mode: string) => mode.toUpperCase(),
};

/**
 * Parses and checks a MySQL or MariaDB URI:
 * `mysql://user[:password]@host[:port]/database[?ssl-mode=…&ssl-ca=…&ssl-cert=…&ssl-key=…&connect_timeout=…]`.
 * Throws `TypeError` naming what is wrong, never with the password.
 *
 * @example
 * ```ts
 * import { parseMysqlUri } from "./uri.ts";
 * const { options } = parseMysqlUri("mysql://app@db:3307/locks");
 * console.log(options.port); // 3307
 * ```
 */
export function parseMysqlUri(text: string): MysqlUri {
  const uri = parseBackendUri(text, 3306);
  const { display } = uri;
  if (uri.scheme !== "mysql") {
    throw new TypeError(`Backend URI '${display}' is not a mysql:// URI`);
  }
  if (uri.hosts.length !== 1) {
    throw new TypeError(
      `Backend URI '${display}' must name exactly one host: GET_LOCK locks are local to one server`,
    );
  }
  checkSqlParams(uri, TLS);
  const database = uri.path.replace(/^\//, "");
  if (database === "" || database.includes("/")) {
    throw new TypeError(
      `Backend URI '${display}' must name one database, as in mysql://host/db`,
    );
  }
  if (uri.username === "") {
    throw new TypeError(`Backend URI '${display}' names no user`);
  }
  const { files, mode } = sqlTls(uri, TLS);
  const timeoutMs = connectTimeoutMs(uri);
  const ssl = mode === "DISABLED" ? undefined : {
    rejectUnauthorized: mode !== "REQUIRED",
    verifyIdentity: mode === "VERIFY_IDENTITY",
    ...files,
  };
  return {
    display,
    options: {
      host: uri.hosts[0].host,
      port: uri.hosts[0].port,
      user: uri.username,
      ...(uri.password === undefined ? {} : { password: uri.password }),
      database,
      ...(ssl ? { ssl } : {}),
      connectTimeout: timeoutMs,
    },
    timeoutMs,
  };
}

/**
 * The `GET_LOCK` name for a lock name: a readable prefix and 160 bits of
 * SHA-256, 64 characters at most (MySQL 8's limit). Every name is hashed, so
 * that distinct names never collide, not even by case (the server may compare
 * lock names case-insensitively) or by length.
 *
 * @example
 * ```ts
 * import { lockKey } from "./uri.ts";
 * console.log((await lockKey("nightly-backup")).startsWith("coolock:nightly-backup:")); // true
 * ```
 */
export async function lockKey(name: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(name)),
  );
  const hex = Array.from(
    digest.subarray(0, 20),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  return `coolock:${name.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 15)}:${hex}`;
}
