/**
 * `mysql://` URIs turned into mysql2 connection options. Checked at
 * `open()` time, before anything connects; messages show only the redacted
 * URI.
 *
 * @module
 */

import { type HostPort, parseBackendUri } from "../../../src/uri.ts";
import { checkSqlParams, connectTimeoutMs, sqlTls } from "../uri.ts";

/**
 * What a MySQL URI says, checked: the mysql2 options and the bound on every
 * call.
 */
export interface MysqlTarget {
  /** The URI with its password replaced by `***`. */
  readonly display: string;
  /** The one host. */
  readonly hosts: readonly HostPort[];
  /** The TLS files named, for the read permission. */
  readonly files: readonly string[];
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
 */
export function parseMysqlUri(text: string): MysqlTarget {
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
  const { files, mode, paths } = sqlTls(uri, TLS);
  const timeoutMs = connectTimeoutMs(uri);
  const ssl = mode === "DISABLED" ? undefined : {
    rejectUnauthorized: mode !== "REQUIRED",
    verifyIdentity: mode === "VERIFY_IDENTITY",
    ...files,
  };
  return {
    display,
    hosts: uri.hosts,
    files: paths,
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
