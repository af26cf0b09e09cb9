/**
 * Backend URIs: `scheme://[user[:password]@]host[:port][,host[:port]...][/path][?query]`.
 * WHATWG `URL` rejects the host lists that etcd, ZooKeeper and memcached
 * URIs use, so the authority is split by hand here.
 *
 * @module
 */

/**
 * One host of a backend URI.
 *
 * @example
 * ```ts
 * import type { HostPort } from "./uri.ts";
 * const host: HostPort = { host: "db", port: 6379 };
 * ```
 */
export interface HostPort {
  /** A host name or an IP address; IPv6 without brackets. */
  readonly host: string;
  /** The port, or the scheme's default. */
  readonly port: number;
}

/**
 * A parsed backend URI. `password` is the only place a secret is kept.
 *
 * @example
 * ```ts
 * import { parseBackendUri } from "./uri.ts";
 * const uri = parseBackendUri("etcd://h1:2379,h2:2379", 2379);
 * console.log(uri.hosts.length); // 2
 * ```
 */
export interface BackendUri {
  /** The scheme without `:`, lower case, such as `redis` or `etcd+https`. */
  readonly scheme: string;
  /** The user name, percent-decoded, or `""`. */
  readonly username: string;
  /** The password, percent-decoded, or `undefined` when the URI has none. */
  readonly password: string | undefined;
  /** The hosts, in the order given. Empty for `file:` URIs. */
  readonly hosts: readonly HostPort[];
  /** The path, percent-decoded, such as `/0` or `/chroot`; `""` when absent. */
  readonly path: string;
  /** The query parameters. */
  readonly params: URLSearchParams;
  /** The URI with its secrets replaced by `***`, safe for logs. */
  readonly display: string;
}

const SECRET_PARAMS = new Set([
  "password",
  "passwd",
  "pass",
  "token",
  "secret",
  "auth",
  "acl_token",
  "sentinel_password",
]);

/**
 * Whether a query parameter of a backend URI holds a secret.
 *
 * @example
 * ```ts
 * import { isSecretParam } from "./uri.ts";
 * console.log(isSecretParam("token")); // true
 * ```
 */
export function isSecretParam(name: string): boolean {
  const lower = name.toLowerCase();
  return SECRET_PARAMS.has(lower) || lower.endsWith("password") ||
    lower.endsWith("token") || lower.endsWith("secret");
}

/**
 * Replaces the password and any secret query parameter of a URI with `***`.
 * Works on strings that fail to parse, so that an error message about a bad
 * URI never leaks the password in it.
 *
 * @example
 * ```ts
 * import { redactUri } from "./uri.ts";
 * console.log(redactUri("redis://app:hunter2@db:6379")); // redis://app:***@db:6379
 * ```
 */
export function redactUri(uri: string): string {
  // Greedy up to the last "@" before the query: an unencoded "@" or "/" in a
  // password still ends up behind the stars.
  const withoutPassword = uri.replace(
    /^([a-zA-Z][a-zA-Z0-9+.-]*:\/*)([^:@/?#]*):([^?#]*)@/,
    "$1$2:***@",
  );
  return withoutPassword.replace(
    /([?&])([^=&#]+)=([^&#]*)/g,
    (whole, separator: string, name: string) =>
      isSecretParam(safeDecode(name)) ? `${separator}${name}=***` : whole,
  );
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * Parses a backend URI. Throws `TypeError` with a message that names what is
 * wrong and never repeats the password.
 *
 * @param uri the URI as the user wrote it
 * @param defaultPort the port for hosts written without one
 *
 * @example
 * ```ts
 * import { parseBackendUri } from "./uri.ts";
 * const uri = parseBackendUri("redis://:secret@db/2", 6379);
 * console.log(uri.hosts[0].port, uri.path, uri.display); // 6379 /2 redis://:***@db/2
 * ```
 */
export function parseBackendUri(uri: string, defaultPort: number): BackendUri {
  const display = redactUri(uri);
  const match =
    /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/
      .exec(uri);
  if (!match) {
    throw new TypeError(
      `Backend URI '${display}' is not of the form scheme://host[:port]`,
    );
  }
  const [, scheme, authority, rawPath, query = ""] = match;
  const at = authority.lastIndexOf("@");
  const userinfo = at >= 0 ? authority.slice(0, at) : "";
  const hostList = at >= 0 ? authority.slice(at + 1) : authority;
  const colon = userinfo.indexOf(":");
  const username = decodePart(
    colon >= 0 ? userinfo.slice(0, colon) : userinfo,
    "user name",
    display,
  );
  const password = colon >= 0
    ? decodePart(userinfo.slice(colon + 1), "password", display)
    : undefined;
  const hosts = hostList === ""
    ? []
    : hostList.split(",").map((part) => parseHost(part, defaultPort, display));
  return {
    scheme: scheme.toLowerCase(),
    username,
    password,
    hosts,
    path: decodePart(rawPath, "path", display),
    params: new URLSearchParams(query.slice(1)),
    display,
  };
}

function decodePart(text: string, what: string, display: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new TypeError(
      `Backend URI '${display}' has a badly percent-encoded ${what}`,
    );
  }
}

function parseHost(
  part: string,
  defaultPort: number,
  display: string,
): HostPort {
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(.*))?$/.exec(part);
  const [host, portText] = bracketed
    ? [bracketed[1], bracketed[2]]
    : part.includes(":")
    ? [
      part.slice(0, part.lastIndexOf(":")),
      part.slice(part.lastIndexOf(":") + 1),
    ]
    : [part, undefined];
  if (host === "" || /[\s@[\]]/.test(host)) {
    throw new TypeError(
      `Backend URI '${display}' has an empty or bad host '${part}'`,
    );
  }
  if (portText === undefined || portText === "") {
    return { host, port: defaultPort };
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new TypeError(
      `Backend URI '${display}' has a bad port '${portText}': use 1 to 65535`,
    );
  }
  return { host, port };
}

/**
 * Reads a query parameter as a number of seconds, returned in milliseconds.
 *
 * @example
 * ```ts
 * import { parseBackendUri, secondsParam } from "./uri.ts";
 * const uri = parseBackendUri("zookeeper://zk?session_timeout=6", 2181);
 * console.log(secondsParam(uri, "session_timeout", 10_000)); // 6000
 * ```
 */
export function secondsParam(
  uri: BackendUri,
  name: string,
  fallbackMs: number,
): number {
  const text = uri.params.get(name);
  if (text === null) return fallbackMs;
  const seconds = Number(text);
  if (text.trim() === "" || !Number.isFinite(seconds) || seconds < 0) {
    throw new TypeError(
      `Backend URI '${uri.display}' has a bad '${name}' value '${text}': use a number of seconds`,
    );
  }
  return seconds * 1000;
}

/**
 * Reads a TLS-related query parameter that names a file (`ca`, `cert`,
 * `key`) and returns the file's text, or `undefined` when absent.
 *
 * @example
 * ```ts
 * import { parseBackendUri, readFileParam } from "./uri.ts";
 * const uri = parseBackendUri("rediss://db:6380", 6379);
 * console.log(readFileParam(uri, "ca")); // undefined
 * ```
 */
export function readFileParam(
  uri: BackendUri,
  name: string,
): string | undefined {
  const path = uri.params.get(name);
  if (path === null) return undefined;
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new TypeError(
      `Backend URI '${uri.display}' names a '${name}' file '${path}' that can't be read: ${
        (error as Error).message
      }`,
    );
  }
}
