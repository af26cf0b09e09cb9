/**
 * memcached backend URIs:
 * `memcached://[user:password@]host[:port][,host...][?timeout=S]`, checked
 * into the hosts, the bound on each call and the SASL credentials.
 *
 * @module
 */

import { type HostPort, parseBackendUri, secondsParam } from "../../src/uri.ts";

const CALL_TIMEOUT_MS = 3_000;

/** A checked memcached URI. */
export interface MemcachedTarget {
  /** The URI with its password replaced by `***`. */
  readonly display: string;
  /** The servers, in the order given. */
  readonly hosts: readonly HostPort[];
  /** The bound on one call. */
  readonly timeoutMs: number;
  /** The SASL user name, if any. */
  readonly username?: string;
  /** The SASL password, if any. */
  readonly password?: string;
}

/**
 * Parses and checks a memcached URI. Throws `TypeError` naming the problem,
 * with the password redacted. Nothing here connects: a port that is not
 * memcached is found at the first request (client.ts).
 */
export function parseMemcachedUri(uri: string): MemcachedTarget {
  const parsed = parseBackendUri(uri, 11211);
  const bad = (why: string) =>
    new TypeError(`Memcached URI '${parsed.display}' ${why}`);
  if (parsed.scheme !== "memcached") {
    throw bad("must start with memcached://");
  }
  if (parsed.hosts.length === 0) throw bad("has no host");
  if (parsed.path !== "" && parsed.path !== "/") {
    throw bad(`has a path '${parsed.path}': memcached has no databases`);
  }
  for (const name of parsed.params.keys()) {
    if (name !== "timeout") {
      throw bad(`has an unknown query option '${name}': use timeout`);
    }
  }
  const timeoutMs = secondsParam(parsed, "timeout", CALL_TIMEOUT_MS);
  if (timeoutMs === 0) throw bad("has a 'timeout' of 0: use a positive one");
  return {
    display: parsed.display,
    hosts: parsed.hosts,
    timeoutMs,
    username: parsed.username || undefined,
    password: parsed.password,
  };
}
