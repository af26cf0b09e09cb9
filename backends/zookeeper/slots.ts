/**
 * The slot records of a lock (`keys.ts` says where they live), read, judged
 * and written on the server. Time is always the server's: a contender
 * learns "now" from the mtime of a write of its own (its entry, rewritten
 * with its own value), and compares it with a record's mtime + max(guard,
 * lease). The local clock never decides whether a slot is free.
 *
 * A slot is taken by compare-and-set: creating its node when it has none,
 * else writing the record at the version that was judged free. Two
 * contenders can't both win one slot, and a holder whose record was
 * rewritten (by a forced release, or by a contender after its lease ran
 * out) fails its next renewal.
 *
 * @module
 */

import { codeOf, msOf, ZkCode, type ZkStat } from "./client.ts";
import {
  decodeRecord,
  encodeRecord,
  entriesOf,
  recordEnd,
  recordPath,
  slotOf,
  type SlotRecord,
  storedLimit,
} from "./keys.ts";
import type { NodeData, TxnOp, ZkSession } from "./session.ts";

/** One slot as read from the server. */
export interface Slot {
  readonly slot: number;
  /** The node that holds its record. */
  readonly path: string;
  /** The record; `undefined` when it is empty or its node is missing. */
  readonly record?: SlotRecord;
  /** The node's stat; `undefined` when the node does not exist yet. */
  readonly stat?: ZkStat;
}

/** The codes a lost compare-and-set gives. */
const RACED = new Set<number>([
  ZkCode.NO_NODE,
  ZkCode.NODE_EXISTS,
  ZkCode.BAD_VERSION,
  ZkCode.NOT_EMPTY,
]);

/** Whether `error` says another writer changed the node first. */
export function raced(error: unknown): boolean {
  return RACED.has(codeOf(error) ?? 0);
}

function slotFrom(slot: number, path: string, node?: NodeData): Slot {
  return node
    ? { slot, path, record: decodeRecord(node.data), stat: node.stat }
    : { slot, path };
}

/**
 * The records of slots 0 … limit − 1. A mutex's is in the parent, whose
 * data the caller has read already.
 */
export async function readSlots(
  session: ZkSession,
  parent: string,
  limit: number,
  parentNode: NodeData,
  signal?: AbortSignal,
): Promise<Slot[]> {
  if (limit === 1) return [slotFrom(0, parent, parentNode)];
  return await Promise.all(
    Array.from({ length: limit }, async (_, slot) => {
      const path = recordPath(parent, limit, slot);
      const node = await session.getData(path, signal).catch((error) => {
        if (codeOf(error) === ZkCode.NO_NODE) return undefined;
        throw error;
      });
      return slotFrom(slot, path, node);
    }),
  );
}

/** Every `slot-<k>` node under a parent, whatever the limit. */
export async function readSlotNodes(
  session: ZkSession,
  parent: string,
  children: readonly string[],
  signal?: AbortSignal,
): Promise<Slot[]> {
  const slots = await Promise.all(children.map(async (child) => {
    const slot = slotOf(child);
    if (slot === undefined) return undefined;
    const path = `${parent}/${child}`;
    const node = await session.getData(path, signal).catch((error) => {
      if (codeOf(error) === ZkCode.NO_NODE) return undefined;
      throw error;
    });
    return node && slotFrom(slot, path, node);
  }));
  return slots.filter((slot) => slot !== undefined).sort((a, b) =>
    a.slot - b.slot
  );
}

/**
 * How a slot stands for the entry `mine`: `free` (no record, or its own),
 * `held` (by another entry still queued) or `timed` (its holder's entry is
 * gone: it holds until its end, by the server's clock).
 */
export function standing(
  slot: Slot,
  entries: ReadonlySet<string>,
  mine: string,
): "free" | "held" | "timed" {
  const record = slot.record;
  if (!record || record.entry === mine) return "free";
  if (record.entry !== undefined && entries.has(record.entry)) return "held";
  return "timed";
}

/** The server's time now, by a write of `data` to the caller's own `path`. */
export async function serverNow(
  session: ZkSession,
  path: string,
  data: Uint8Array,
  signal?: AbortSignal,
): Promise<number> {
  return msOf((await session.setData(path, data, -1, signal)).mtime);
}

/**
 * Writes `record` into a slot judged free, compare-and-set on what was
 * read. Resolves the node's stat after the write, or `undefined` when
 * another writer changed it first.
 */
export async function takeSlot(
  session: ZkSession,
  slot: Slot,
  record: SlotRecord,
  signal?: AbortSignal,
): Promise<ZkStat | undefined> {
  try {
    if (slot.stat) {
      return await session.setData(
        slot.path,
        encodeRecord(record),
        slot.stat.version,
        signal,
      );
    }
    await session.create(
      slot.path,
      encodeRecord(record),
      session.zk.CreateMode.PERSISTENT,
      signal,
    );
    return (await session.exists(slot.path, signal)) ?? undefined;
  } catch (error) {
    if (raced(error)) return undefined;
    throw error;
  }
}

/**
 * Deletes a lock's parent and slot nodes, in one transaction, once nothing
 * uses them: no entry, and every record empty or, given the server's time
 * `now`, run out. A contender that comes in between makes the transaction
 * fail, and everything stays.
 */
export async function tidy(
  session: ZkSession,
  parent: string,
  now?: number,
  signal?: AbortSignal,
): Promise<void> {
  try {
    const [{ children }, node] = await Promise.all([
      session.getChildren(parent, signal),
      session.getData(parent, signal),
    ]);
    if (entriesOf(children).length > 0) return;
    const slots = await readSlotNodes(session, parent, children, signal);
    // A mutex keeps its record in the parent; a semaphore's parent only
    // stores the limit.
    if (storedLimit(node.data) === 1) slots.push(slotFrom(0, parent, node));
    const done = (slot: Slot) =>
      !slot.record ||
      (now !== undefined && recordEnd(slot.record, slot.stat!) <= now);
    if (!slots.every(done)) return;
    // The parent goes last, once its children have.
    const ops: TxnOp[] = [
      ...slots.filter((slot) => slot.path !== parent).map((slot) => ({
        remove: slot.path,
        version: slot.stat!.version,
      })),
      { remove: parent, version: node.stat.version },
    ];
    await session.transaction(ops, signal);
  } catch (error) {
    if (!raced(error)) throw error;
  }
}
