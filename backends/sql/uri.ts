/**
 * What the SQL backends' URIs share: a TLS mode, the TLS file parameters
 * (each with a short alias: `ca`, `cert`, `key`), `connect_timeout`, and no
 * parameter besides those.
 *
 * @module
 */

import { type BackendUri, readFileParam, secondsParam } from "../../src/uri.ts";

/**
 * A dialect's TLS parameters: their names, the modes it knows, and the mode
 * when the URI names none.
 *
 * @example
 * ```ts
 * import type { SqlTlsSpec } from "./uri.ts";
 * const spec: SqlTlsSpec = {
 *   mode: "ssl-mode",
 *   ca: "ssl-ca",
 *   cert: "ssl-cert",
 *   key: "ssl-key",
 *   modes: ["DISABLED", "REQUIRED"],
 *   fallback: (files) => files.cert ? "REQUIRED" : "DISABLED",
 *   normalize: (mode) => mode.toUpperCase(),
 * };
 * ```
 */
export interface SqlTlsSpec {
  /** The TLS mode's parameter, such as `sslmode`. */
  readonly mode: string;
  /** The CA file's parameter; `ca` is its alias. */
  readonly ca: string;
  /** The client certificate file's parameter; `cert` is its alias. */
  readonly cert: string;
  /** The client key file's parameter; `key` is its alias. */
  readonly key: string;
  /** Every mode the dialect knows, as `normalize` returns them. */
  readonly modes: readonly string[];
  /** The mode when the URI names none. */
  fallback(files: SqlTlsFiles): string;
  /** Turns a given mode into one of `modes` (such as by case). */
  normalize?(mode: string): string;
}

/**
 * The TLS files a URI names, read.
 *
 * @example
 * ```ts
 * import type { SqlTlsFiles } from "./uri.ts";
 * const none: SqlTlsFiles = {};
 * ```
 */
export interface SqlTlsFiles {
  /** The CA certificate(s) that must have signed the server's. */
  readonly ca?: string;
  /** The client certificate. */
  readonly cert?: string;
  /** The client certificate's key. */
  readonly key?: string;
}

/**
 * Throws `TypeError` for a parameter the URI may not carry.
 *
 * @example
 * ```ts
 * import { parseBackendUri } from "../../src/uri.ts";
 * import { checkSqlParams } from "./uri.ts";
 * const spec = { mode: "sslmode", ca: "sslrootcert", cert: "sslcert", key: "sslkey" };
 * checkSqlParams(parseBackendUri("postgres://db?sslmode=require", 5432), spec);
 * ```
 */
export function checkSqlParams(
  uri: BackendUri,
  spec: Pick<SqlTlsSpec, "mode" | "ca" | "cert" | "key">,
): void {
  const allowed = [
    spec.mode,
    spec.ca,
    "ca",
    spec.cert,
    "cert",
    spec.key,
    "key",
    "connect_timeout",
  ];
  for (const name of uri.params.keys()) {
    if (!allowed.includes(name)) {
      throw new TypeError(
        `Backend URI '${uri.display}' has an unknown parameter '${name}': use ${
          allowed.join(", ")
        }`,
      );
    }
  }
}

/**
 * Reads the TLS files a URI names (a short alias wins over the long name)
 * and its TLS mode. Throws `TypeError` for a file that can't be read, a
 * certificate without its key, or a mode the dialect doesn't know (quoted as
 * given).
 *
 * @example
 * ```ts
 * import { parseBackendUri } from "../../src/uri.ts";
 * import { sqlTls } from "./uri.ts";
 * const uri = parseBackendUri("postgres://db?sslmode=require", 5432);
 * const { mode } = sqlTls(uri, {
 *   mode: "sslmode",
 *   ca: "sslrootcert",
 *   cert: "sslcert",
 *   key: "sslkey",
 *   modes: ["disable", "prefer", "require"],
 *   fallback: () => "prefer",
 * });
 * console.log(mode); // require
 * ```
 */
export function sqlTls(
  uri: BackendUri,
  spec: SqlTlsSpec,
): { files: SqlTlsFiles; mode: string } {
  const read = (long: string, short: string) =>
    readFileParam(uri, uri.params.has(short) ? short : long);
  const ca = read(spec.ca, "ca");
  const cert = read(spec.cert, "cert");
  const key = read(spec.key, "key");
  if ((cert === undefined) !== (key === undefined)) {
    throw new TypeError(
      `Backend URI '${uri.display}' needs both '${spec.cert}' and '${spec.key}', or neither`,
    );
  }
  const files = {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert, key }),
  };
  const given = uri.params.get(spec.mode);
  const mode = given === null
    ? spec.fallback(files)
    : spec.normalize?.(given) ?? given;
  if (!spec.modes.includes(mode)) {
    throw new TypeError(
      `Backend URI '${uri.display}' has a bad '${spec.mode}' value '${given}': use ${
        spec.modes.join(", ")
      }`,
    );
  }
  return { files, mode };
}

/**
 * The bound on every call, in milliseconds: `connect_timeout` seconds, 5 by
 * default, 1 at least.
 *
 * @example
 * ```ts
 * import { parseBackendUri } from "../../src/uri.ts";
 * import { connectTimeoutMs } from "./uri.ts";
 * const uri = parseBackendUri("mysql://db/x?connect_timeout=2", 3306);
 * console.log(connectTimeoutMs(uri)); // 2000
 * ```
 */
export function connectTimeoutMs(uri: BackendUri): number {
  const timeoutMs = secondsParam(uri, "connect_timeout", 5_000);
  if (timeoutMs < 1_000) {
    throw new TypeError(
      `Backend URI '${uri.display}' has a 'connect_timeout' under 1 s`,
    );
  }
  return timeoutMs;
}
