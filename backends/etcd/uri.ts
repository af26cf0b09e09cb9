/**
 * The URIs of the `etcd` and `etcd3` backends:
 * `etcd[3][+http|+https]://[user:password@]host[:port][,host...][/key-root]`
 * with `?ca=`, `?cert=`, `?key=` files (TLS only) and `?timeout=` seconds.
 *
 * @module
 */

import {
  type BackendUri,
  parseBackendUri,
  secondsParam,
} from "../../src/uri.ts";

/**
 * What both etcd backends read from their URI.
 *
 * @example
 * ```ts
 * import { type EtcdConfig, parseEtcdUri } from "./uri.ts";
 * const config: EtcdConfig = parseEtcdUri("etcd://h1", "etcd");
 * console.log(config.root); // coolock
 * ```
 */
export interface EtcdConfig {
  /** The parsed URI, password included. */
  readonly uri: BackendUri;
  /** Whether the scheme asks for TLS (`+https`). */
  readonly tls: boolean;
  /** The key root, `coolock` unless the URI has a path. */
  readonly root: string;
  /** The bound on one call, from `?timeout=` seconds. */
  readonly timeoutMs: number;
}

const PARAMS = new Set(["ca", "cert", "key", "timeout"]);

/**
 * Parses and checks an `etcd://` or `etcd3://` URI (`+http`, `+https`).
 *
 * @example
 * ```ts
 * import { parseEtcdUri } from "./uri.ts";
 * const config = parseEtcdUri("etcd://h1:2379,h2/jobs?timeout=3", "etcd");
 * console.log(config.uri.hosts.length, config.root, config.timeoutMs); // 2 jobs 3000
 * ```
 */
export function parseEtcdUri(
  input: string | URL,
  family: "etcd" | "etcd3",
): EtcdConfig {
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
  if (!tls && ["ca", "cert", "key"].some((name) => uri.params.has(name))) {
    throw bad(`has TLS options: use ${family}+https://`);
  }
  if (uri.params.has("cert") !== uri.params.has("key")) {
    throw bad("needs both 'cert' and 'key', or neither");
  }
  const timeoutMs = secondsParam(uri, "timeout", 5_000);
  if (timeoutMs <= 0) throw bad("has a zero 'timeout'");
  const root = uri.path.replace(/^\/+|\/+$/g, "") || "coolock";
  return { uri, tls, root, timeoutMs };
}

/**
 * The base URL of each host, `http://` or `https://`, IPv6 in brackets.
 *
 * @example
 * ```ts
 * import { endpointsOf, parseEtcdUri } from "./uri.ts";
 * console.log(endpointsOf(parseEtcdUri("etcd+https://[::1],h2:2380", "etcd")));
 * // ["https://[::1]:2379", "https://h2:2380"]
 * ```
 */
export function endpointsOf(config: EtcdConfig): string[] {
  return config.uri.hosts.map(({ host, port }) =>
    `${config.tls ? "https" : "http"}://${
      host.includes(":") ? `[${host}]` : host
    }:${port}`
  );
}
