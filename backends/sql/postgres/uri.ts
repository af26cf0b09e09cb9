/**
 * `postgres://` and `postgresql://` URIs, in libpq's spelling, turned into
 * postgres.js connection options. Checked at `open()` time, before anything
 * connects; messages show only the redacted URI.
 *
 * @module
 */

import { type HostPort, parseBackendUri } from "../../../src/uri.ts";
import { checkSqlParams, connectTimeoutMs, sqlTls } from "../uri.ts";

/**
 * What a PostgreSQL URI says, checked: the postgres.js options (without the
 * per-session ones) and the bound on every call.
 */
export interface PostgresTarget {
  /** The URI with its password replaced by `***`. */
  readonly display: string;
  /** The hosts, in order: postgres.js tries the next when one fails. */
  readonly hosts: readonly HostPort[];
  /** The TLS files named, for the read permission. */
  readonly files: readonly string[];
  /** Connection options for `postgres()`: hosts, credentials, TLS. */
  readonly options: {
    host: string[];
    port: number[];
    user?: string;
    pass?: string;
    database?: string;
    ssl: false | "prefer" | Record<string, unknown>;
    connect_timeout: number;
  };
  /** How long one call may take, in milliseconds. */
  readonly timeoutMs: number;
}

const TLS = {
  mode: "sslmode",
  ca: "sslrootcert",
  cert: "sslcert",
  key: "sslkey",
  modes: ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
  fallback: (files: { ca?: string }) =>
    files.ca === undefined ? "prefer" : "verify-full",
};

/**
 * Parses and checks a PostgreSQL URI:
 * `postgres[ql]://[user[:password]@]host[:port][,host[:port]...][/database][?sslmode=…&sslrootcert=…&sslcert=…&sslkey=…&connect_timeout=…]`.
 * Throws `TypeError` naming what is wrong, never with the password.
 */
export function parsePostgresUri(text: string): PostgresTarget {
  const uri = parseBackendUri(text, 5432);
  const { display } = uri;
  if (uri.scheme !== "postgres" && uri.scheme !== "postgresql") {
    throw new TypeError(
      `Backend URI '${display}' is not a postgres:// or postgresql:// URI`,
    );
  }
  if (uri.hosts.length === 0) {
    throw new TypeError(`Backend URI '${display}' names no host`);
  }
  checkSqlParams(uri, TLS);
  const database = uri.path.replace(/^\//, "");
  if (database.includes("/")) {
    throw new TypeError(
      `Backend URI '${display}' has a '/' in its database name: a path is one database`,
    );
  }
  const { files, mode, paths } = sqlTls(uri, TLS);
  const timeoutMs = connectTimeoutMs(uri);
  const verify = mode === "verify-ca" || mode === "verify-full";
  const ssl = mode === "disable"
    ? false as const
    : (mode === "allow" || mode === "prefer") && files.cert === undefined
    ? "prefer" as const
    : {
      rejectUnauthorized: verify,
      ...files,
      // libpq's verify-ca checks the chain, not the host name.
      ...(mode === "verify-ca" ? { checkServerIdentity: () => undefined } : {}),
    };
  return {
    display,
    hosts: uri.hosts,
    files: paths,
    options: {
      host: uri.hosts.map(({ host }) => host),
      port: uri.hosts.map(({ port }) => port),
      ...(uri.username === "" ? {} : { user: uri.username }),
      ...(uri.password === undefined ? {} : { pass: uri.password }),
      ...(database === "" ? {} : { database }),
      ssl,
      connect_timeout: Math.ceil(timeoutMs / 1000),
    },
    timeoutMs,
  };
}
