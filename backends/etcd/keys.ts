/**
 * The key layout that the `etcd` and `etcd3` backends share, so that both
 * take the same keys and exclude each other: each acquisition puts its own
 * key `<root>/<name>/<lease id in hex>`, valued with its owner, under its
 * lease; the key with the lowest create revision under the prefix holds the
 * lock, as in etcd's `concurrency.Mutex`.
 *
 * @module
 */

import { encodeLockName } from "../../src/names.ts";

/**
 * The prefix under which the keys of one lock live.
 *
 * @example
 * ```ts
 * import { lockPrefix } from "./keys.ts";
 * console.log(lockPrefix("coolock", "a/b")); // coolock/a%2Fb/
 * ```
 */
export function lockPrefix(root: string, name: string): string {
  return `${root}/${encodeLockName(name)}/`;
}

/**
 * The key of one acquisition: its lock's prefix and its lease id in hex.
 *
 * @example
 * ```ts
 * import { queueKey } from "./keys.ts";
 * console.log(queueKey("coolock/a/", "255")); // coolock/a/ff
 * ```
 */
export function queueKey(prefix: string, lease: string): string {
  return `${prefix}${BigInt(lease).toString(16)}`;
}

/**
 * The end of the key range that holds every key starting with `prefix`.
 *
 * @example
 * ```ts
 * import { prefixEnd } from "./keys.ts";
 * console.log(prefixEnd("coolock/a/")); // coolock/a0
 * ```
 */
export function prefixEnd(prefix: string): string {
  // Lock prefixes are ASCII and end in "/", so one character step is enough.
  return prefix.slice(0, -1) +
    String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/**
 * A lease TTL in whole seconds, at least 1, that covers `ms`.
 *
 * @example
 * ```ts
 * import { leaseSeconds } from "./keys.ts";
 * console.log(leaseSeconds(2_500)); // 3
 * ```
 */
export function leaseSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
