/**
 * Two of the operator's calls on the ZooKeeper recipe:
 *
 * - `status`: a lock's entries and slot records. An entry named by a
 *   record holds that slot (node and owner from the record, since = when it
 *   took the slot, by the server's clock; token = the entry's czxid; lease
 *   and guard left from the record); a record whose entry is gone (a
 *   release with guard time, or a dropped session) still keeps its slot and
 *   shows as `guard`; every other entry waits. Time left is the record's end
 *   (server ms) against this host's clock: `status` only reads, and a read
 *   carries no server time (`check` reports the skew). Without a name,
 *   every lock under the root that this identity may read.
 * - `forceRelease`: in one transaction, clears every record and deletes
 *   every entry (holders and waiters), then the parent. czxids only grow,
 *   so the next token is higher; a live holder's watch sees its entry go
 *   and it loses the lock at once. With digest auth the nodes belong to
 *   their identity: the operator needs the same `user:password` (or the
 *   server's super digest).
 *
 * `check` is in `check.ts`.
 *
 * @module
 */

import type { HolderStatus, LockStatus, Removal } from "../../src/backend.ts";
import { bigintOf, codeOf, ignore, msOf, NO_AUTH, ZkCode } from "./client.ts";
import {
  decodeEntry,
  entriesOf,
  type Entry,
  nameOf,
  parentOf,
  recordEnd,
  storedLimit,
} from "./keys.ts";
import type { NodeData, TxnOp, ZkSession } from "./session.ts";
import { raced, readSlotNodes, readSlots, type Slot } from "./slots.ts";

/** What is stored for one lock. */
interface LockNodes {
  readonly parent: string;
  readonly parentNode: NodeData;
  readonly limit: number;
  /** Entries, oldest first, with their values and stats. */
  readonly entries: { name: string; node?: NodeData; value: Entry }[];
  /** Slot records: the parent's for a mutex, else every `slot-<k>` node. */
  readonly slots: Slot[];
  /** `slot-<k>` nodes, whatever the limit. */
  readonly slotNodes: Slot[];
}

const missing = (error: unknown) => {
  if (codeOf(error) === ZkCode.NO_NODE) return undefined;
  throw error;
};

async function nodesOf(
  session: ZkSession,
  root: string,
  name: string,
  signal: AbortSignal,
): Promise<LockNodes | undefined> {
  const parent = parentOf(root, name);
  const [listed, parentNode] = await Promise.all([
    session.getChildren(parent, signal).catch(missing),
    session.getData(parent, signal).catch(missing),
  ]);
  if (!listed || !parentNode) return undefined;
  const limit = storedLimit(parentNode.data);
  const [entries, slotNodes] = await Promise.all([
    Promise.all(
      entriesOf(listed.children).map(async (entry) => {
        const node = await session.getData(`${parent}/${entry}`, signal)
          .catch(missing);
        return {
          name: entry,
          node,
          value: decodeEntry(node?.data ?? new Uint8Array()),
        };
      }),
    ),
    readSlotNodes(session, parent, listed.children, signal),
  ]);
  const slots = limit === 1
    ? await readSlots(session, parent, 1, parentNode, signal)
    : slotNodes.filter((slot) => slot.slot < limit);
  return { parent, parentNode, limit, entries, slots, slotNodes };
}

/** The entries that hold a slot, by name: those a record names. */
function seated(lock: LockNodes): Map<string, Slot> {
  const queued = new Set(lock.entries.map((entry) => entry.name));
  const seats = new Map<string, Slot>();
  for (const slot of lock.slots) {
    const entry = slot.record?.entry;
    if (entry !== undefined && queued.has(entry)) seats.set(entry, slot);
  }
  // A mutex's first entry without a record is held the 0.1 way (a holder of
  // coolock 0.1 writes a record only for guard time).
  const [first] = lock.entries;
  if (lock.limit === 1 && first && seats.size === 0 && !lock.slots[0].record) {
    seats.set(first.name, lock.slots[0]);
  }
  return seats;
}

/** `status` of one lock. */
export async function lockStatus(
  session: ZkSession,
  root: string,
  name: string,
  signal: AbortSignal,
): Promise<LockStatus> {
  const lock = await nodesOf(session, root, name, signal);
  if (!lock) return { name, holders: [], waiting: 0 };
  const now = Date.now();
  const seats = seated(lock);
  const holders: HolderStatus[] = [];
  for (const entry of lock.entries) {
    const slot = seats.get(entry.name);
    if (!slot || !entry.node) continue;
    const record = slot.record;
    const guardEnd = record && record.guardMs > 0
      ? msOf(slot.stat!.mtime) + record.guardMs
      : 0;
    holders.push({
      slot: slot.slot,
      state: "held",
      node: record?.node ?? entry.value.node,
      owner: record?.owner ?? entry.value.owner,
      since: new Date(
        record
          ? record.since ?? msOf(slot.stat!.mtime)
          : msOf(entry.node.stat.ctime),
      ),
      token: bigintOf(entry.node.stat.czxid),
      leaseLeftMs: record
        ? Math.max(0, recordEnd(record, slot.stat!) - now)
        : undefined,
      guardLeftMs: guardEnd > now ? guardEnd - now : undefined,
    });
  }
  for (const slot of lock.slots) {
    const record = slot.record;
    if (!record || [...seats.values()].includes(slot)) continue;
    const left = recordEnd(record, slot.stat!) - now;
    if (left <= 0) continue;
    holders.push({
      slot: slot.slot,
      state: "guard",
      node: record.node,
      owner: record.owner,
      since: record.since ? new Date(record.since) : undefined,
      guardLeftMs: left,
    });
  }
  holders.sort((a, b) => a.slot - b.slot);
  return {
    name,
    limit: lock.limit,
    holders,
    waiting: lock.entries.length - seats.size,
  };
}

/** `status` of every lock under the root. */
export async function everyLockStatus(
  session: ZkSession,
  root: string,
  signal: AbortSignal,
): Promise<LockStatus[]> {
  const listed = await session.getChildren(root, signal).catch(missing);
  const names = (listed?.children ?? []).map(nameOf).filter(
    (name): name is string => name !== undefined,
  ).sort();
  const statuses: (LockStatus | undefined)[] = [];
  // A few at a time: a root may hold many locks.
  for (let i = 0; i < names.length; i += 8) {
    statuses.push(
      ...await Promise.all(
        names.slice(i, i + 8).map((name) =>
          lockStatus(session, root, name, signal).catch((error) => {
            // Another digest identity's lock: not this caller's to read.
            if (codeOf((error as Error).cause) === NO_AUTH) return undefined;
            throw error;
          })
        ),
      ),
    );
  }
  return statuses.filter((status) => status !== undefined);
}

/** `forceRelease`: clears every record and deletes every entry of a lock. */
export async function forceRelease(
  session: ZkSession,
  root: string,
  name: string,
  signal: AbortSignal,
): Promise<Removal[]> {
  for (let attempt = 0;; attempt++) {
    const lock = await nodesOf(session, root, name, signal);
    if (!lock) return [];
    const { parent, parentNode, limit } = lock;
    // The first write clears a mutex's record (or rewrites a semaphore's
    // limit as it is): its mtime is the server's time for the report.
    const ops: TxnOp[] = [
      {
        setData: parent,
        data: limit === 1 ? new Uint8Array() : parentNode.data,
        version: -1,
      },
      ...lock.slotNodes.map((slot) => ({ remove: slot.path, version: -1 })),
      ...lock.entries.map((entry) => ({
        remove: `${parent}/${entry.name}`,
        version: -1,
      })),
    ];
    let now: number;
    try {
      const [{ stat }] = await session.transaction(ops, signal);
      now = msOf(stat!.mtime);
    } catch (error) {
      // An entry came or went meanwhile: look again.
      if (raced(error) && attempt < 3) continue;
      throw error;
    }
    await session.remove(parent, -1, signal).catch(
      ignore(ZkCode.NOT_EMPTY, ZkCode.NO_NODE),
    );
    return removals(lock, now);
  }
}

function removals(lock: LockNodes, now: number): Removal[] {
  const seats = seated(lock);
  const removed: Removal[] = [];
  for (const entry of lock.entries) {
    const slot = seats.get(entry.name);
    const token = entry.node
      ? `, token ${bigintOf(entry.node.stat.czxid)}`
      : "";
    const owner = entry.value.owner ?? "an unknown owner";
    removed.push(
      slot
        ? {
          what: "lease",
          detail: `node ${entry.name} of ${owner} (slot ${slot.slot}${token})`,
        }
        : { what: "queue entry", detail: `node ${entry.name} of ${owner}` },
    );
  }
  for (const slot of lock.slots) {
    const record = slot.record;
    if (!record || [...seats.values()].includes(slot)) continue;
    const left = recordEnd(record, slot.stat!) - now;
    if (left <= 0) continue;
    removed.push({
      what: record.leaseMs > record.guardMs ? "lease" : "guard",
      detail: `record of slot ${slot.slot} of ${
        record.owner ?? "an unknown owner"
      }, ${(left / 1000).toFixed(1)} s left${
        record.leaseMs > record.guardMs ? " (its session is gone)" : ""
      }`,
    });
  }
  return removed;
}
