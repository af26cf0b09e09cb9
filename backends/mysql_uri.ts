/**
 * `mysql://` URIs turned into mysql2 connection options, and lock names
 * turned into `GET_LOCK` names.
 *
 * @module
 */

import { parseBackendUri, readFileParam, secondsParam } from "../src/uri.ts";

/**
 * What a MySQL URI says, checked: the mysql2 options and the bound on every
 * call.
 *
 * @example
 * ```ts
 * import { parseMysqlUri } from "./mysql_uri.ts";
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

const PARAMS = [
  "ssl-mode",
  "ssl-ca",
  "ca",
  "ssl-cert",
  "cert",
  "ssl-key",
  "key",
  "connect_timeout",
];
const SSL_MODES = ["DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"];

function fileParam(
  uri: ReturnType<typeof parseBackendUri>,
  names: [string, string],
): string | undefined {
  return readFileParam(uri, uri.params.has(names[1]) ? names[1] : names[0]);
}

/**
 * Parses and checks a MySQL or MariaDB URI:
 * `mysql://user[:password]@host[:port]/database[?ssl-mode=…&ssl-ca=…&ssl-cert=…&ssl-key=…&connect_timeout=…]`.
 * Throws `TypeError` naming what is wrong, never with the password.
 *
 * @example
 * ```ts
 * import { parseMysqlUri } from "./mysql_uri.ts";
 * const { options } = parseMysqlUri("mysql://app@db:3307/locks");
 * console.log(options.port); // 3307
 * ```
 */
export function parseMysqlUri(text: string): MysqlUri {
  const uri = parseBackendUri(text, 3306);
  const { display, params } = uri;
  if (uri.scheme !== "mysql") {
    throw new TypeError(`Backend URI '${display}' is not a mysql:// URI`);
  }
  if (uri.hosts.length !== 1) {
    throw new TypeError(
      `Backend URI '${display}' must name exactly one host: GET_LOCK locks are local to one server`,
    );
  }
  for (const name of params.keys()) {
    if (!PARAMS.includes(name)) {
      throw new TypeError(
        `Backend URI '${display}' has an unknown parameter '${name}': use ${
          PARAMS.join(", ")
        }`,
      );
    }
  }
  const database = uri.path.replace(/^\//, "");
  if (database === "" || database.includes("/")) {
    throw new TypeError(
      `Backend URI '${display}' must name one database, as in mysql://host/db`,
    );
  }
  if (uri.username === "") {
    throw new TypeError(`Backend URI '${display}' names no user`);
  }
  const ca = fileParam(uri, ["ssl-ca", "ca"]);
  const cert = fileParam(uri, ["ssl-cert", "cert"]);
  const key = fileParam(uri, ["ssl-key", "key"]);
  if ((cert === undefined) !== (key === undefined)) {
    throw new TypeError(
      `Backend URI '${display}' needs both 'ssl-cert' and 'ssl-key', or neither`,
    );
  }
  const given = params.get("ssl-mode");
  const mode = given?.toUpperCase() ??
    (ca ? "VERIFY_IDENTITY" : cert ? "REQUIRED" : "DISABLED");
  if (!SSL_MODES.includes(mode)) {
    throw new TypeError(
      `Backend URI '${display}' has a bad 'ssl-mode' value '${given}': use ${
        SSL_MODES.join(", ")
      }`,
    );
  }
  const timeoutMs = secondsParam(uri, "connect_timeout", 5_000);
  if (timeoutMs < 1_000) {
    throw new TypeError(
      `Backend URI '${display}' has a 'connect_timeout' under 1 s`,
    );
  }
  const ssl = mode === "DISABLED" ? undefined : {
    rejectUnauthorized: mode !== "REQUIRED",
    verifyIdentity: mode === "VERIFY_IDENTITY",
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert, key }),
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
 * import { lockKey } from "./mysql_uri.ts";
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
