/**
 * The consul backend's KV layout and the values it stores.
 *
 * - A mutex (limit 1) is the key `coolock/<name>`, acquired by a session, as
 *   `consul lock` does; its value says who holds it (owner, node, since, and
 *   the limit 1).
 * - A semaphore (limit N > 1) is Consul's own recipe (api/semaphore.go)
 *   under the prefix `coolock/<name>/`: one contender key per session,
 *   `coolock/<name>/<session>`, acquired by that session, and the record
 *   `coolock/<name>/.lock` with `Limit` and `Holders` (session → true),
 *   changed only by compare-and-set. coolock adds `Slots` (session → slot).
 * - After a release with guard time, the released key says `guardUntil`,
 *   so that `status` can show the guard that Consul's lock-delay enforces
 *   unseen. The mutex's lock-delay sits on a guard key of its own,
 *   `coolock/<name>/.guard-<id>`, that its value names (`probe`); a
 *   contender locks and deletes it in the transaction that takes the lock.
 *
 * Both shapes of one name share the base `coolock/<name>`, so one recursive
 * read sees a mutex and a semaphore of that name, and a limit mismatch
 * between nodes is caught.
 *
 * @module
 */

import type { KvPair, KvRead } from "./client.ts";

/** The root of every coolock key. */
export const ROOT = "coolock/";

/**
 * The KV key of a lock: `coolock/` and the name's UTF-8 bytes, `[A-Za-z0-9-]`
 * as they are and every other byte as `_XX`. Consul 1.21.5 rejects keys
 * outside `[a-zA-Z0-9,_./\-?&=]` or with `..`, so neither `%` nor `.`
 * appear, and no name can reach into another's `/` prefix.
 */
export function consulKey(name: string): string {
  let out = ROOT;
  for (const byte of new TextEncoder().encode(name)) {
    const char = String.fromCharCode(byte);
    out += /[A-Za-z0-9-]/.test(char)
      ? char
      : `_${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** The entries of one lock's base `coolock/<name>`, from a recursive read. */
export function familyOf(name: string, read: KvRead): KvPair[] {
  const base = consulKey(name);
  return read.entries.filter((entry) =>
    entry.Key === base || entry.Key.startsWith(`${base}/`)
  );
}

/** The lock name of a base key `coolock/<name>`, or `undefined`. */
export function nameOf(base: string): string | undefined {
  if (!base.startsWith(ROOT)) return undefined;
  const encoded = base.slice(ROOT.length);
  if (!/^(?:[A-Za-z0-9-]|_[0-9A-F]{2})+$/.test(encoded)) return undefined;
  const bytes = encoded.replace(
    /_([0-9A-F]{2})/g,
    (_, hex) => String.fromCharCode(parseInt(hex, 16)),
  );
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(bytes, (char) => char.charCodeAt(0)),
    );
  } catch {
    return undefined;
  }
}

/** The semaphore prefix of a lock: `coolock/<name>/`. */
export function semaphorePrefix(name: string): string {
  return `${consulKey(name)}/`;
}

/** The semaphore's coordination record (api/semaphore.go DefaultSemaphoreKey). */
export function recordKey(name: string): string {
  return `${semaphorePrefix(name)}.lock`;
}

/** A fresh guard key for the mutex `name`. */
export function guardKey(name: string): string {
  return `${semaphorePrefix(name)}.guard-${crypto.randomUUID()}`;
}

/** A session's contender key in a semaphore. */
export function contenderKey(name: string, session: string): string {
  return `${semaphorePrefix(name)}${session}`;
}

/** Who holds (or last held) a key: the value coolock stores. */
export interface HolderValue {
  readonly owner: string;
  readonly node: string;
  /** When the holder took it, by the holder's own clock (ISO 8601). */
  readonly since: string;
  readonly limit: number;
  readonly slot?: number;
  /** The fencing token, once known. */
  readonly token?: string;
  /** When guard time ends, by the releasing holder's clock (ISO 8601). */
  readonly guardUntil?: string;
  /** The mutex's guard key, which a contender must be able to lock too. */
  readonly probe?: string;
}

/** The value for a key; JSON, so that compare-and-set compares it exactly. */
export function encodeHolder(value: HolderValue): string {
  return JSON.stringify(value);
}

/** A stored holder value; a bare owner string (older coolock) is read too. */
export function decodeHolder(text: string | null | undefined): HolderValue {
  try {
    const value = JSON.parse(text ?? "");
    if (value && typeof value === "object" && typeof value.owner === "string") {
      return value;
    }
  } catch { /* an older coolock's plain owner */ }
  return { owner: text ?? "", node: "", since: "", limit: 1 };
}

/** The semaphore record, as api/semaphore.go's semaphoreLock plus `Slots`. */
export interface SemaphoreRecord {
  readonly Limit: number;
  readonly Holders: Readonly<Record<string, boolean>>;
  readonly Slots: Readonly<Record<string, number>>;
}

/** Parses a record; `undefined` when it is not one. */
export function decodeRecord(
  text: string | null | undefined,
): SemaphoreRecord | undefined {
  try {
    const value = JSON.parse(text ?? "");
    if (
      value && Number.isInteger(value.Limit) && value.Limit > 0 &&
      typeof value.Holders === "object" && value.Holders !== null
    ) {
      return {
        Limit: value.Limit,
        Holders: value.Holders,
        Slots: value.Slots ?? {},
      };
    }
  } catch { /* not a record */ }
  return undefined;
}
