/**
 * What the SQL backends' URIs share: a TLS mode, the TLS file parameters
 * (each with a short alias: `ca`, `cert`, `key`), `connect_timeout`, no
 * parameter besides those, and the Deno permissions that follow from them.
 * Messages quote only what the redacted URI (`display`) shows itself, so no
 * part of a secret is ever echoed.
 *
 * @module
 */

import {
  type BackendUri,
  type HostPort,
  readFileParam,
  secondsParam,
} from "../../src/uri.ts";

/**
 * A dialect's TLS parameters: their names, the modes it knows, and the mode
 * when the URI names none.
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

/** The TLS files a URI names, read. */
export interface SqlTlsFiles {
  /** The CA certificate(s) that must have signed the server's. */
  readonly ca?: string;
  /** The client certificate. */
  readonly cert?: string;
  /** The client certificate's key. */
  readonly key?: string;
}

/**
 * `'text'` when the redacted URI shows `text` itself, else nothing: a
 * message never repeats what the redaction hid.
 */
export function quoted(uri: Pick<BackendUri, "display">, text: string): string {
  return text !== "" && uri.display.includes(text) ? ` '${text}'` : "";
}

/** Throws `TypeError` for a parameter the URI may not carry. */
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
        `Backend URI '${uri.display}' has an unknown parameter${
          quoted(uri, name)
        }: use ${allowed.join(", ")}`,
      );
    }
  }
}

/**
 * Reads the TLS files a URI names (a short alias wins over the long name)
 * and its TLS mode; `paths` are the files read, for `Backend.permissions`.
 * Throws `TypeError` for a file that can't be read, a certificate without
 * its key, or a mode the dialect doesn't know.
 */
export function sqlTls(
  uri: BackendUri,
  spec: SqlTlsSpec,
): { files: SqlTlsFiles; mode: string; paths: string[] } {
  const paths: string[] = [];
  const read = (long: string, short: string) => {
    const name = uri.params.has(short) ? short : long;
    const path = uri.params.get(name);
    if (path !== null) paths.push(path);
    return readFileParam(uri, name);
  };
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
      `Backend URI '${uri.display}' has a bad '${spec.mode}' value${
        quoted(uri, given ?? "")
      }: use ${spec.modes.join(", ")}`,
    );
  }
  return { files, mode, paths };
}

/**
 * The bound on every call, in milliseconds: `connect_timeout` seconds, 5 by
 * default, 1 at least.
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

/**
 * The Deno permissions a SQL client needs: net to every host, read of the
 * TLS files, the environment variables and system information it reads.
 */
export function sqlPermissions(
  hosts: readonly HostPort[],
  files: readonly string[],
  env: readonly string[],
  sys: readonly Deno.SysPermissionDescriptor["kind"][] = [],
): Deno.PermissionDescriptor[] {
  return [
    ...hosts.map(({ host, port }): Deno.PermissionDescriptor => ({
      name: "net",
      host: `${host.includes(":") ? `[${host}]` : host}:${port}`,
    })),
    ...files.map((path): Deno.PermissionDescriptor => ({ name: "read", path })),
    ...env.map((variable): Deno.PermissionDescriptor => ({
      name: "env",
      variable,
    })),
    ...sys.map((kind): Deno.PermissionDescriptor => ({ name: "sys", kind })),
  ];
}
