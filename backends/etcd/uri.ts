/**
 * The URIs of the `etcd` (JSON gateway) and `etcd3` (gRPC) backends:
 * `etcd[3][+http|+https]://[user:password@]host[:port][,host...][/key-root]`
 * with `?ca=`, `?cert=`, `?key=` files (TLS only) and `?timeout=` seconds,
 * checked into an {@linkcode EtcdTarget} before anything connects. The TLS
 * files are read here, once, so that a missing one is a bad URI.
 *
 * @module
 */

import {
  type BackendUri,
  parseBackendUri,
  readFileParam,
  secondsParam,
} from "../../src/uri.ts";

/** What both etcd transports read from their URI. */
export interface EtcdTarget {
  /** The parsed URI, password included. */
  readonly uri: BackendUri;
  /** Whether the scheme asks for TLS (`+https`). */
  readonly tls: boolean;
  /** The key root, `coolock` unless the URI has a path. */
  readonly root: string;
  /** The bound on one call, from `?timeout=` seconds. */
  readonly timeoutMs: number;
  /** The base URL of each host, `http://` or `https://`, in the URI's order. */
  readonly endpoints: readonly string[];
  /** The texts of the `ca`, `cert` and `key` files, where given. */
  readonly pem: {
    readonly ca?: string;
    readonly cert?: string;
    readonly key?: string;
  };
  /** The Deno permissions the backend needs: net to each host, read of each TLS file. */
  readonly permissions: readonly Deno.PermissionDescriptor[];
}

const PARAMS = new Set(["ca", "cert", "key", "timeout"]);
const FILES = ["ca", "cert", "key"] as const;

/**
 * Parses and checks an `etcd://` or `etcd3://` URI (`+http`, `+https`).
 * Throws `TypeError` naming the problem, the password redacted.
 */
export function etcdTarget(
  input: string | URL,
  family: "etcd" | "etcd3",
): EtcdTarget {
  const uri = parseBackendUri(String(input), 2379);
  const bad = (why: string) =>
    new TypeError(`Backend URI '${uri.display}' ${why}`);
  if (![family, `${family}+http`, `${family}+https`].includes(uri.scheme)) {
    throw bad(`is not ${family}://, ${family}+http:// or ${family}+https://`);
  }
  if (uri.hosts.length === 0) throw bad("names no host");
  if (uri.password !== undefined && uri.username === "") {
    throw bad("has a password but no user name");
  }
  for (const name of uri.params.keys()) {
    if (!PARAMS.has(name)) {
      throw bad(`has an unknown option '${name}': use ca, cert, key, timeout`);
    }
  }
  const tls = uri.scheme.endsWith("+https");
  if (!tls && FILES.some((name) => uri.params.has(name))) {
    throw bad(`has TLS options: use ${family}+https://`);
  }
  if (uri.params.has("cert") !== uri.params.has("key")) {
    throw bad("needs both 'cert' and 'key', or neither");
  }
  const timeoutMs = secondsParam(uri, "timeout", 5_000);
  if (timeoutMs <= 0) throw bad("has a zero 'timeout'");
  const root = uri.path.replace(/^\/+|\/+$/g, "") || "coolock";
  const endpoints = uri.hosts.map(({ host, port }) =>
    `${tls ? "https" : "http"}://${
      host.includes(":") ? `[${host}]` : host
    }:${port}`
  );
  const [ca, cert, key] = FILES.map((name) => readFileParam(uri, name));
  const permissions: Deno.PermissionDescriptor[] = [
    ...uri.hosts.map(({ host, port }) => ({
      name: "net" as const,
      host: `${host.includes(":") ? `[${host}]` : host}:${port}`,
    })),
    ...FILES.flatMap((name) => {
      const path = uri.params.get(name);
      return path === null ? [] : [{ name: "read" as const, path }];
    }),
  ];
  return {
    uri,
    tls,
    root,
    timeoutMs,
    endpoints,
    pem: { ca, cert, key },
    permissions,
  };
}
