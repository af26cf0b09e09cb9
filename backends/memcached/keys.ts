/**
 * The memcached backend's keys and stored value. Every key of a lock is
 * routed by the lock's id alone, so they all live on the same server:
 *
 * - `coolock:lock:<id>` — slot 0, the same item as a mutex of the previous
 *   release, so that both exclude each other;
 * - `coolock:slot:<k>:<id>` — slot k ≥ 1 of a semaphore (the slot number
 *   ends at the first `:`, so no key is also another lock's);
 * - `coolock:fence:<id>` — the fencing counter, which never expires;
 * - `coolock:limit:<id>` — the stored limit N, added by the first holder;
 * - `coolock:epoch` on the same server — the marker of a settled server
 *   process (mod.ts).
 *
 * The id is the encoded name, or a hash where a key would pass memcached's
 * 250 bytes (`#` never appears in an encoded name, so they can't collide).
 * A slot item's value is a small JSON object (owner, node, limit, guard,
 * since, token, until; `released` once in guard time): memcached can't read
 * an item's TTL, so `until` says when it runs out. Compare-and-swap compares
 * the exact stored string.
 *
 * @module
 */

import { encodeLockName } from "../../src/names.ts";

const MAX_KEY_BYTES = 250;
const LONGEST_SLOT = "coolock:slot:999:";

/** The marker of a settled server process, one per server. */
export const EPOCH_KEY = "coolock:epoch";

/** The keys of one lock, and the string that picks its server. */
export interface Keys {
  /** Hashed to choose the server. */
  readonly route: string;
  /** Slot 0. */
  readonly lock: string;
  /** The fencing counter, which never expires. */
  readonly fence: string;
  /** The stored limit. */
  readonly limit: string;
  /** The key of slot `k`. */
  slot(k: number): string;
}

async function hashed(name: string): Promise<string> {
  const bytes = new TextEncoder().encode(name);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return "#" + Array.from(digest, (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/**
 * The keys of a lock name: its encoded form, or a hash when that would be
 * longer than memcached's 250-byte keys. Slot 0 and the counter keep the
 * previous release's rule (hash when the counter's key would be too long);
 * other slots hash when their own key would be.
 */
export async function keysOf(name: string): Promise<Keys> {
  const encoded = encodeLockName(name);
  const id = `coolock:fence:${encoded}`.length > MAX_KEY_BYTES
    ? await hashed(name)
    : encoded;
  const slotId = `${LONGEST_SLOT}${id}`.length > MAX_KEY_BYTES
    ? await hashed(name)
    : id;
  return {
    route: id,
    lock: `coolock:lock:${id}`,
    fence: `coolock:fence:${id}`,
    limit: `coolock:limit:${id}`,
    slot: (k) => k === 0 ? `coolock:lock:${id}` : `coolock:slot:${k}:${slotId}`,
  };
}

export { holderValue, parseHolder, type StoredHolder } from "../holder.ts";
