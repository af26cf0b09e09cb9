/**
 * The key layout and value format that the `etcd` (JSON gateway) and
 * `etcd3` (gRPC) transports share, so that both take the same keys and
 * exclude each other. Under `<root>/<name>/` (the name encoded as one path
 * segment):
 *
 * - `<lease id in hex>`: one **queue entry** per acquisition, on a lease of
 *   its own. The `limit` entries with the lowest create revisions hold the
 *   lock (for a limit of 1 that is etcd's `concurrency.Mutex`), and an
 *   entry's create revision is its fencing token. These are the only keys a
 *   mutex ever has, as in every earlier release.
 * - `slot/<k>`: for a limit above 1, the slot `k` that a holder claimed,
 *   valued with the holder's entry key and on the holder's lease, so that it
 *   goes when the entry goes. Creating it only if it is absent makes a slot
 *   unique among the holders. Entry keys are lowercase hex, so the queue's
 *   range (`[prefix, prefix + "g")`) never holds a slot key.
 *
 * An entry's value is a small JSON object ({@linkcode EntryValue}): the
 * owner, node and limit from the start, the slot and acquisition time once
 * it holds, and the time it went into guard time. Compare-and-set always
 * compares the exact stored text. A value that is not such an object is a
 * plain owner id, as releases before the semaphore stored it (limit 1).
 *
 * @module
 */

import { encodeLockName } from "../../src/names.ts";
import type { Compare, RangeQuery } from "./ops.ts";

/** The prefix under which the keys of one lock live. */
export function lockPrefix(root: string, name: string): string {
  return `${root}/${encodeLockName(name)}/`;
}

/** The key of one queue entry: its lock's prefix and its lease id in hex. */
export function queueKey(prefix: string, lease: string): string {
  return `${prefix}${BigInt(lease).toString(16)}`;
}

/**
 * The end of the range that holds a lock's queue entries and nothing else:
 * entry keys are hex digits, which all sort below `g`; `slot/…` sorts above.
 */
export function queueEnd(prefix: string): string {
  return `${prefix}g`;
}

/** The prefix of a lock's slot keys. */
export function slotPrefix(prefix: string): string {
  return `${prefix}slot/`;
}

/** The key of slot `slot` of a lock. */
export function slotKey(prefix: string, slot: number): string {
  return `${slotPrefix(prefix)}${slot}`;
}

/** The slot number a slot key names, or undefined for any other key. */
export function slotOf(prefix: string, key: string): number | undefined {
  const rest = key.startsWith(slotPrefix(prefix))
    ? key.slice(slotPrefix(prefix).length)
    : "";
  return /^(0|[1-9][0-9]{0,5})$/.test(rest) ? Number(rest) : undefined;
}

/**
 * The end of the key range that holds every key starting with `prefix`.
 * Prefixes here are ASCII and end in `/`, so one character step is enough.
 */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) +
    String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/** What a key under the root is: a lock's queue entry or slot key. */
export type RootKey =
  | { readonly name: string; readonly prefix: string; readonly kind: "entry" }
  | {
    readonly name: string;
    readonly prefix: string;
    readonly kind: "slot";
    readonly slot: number;
  };

/**
 * Reads a key found under `<root>/` back into its lock name, for listing
 * every lock; keys that coolock did not lay out are `undefined`.
 */
export function parseRootKey(root: string, key: string): RootKey | undefined {
  if (!key.startsWith(`${root}/`)) return undefined;
  const rest = key.slice(root.length + 1);
  const slash = rest.indexOf("/");
  if (slash <= 0) return undefined;
  const segment = rest.slice(0, slash);
  // encodeLockName keeps [A-Za-z0-9._-] and escapes every other byte.
  if (!/^[A-Za-z0-9_%-][A-Za-z0-9._%-]*$/.test(segment)) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    return undefined;
  }
  if (encodeLockName(name) !== segment) return undefined;
  const prefix = `${root}/${segment}/`;
  const tail = rest.slice(slash + 1);
  if (/^[0-9a-f]+$/.test(tail)) return { name, prefix, kind: "entry" };
  const slot = slotOf(prefix, key);
  return slot === undefined ? undefined : { name, prefix, kind: "slot", slot };
}

/** The value of a queue entry, as stored in JSON. */
export interface EntryValue {
  /** The acquisition's unique owner id. */
  readonly owner: string;
  /** The node name. */
  readonly node?: string;
  /** The limit the owner asked for; every node must use the same. */
  readonly limit: number;
  /** The slot held, once the entry holds one. */
  readonly slot?: number;
  /** When it came to hold the lock, in ms since the epoch, by the holder's clock. */
  readonly since?: number;
  /** When it was released into guard time, by the holder's clock. */
  readonly guard?: number;
}

/** The stored text of an entry's value; fields in a fixed order. */
export function encodeEntry(value: EntryValue): string {
  return JSON.stringify({
    owner: value.owner,
    node: value.node,
    limit: value.limit,
    slot: value.slot,
    since: value.since,
    guard: value.guard,
  });
}

const wholeNumber = (value: unknown, min: number): number | undefined =>
  Number.isSafeInteger(value) && (value as number) >= min
    ? value as number
    : undefined;

/**
 * An entry's value read back. A plain owner id (a release before the
 * semaphore) is a holder of a mutex: limit 1, slot 0 once it holds.
 */
export function decodeEntry(text: string): EntryValue {
  let parsed: unknown;
  try {
    parsed = text.startsWith("{") ? JSON.parse(text) : undefined;
  } catch { /* a plain owner id */ }
  if (
    typeof parsed === "object" && parsed !== null &&
    typeof (parsed as EntryValue).owner === "string"
  ) {
    const value = parsed as Record<string, unknown>;
    return {
      owner: value.owner as string,
      node: typeof value.node === "string" ? value.node : undefined,
      limit: wholeNumber(value.limit, 1) ?? 1,
      slot: wholeNumber(value.slot, 0),
      since: wholeNumber(value.since, 0),
      guard: wholeNumber(value.guard, 0),
    };
  }
  // Owners are `<node>:<pid>:<random>`.
  return { owner: text, node: text.replace(/:[^:]*:[^:]*$/, ""), limit: 1 };
}

/** The lock's oldest `limit` entries: its holders. */
export function holdersRange(prefix: string, limit: number): RangeQuery {
  return { key: prefix, end: queueEnd(prefix), order: "oldest", limit };
}

/** The entry just ahead of the one created at `createRevision`. */
export function aheadRange(prefix: string, createRevision: bigint): RangeQuery {
  return {
    key: prefix,
    end: queueEnd(prefix),
    order: "newest",
    limit: 1,
    maxCreateRevision: createRevision - 1n,
  };
}

/** Every slot key of a lock. */
export function slotsRange(prefix: string): RangeQuery {
  return { key: slotPrefix(prefix), end: prefixEnd(slotPrefix(prefix)) };
}

/** The conditions under which an entry is still its owner's. */
export function stillOwned(
  key: string,
  value: string,
  createRevision: bigint,
): Compare[] {
  return [
    { key, target: "create", equals: createRevision },
    { key, target: "value", equals: value },
  ];
}
