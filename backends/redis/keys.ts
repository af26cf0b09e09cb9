/**
 * The Redis backend's key layout and stored value, written once:
 *
 * - `coolock:lock:<name>` — slot 0, the same key as a mutex of the previous
 *   release, so that both exclude each other;
 * - `coolock:slot:<k>:<name>` — slot k ≥ 1 of a semaphore. Not
 *   `coolock:lock:<name>:<k>`: that is also slot 0 of a lock named
 *   `<name>:<k>`, and a force release of one would delete the other's holder.
 *   The slot number ends at the first `:`, so every key names one lock;
 * - `coolock:fence:<name>` — the fencing counter, never expires, shared by
 *   every slot;
 * - `coolock:limit:<name>` — the stored limit N, kept alive as long as any
 *   slot key;
 * - `coolock:epoch` — the marker of a settled server (scripts.ts);
 * - channel `coolock:released:<name>` — a release publishes on it.
 *
 * Names are Redis key bytes as they are: no escaping.
 *
 * A slot key's value is a small JSON object (owner, node, limit, guard,
 * since, token; `released` once in guard time), so that `status` can say who
 * holds it. Compare-and-set compares the exact stored string.
 *
 * @module
 */

/** The marker key that says the server's data was not lost (scripts.ts). */
export const EPOCH_KEY = "coolock:epoch";

const LOCK_PREFIX = "coolock:lock:";
const SLOT_PREFIX = "coolock:slot:";

/** The keys of one lock name. */
export interface LockKeys {
  readonly name: string;
  readonly fence: string;
  readonly limit: string;
  readonly channel: string;
  /** The key of slot `k`. */
  slot(k: number): string;
}

/** The keys of lock `name`. */
export function keysOf(name: string): LockKeys {
  return {
    name,
    fence: `coolock:fence:${name}`,
    limit: `coolock:limit:${name}`,
    channel: `coolock:released:${name}`,
    slot: (k) =>
      k === 0 ? `${LOCK_PREFIX}${name}` : `${SLOT_PREFIX}${k}:${name}`,
  };
}

/** The `SCAN MATCH` patterns that find every slot key. */
export const SLOT_PATTERNS = [`${LOCK_PREFIX}*`, `${SLOT_PREFIX}*`] as const;

/** The lock name and slot of a slot key, or undefined for any other key. */
export function slotOfKey(
  key: string,
): { name: string; slot: number } | undefined {
  if (key.startsWith(LOCK_PREFIX)) {
    const name = key.slice(LOCK_PREFIX.length);
    return name === "" ? undefined : { name, slot: 0 };
  }
  const match = /^coolock:slot:([1-9][0-9]*):(.+)$/s.exec(key);
  return match ? { name: match[2], slot: Number(match[1]) } : undefined;
}

/**
 * The start of a slot key's value, as the client knows it before the
 * acquire script appends `since` and `token` and closes the object.
 */
export function valuePrefix(
  owner: string,
  node: string,
  limit: number,
  guardMs: number,
): string {
  return JSON.stringify({ owner, node, limit, guard: Math.ceil(guardMs) })
    .slice(0, -1);
}

export { parseHolder, type StoredHolder } from "../holder.ts";

/** Milliseconds as the whole, positive number a PX or PEXPIRE takes. */
export function wholeMs(ms: number): string {
  return String(Math.max(1, Math.ceil(ms)));
}
