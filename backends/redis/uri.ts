/**
 * Redis backend URIs, checked into ioredis options:
 * `redis[s]://[user:password@]host[:port][,host[:port]...][/db][?query]`.
 * Several hosts are Sentinels and need `?sentinel=<master name>`. Nothing
 * here connects: a database that the server lacks is found at connect
 * (client.ts).
 *
 * @module
 */

import type { LinkTarget, RedisOptions } from "./client.ts";
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
 * A checked Redis URI: what the connections need (client.ts's
 * `LinkTarget`: the ioredis options, and how to bound and redact calls),
 * and what the Deno permissions need.
 */
export interface RedisTarget extends LinkTarget {
  /** The hosts to reach, for the Deno permissions. */
  readonly hosts: readonly { host: string; port: number }[];
  /** TLS files to read, for the Deno permissions. */
  readonly files: readonly string[];
}

/**
 * Parses and checks a `redis://` or `rediss://` URI. Throws `TypeError`
 * naming the problem, with the password redacted.
 *
 * @param uri the URI as the user wrote it
 * @param commandTimeoutMs how long one command may go unanswered
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
  const files: string[] = [];
  for (const name of TLS_FILES) {
    if (!params.has(name)) continue;
    if (!tls) throw bad(`has a '${name}' file but TLS needs rediss://`);
    files.push(params.get(name)!);
    tls[name] = readFileParam(parsed, name)!;
  }
  const connectTimeoutMs = secondsParam(parsed, "connect_timeout", 3_000);
  const common: RedisOptions = {
    username: parsed.username || undefined,
    password: parsed.password,
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
    // client.ts reads INFO itself, and tolerates a server that refuses it;
    // ioredis's own ready check would fail the connection instead.
    enableReadyCheck: false,
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
    address: `${hosts[0].host}:${hosts[0].port}`,
    db,
    sentinel: sentinel !== null,
    hosts,
    files,
    options: options as Record<string, unknown>,
    connectTimeoutMs,
    secrets,
  };
}
