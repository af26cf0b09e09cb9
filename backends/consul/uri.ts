/**
 * Consul backend URIs: `consul://host:8500`, `consul+http://…` or
 * `consul+https://…`, with `token` (else `CONSUL_HTTP_TOKEN`), `dc`,
 * `lock-delay`, `session-ttl-min` and, over HTTPS, the files `ca`, `cert`
 * and `key`. Everything is checked here, before anything connects, and
 * every message hides the token.
 *
 * @module
 */

import { parseBackendUri, readFileParam, secondsParam } from "../../src/uri.ts";
import type { ClientOptions } from "./client.ts";
import {
  DEFAULT_TTL_MIN_MS,
  MAX_LOCK_DELAY_MS,
  MAX_TTL_MS,
} from "./sessions.ts";

const OPTIONS = [
  "token",
  "dc",
  "lock-delay",
  "session-ttl-min",
  "ca",
  "cert",
  "key",
];

/** A checked Consul URI: the npm client's options and what the backend needs. */
export interface ConsulTarget {
  /** Options for the npm client's constructor. */
  readonly options: ClientOptions;
  /** The ACL token, if any: a secret. */
  readonly token: string | undefined;
  /** Whether the token comes from `CONSUL_HTTP_TOKEN`. */
  readonly tokenFromEnv: boolean;
  /** The datacenter the URI names, if any. */
  readonly dc: string | undefined;
  /** The sessions' lock-delay, or `undefined` for "the session's TTL". */
  readonly lockDelayMs: number | undefined;
  /** The servers' `session_ttl_min`, as the URI states it (default 10 s). */
  readonly sessionTtlMinMs: number;
  /** The agent's `host:port`, for the net permission. */
  readonly hostPort: string;
  /** The TLS files the URI names, for the read permission. */
  readonly files: readonly string[];
  /** The URI with its token replaced by `***`. */
  readonly display: string;
}

function envToken(): string | undefined {
  try {
    return Deno.env.get("CONSUL_HTTP_TOKEN") || undefined;
  } catch {
    return undefined;
  }
}

/** Parses and checks a Consul URI. Throws `TypeError` naming the problem. */
export function parseConsulUri(text: string): ConsulTarget {
  const uri = parseBackendUri(text, 8500);
  const { display, params } = uri;
  const bad = (why: string) =>
    new TypeError(`Consul backend URI '${display}' ${why}`);
  if (!["consul", "consul+http", "consul+https"].includes(uri.scheme)) {
    throw bad("must start with consul://, consul+http:// or consul+https://");
  }
  if (uri.hosts.length !== 1) throw bad("must name exactly one Consul agent");
  if (uri.username !== "" || uri.password !== undefined) {
    throw bad(
      "takes no user name or password: give an ACL token as ?token= or CONSUL_HTTP_TOKEN",
    );
  }
  if (uri.path !== "" && uri.path !== "/") {
    throw bad(`has a path '${uri.path}': locks live under coolock/`);
  }
  for (const name of params.keys()) {
    if (!OPTIONS.includes(name)) {
      throw bad(`has an unknown option '${name}': use ${OPTIONS.join(", ")}`);
    }
  }
  const secure = uri.scheme === "consul+https";
  const tls: Record<string, string> = {};
  const files: string[] = [];
  for (const name of ["ca", "cert", "key"]) {
    if (params.has(name) && !secure) {
      throw bad(`has a '${name}' option, which needs consul+https://`);
    }
    const file = readFileParam(uri, name);
    if (file !== undefined) {
      tls[name] = file;
      files.push(params.get(name)!);
    }
  }
  if (("cert" in tls) !== ("key" in tls)) {
    throw bad("needs both 'cert' and 'key', or neither");
  }
  const lockDelayMs = params.has("lock-delay")
    ? secondsParam(uri, "lock-delay", 0)
    : undefined;
  if (lockDelayMs !== undefined && lockDelayMs > MAX_LOCK_DELAY_MS) {
    throw bad(
      `has a 'lock-delay' of '${
        params.get("lock-delay")
      }': Consul allows 0 to 60 seconds`,
    );
  }
  const sessionTtlMinMs = secondsParam(
    uri,
    "session-ttl-min",
    DEFAULT_TTL_MIN_MS,
  );
  if (!(sessionTtlMinMs >= 1_000 && sessionTtlMinMs <= MAX_TTL_MS)) {
    throw bad(
      `has a 'session-ttl-min' of '${
        params.get("session-ttl-min")
      }': use the servers' session_ttl_min, from 1 to 86400 seconds`,
    );
  }
  const dc = params.get("dc") || undefined;
  const fromUri = params.get("token") || undefined;
  const token = fromUri ?? envToken();
  const { host, port } = uri.hosts[0];
  const hostText = host.includes(":") ? `[${host}]` : host;
  return {
    options: {
      baseUrl: `${secure ? "https" : "http"}://${hostText}:${port}/v1`,
      defaults: { token, dc },
      ...tls,
    },
    token,
    tokenFromEnv: fromUri === undefined,
    dc,
    lockDelayMs,
    sessionTtlMinMs,
    hostPort: `${hostText}:${port}`,
    files,
    display,
  };
}
