/**
 * The operator's calls on the etcd recipe, on either transport:
 *
 * - `status`: a lock's entries in create-revision order; the oldest `limit`
 *   hold (the limit stored with the oldest entry), the rest wait. Each
 *   holder's value names its node, owner, slot and acquisition time (the
 *   holder's clock: etcd has no clock API); its token is the entry's create
 *   revision, and the time left is its lease's (`LeaseTimeToLive`), which
 *   for a released entry is the guard time left. Without a name, every lock
 *   under the key root.
 * - `forceRelease`: revokes the lease of every entry (holders, guards,
 *   waiters), which deletes their keys and slot keys. Create revisions only
 *   grow, so the next holder's token is higher; a live holder's watch sees
 *   its key deleted and it loses the lock at once.
 *
 * @module
 */

import type { HolderStatus, LockStatus, Removal } from "../../src/backend.ts";
import {
  decodeEntry,
  lockPrefix,
  parseRootKey,
  prefixEnd,
  queueEnd,
  slotOf,
  slotPrefix,
} from "./keys.ts";
import type { EtcdOps, KeyValue } from "./ops.ts";

/** A lock's keys: its entries in create-revision order, and its slot keys. */
interface LockKeys {
  readonly name: string;
  readonly prefix: string;
  readonly entries: KeyValue[];
  readonly slots: KeyValue[];
}

async function keysOf(
  ops: EtcdOps,
  root: string,
  name: string,
  signal: AbortSignal,
): Promise<LockKeys> {
  const prefix = lockPrefix(root, name);
  const slots = slotPrefix(prefix);
  const { ranges: [entries, slotKeys] } = await ops.txn(
    [],
    [
      { range: { key: prefix, end: queueEnd(prefix), order: "oldest" } },
      { range: { key: slots, end: prefixEnd(slots) } },
    ],
    [],
    signal,
  );
  return { name, prefix, entries: [...entries], slots: [...slotKeys] };
}

async function statusOf(
  ops: EtcdOps,
  lock: LockKeys,
  signal: AbortSignal,
): Promise<LockStatus> {
  const { name, entries } = lock;
  if (entries.length === 0) return { name, holders: [], waiting: 0 };
  const limit = decodeEntry(entries[0].value).limit;
  const head = entries.slice(0, limit);
  const holders = await Promise.all(head.map(async (kv) => {
    const value = decodeEntry(kv.value);
    // A new holder of a semaphore writes its slot a moment after it is
    // among the oldest; until then it is not reported.
    const slot = value.slot ?? (limit === 1 ? 0 : undefined);
    if (slot === undefined) return undefined;
    const seconds = kv.lease === "0"
      ? undefined
      : await ops.timeToLive(kv.lease, signal);
    const leftMs = seconds === undefined || seconds < 0
      ? undefined
      : seconds * 1000;
    const guard = value.guard !== undefined;
    const holder: HolderStatus = {
      slot,
      state: guard ? "guard" : "held",
      node: value.node,
      owner: value.owner,
      since: value.since === undefined ? undefined : new Date(value.since),
      token: kv.createRevision,
      leaseLeftMs: guard ? undefined : leftMs,
      guardLeftMs: guard ? leftMs : undefined,
    };
    return holder;
  }));
  return {
    name,
    limit,
    holders: holders.filter((h) => h !== undefined).sort((a, b) =>
      a.slot - b.slot
    ),
    waiting: entries.length - head.length,
  };
}

/** `status`: one lock, or every lock under the root. */
export async function lockStatus(
  ops: EtcdOps,
  root: string,
  name: string | undefined,
  signal: AbortSignal,
): Promise<LockStatus[]> {
  if (name !== undefined) {
    return [await statusOf(ops, await keysOf(ops, root, name, signal), signal)];
  }
  const { ranges: [all] } = await ops.txn(
    [],
    [{
      range: { key: `${root}/`, end: prefixEnd(`${root}/`), order: "oldest" },
    }],
    [],
    signal,
  );
  const locks = new Map<string, LockKeys>();
  for (const kv of all) {
    const parsed = parseRootKey(root, kv.key);
    if (!parsed) continue;
    let lock = locks.get(parsed.name);
    if (!lock) {
      lock = {
        name: parsed.name,
        prefix: parsed.prefix,
        entries: [],
        slots: [],
      };
      locks.set(parsed.name, lock);
    }
    (parsed.kind === "entry" ? lock.entries : lock.slots).push(kv);
  }
  const statuses = await Promise.all(
    [...locks.values()].filter((lock) => lock.entries.length > 0).map((
      lock,
    ) => statusOf(ops, lock, signal)),
  );
  return statuses.sort((a, b) => a.name < b.name ? -1 : 1);
}

/** `forceRelease`: revokes every entry's lease; deletes what has none. */
export async function forceRelease(
  ops: EtcdOps,
  root: string,
  name: string,
  signal: AbortSignal,
): Promise<Removal[]> {
  const lock = await keysOf(ops, root, name, signal);
  const limit = lock.entries.length === 0
    ? 1
    : decodeEntry(lock.entries[0].value).limit;
  const removed: Removal[] = [];
  const revoked = new Set<string>();
  for (const [index, kv] of lock.entries.entries()) {
    const value = decodeEntry(kv.value);
    const what = index >= limit
      ? "queue entry"
      : value.guard !== undefined
      ? "guard"
      : "lease";
    const slot = value.slot === undefined ? "" : `slot ${value.slot}, `;
    removed.push({
      what,
      detail:
        `key ${kv.key} of ${value.owner} (${slot}token ${kv.createRevision})`,
    });
    await removeKey(ops, kv, revoked, signal);
  }
  for (const kv of lock.slots) {
    if (kv.lease !== "0" && revoked.has(kv.lease)) continue;
    removed.push({
      what: "slot",
      detail: `key ${kv.key} (slot ${slotOf(lock.prefix, kv.key) ?? "?"})`,
    });
    await removeKey(ops, kv, revoked, signal);
  }
  return removed;
}

/** Revokes a key's lease (once), or deletes a key without one, if unchanged. */
async function removeKey(
  ops: EtcdOps,
  kv: KeyValue,
  revoked: Set<string>,
  signal: AbortSignal,
) {
  if (kv.lease !== "0") {
    if (!revoked.has(kv.lease)) await ops.revoke(kv.lease, signal);
    revoked.add(kv.lease);
    return;
  }
  await ops.txn(
    [{ key: kv.key, target: "mod", equals: kv.modRevision }],
    [{ delete: kv.key }],
    [],
    signal,
  );
}
