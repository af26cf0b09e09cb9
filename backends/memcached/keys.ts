/**
 * The memcached backend's keys: a lock item and a fencing counter per name,
 * both routed by the name alone so that they live on the same server.
 *
 * @module
 */

import { encodeLockName } from "../../src/names.ts";

const MAX_KEY_BYTES = 250;

/**
 * The keys of one lock, and the string that picks its server.
 *
 * @example
 * ```ts
 * import type { Keys } from "./keys.ts";
 * const same = (keys: Keys) => keys.lock.endsWith(keys.route);
 * ```
 */
export interface Keys {
  /** Hashed to choose the server. */
  readonly route: string;
  /** The lock item, valued with its owner. */
  readonly lock: string;
  /** The fencing counter, which never expires. */
  readonly fence: string;
}

/**
 * The keys of a lock name: its encoded form, or a hash when that would be
 * longer than memcached's 250-byte keys.
 *
 * @example
 * ```ts
 * import { keysOf } from "./keys.ts";
 * console.log((await keysOf("a/b")).lock); // coolock:lock:a%2Fb
 * ```
 */
export async function keysOf(name: string): Promise<Keys> {
  let id = encodeLockName(name);
  if (`coolock:fence:${id}`.length > MAX_KEY_BYTES) {
    // `#` never appears in an encoded name, so hashed ids can't collide.
    const bytes = new TextEncoder().encode(name);
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", bytes),
    );
    id = "#" + Array.from(digest, (b) => b.toString(16).padStart(2, "0"))
      .join("");
  }
  return {
    route: id,
    lock: `coolock:lock:${id}`,
    fence: `coolock:fence:${id}`,
  };
}
