/**
 * Redis backend URIs, checked into ioredis options:
 * `redis[s]://[user:password@]host[:port][,host[:port]...][/db][?query]`.
 * Several hosts are Sentinels and need `?sentinel=<master name>`.
 *
 * @module
 */

import type { RedisOptions } from "npm:ioredis@6.0.0";
import { parseBackendUri, readFileParam, secondsParam } from "../../src/uri.ts";

const QUERY_OPTIONS = [
  "sentinel",
  "sentinel_password",
  "ca",
  "cert",
  "key",
  "connect_timeout",
];
const TLS_FILES = ["ca", "cert", "key"] as const;

/**
 * A checked Redis URI: the ioredis options and what the backend needs to
 * bound and redact its calls.
 *
 * @example
 * ```ts
 * import { redisTarget } from "./uri.ts";
 * const target: { display: string } = redisTarget("redis://db");
 * console.log(target.display); // redis://db
 * ```
 */
export interface RedisTarget {
  /** The URI with secrets replaced by `***`. */
  readonly display: string;
  /** Options for ioredis's `new Redis()`, with bounded connection attempts. */
  readonly options: Readonly<Record<string, unknown>>;
  /** How long one connection attempt may take, in milliseconds. */
  readonly connectTimeoutMs: number;
  /** Secrets that must be scrubbed from any server or client message. */
  readonly secrets: readonly string[];
}

/**
 * Parses and checks a `redis://` or `rediss://` URI. Throws `TypeError`
 * naming the problem, with the password redacted.
 *
 * @param uri the URI as the user wrote it
 * @param commandTimeoutMs how long one command may go unanswered
 *
 * @example
 * ```ts
 * import { redisTarget } from "./uri.ts";
 * const { options } = redisTarget("redis://:secret@db:6380/2");
 * console.log(options.port, options.db); // 6380 2
 * ```
 */
export function redisTarget(
  uri: string,
  commandTimeoutMs = 5_000,
): RedisTarget {
  const parsed = parseBackendUri(uri, 6379);
  const { display, params, hosts } = parsed;
  const bad = (why: string) => new TypeError(`Redis URI '${display}' ${why}`);
  if (parsed.scheme !== "redis" && parsed.scheme !== "rediss") {
    throw bad("must start with redis:// or rediss://");
  }
  for (const name of params.keys()) {
    if (!QUERY_OPTIONS.includes(name)) {
      throw bad(
        `has an unknown query option '${name}': use ${
          QUERY_OPTIONS.join(", ")
        }`,
      );
    }
  }
  if (hosts.length === 0) throw bad("has no host");
  const dbText = parsed.path.replace(/^\//, "");
  const db = Number(dbText || "0");
  if (!/^\d{0,9}$/.test(dbText)) {
    throw bad(
      `has a bad database '${dbText}' in its path: use a number such as /0`,
    );
  }
  const sentinel = params.get("sentinel");
  if (sentinel === "") throw bad("has an empty 'sentinel' master name");
  if (sentinel === null && hosts.length > 1) {
    throw bad("lists several hosts: name the master with ?sentinel=<name>");
  }
  const sentinelPassword = params.get("sentinel_password") ?? undefined;
  if (sentinel === null && sentinelPassword !== undefined) {
    throw bad("has 'sentinel_password' without 'sentinel'");
  }
  const tls = parsed.scheme === "rediss" ? {} as Record<string, string> : null;
  for (const name of TLS_FILES) {
    if (!params.has(name)) continue;
    if (!tls) throw bad(`has a '${name}' file but TLS needs rediss://`);
    tls[name] = readFileParam(parsed, name)!;
  }
  const connectTimeoutMs = secondsParam(parsed, "connect_timeout", 3_000);
  const common: RedisOptions = {
    username: parsed.username || undefined,
    password: parsed.password,
    db,
    lazyConnect: true,
    // Without a reconnect or an offline queue, a command is either sent on a
    // live connection or fails at once; the backend opens a new connection
    // on the next call, so no reconnect timer outlives close().
    retryStrategy: () => null,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: connectTimeoutMs,
    commandTimeout: commandTimeoutMs,
    connectionName: "coolock",
    disableClientInfo: true,
    tls: tls ?? undefined,
  };
  const options: RedisOptions = sentinel === null
    ? { ...common, host: hosts[0].host, port: hosts[0].port }
    : {
      ...common,
      name: sentinel,
      sentinels: hosts.map(({ host, port }) => ({ host, port })),
      sentinelPassword,
      sentinelRetryStrategy: () => null,
      sentinelCommandTimeout: commandTimeoutMs,
      enableTLSForSentinelMode: tls !== null,
      sentinelTLS: tls ?? undefined,
    };
  const secrets = [parsed.password, sentinelPassword].filter(
    (secret): secret is string => !!secret,
  );
  return {
    display,
    options: options as Record<string, unknown>,
    connectTimeoutMs,
    secrets,
  };
}
