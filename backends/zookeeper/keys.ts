/**
 * The zookeeper backend's node layout and the values it stores. Everything
 * lives under `<chroot>/coolock` (the root, created open to everyone):
 *
 * - `<root>/<name>`: the lock's **parent**, persistent; the name is encoded
 *   as one path segment (`encodeLockName`). Its data: for a mutex (limit 1)
 *   the **record** of slot 0, the layout of coolock 0.1 (whose guard record
 *   `{owner, guardMs}` it extends); for a semaphore `{"limit": N}`.
 * - `<parent>/lock-<sequence>`: one **entry** per contender, ephemeral and
 *   sequential, `{owner, node}`, plus `slot` once it holds (limit above 1).
 * - `<parent>/slot-<k>`: limit above 1, the **record** of slot k,
 *   persistent.
 *
 * A record says who took the slot and keeps everybody else out until its
 * node's mtime + max(guardMs, leaseMs), by the server's clock: it outlives
 * the holder's session, so a dropped session frees nothing early. `entry`
 * names the holder's entry while it holds; a record whose entry is gone
 * (released, or a dead session) holds only by its times. An empty record is
 * a free slot.
 *
 * @module
 */

import { encodeLockName } from "../../src/names.ts";
import { msOf, type ZkStat } from "./client.ts";

/** An entry: `lock-` and the 10-digit sequence number ZooKeeper appends. */
export const ENTRY = /^lock-\d{10}$/;
const SLOT = /^slot-(\d+)$/;

/** The lock's parent node. */
export function parentOf(root: string, name: string): string {
  return `${root}/${encodeLockName(name)}`;
}

/**
 * The lock name that a child of the root stands for, or `undefined` for a
 * node that is no lock (a `check` probe starts with `.`, which no encoded
 * name does).
 */
export function nameOf(child: string): string | undefined {
  if (child.startsWith(".")) return undefined;
  try {
    const name = decodeURIComponent(child);
    return encodeLockName(name) === child ? name : undefined;
  } catch {
    return undefined;
  }
}

/** The node that holds slot `slot`'s record: the parent for a mutex. */
export function recordPath(
  parent: string,
  limit: number,
  slot: number,
): string {
  return limit === 1 ? parent : `${parent}/slot-${slot}`;
}

/** The slot of a `slot-<k>` child, or `undefined`. */
export function slotOf(child: string): number | undefined {
  const match = SLOT.exec(child);
  return match ? Number(match[1]) : undefined;
}

/** The entries among a parent's children, oldest (lowest sequence) first. */
export function entriesOf(children: readonly string[]): string[] {
  return children.filter((child) => ENTRY.test(child)).sort();
}

/** An entry's value. */
export interface Entry {
  readonly owner?: string;
  readonly node?: string;
  /** The slot it holds (limit above 1), once it holds. */
  readonly slot?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A small JSON value as bytes. */
export function encodeValue(value: object): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function parse(data: Uint8Array): Record<string, unknown> | undefined {
  if (data.length === 0) return undefined;
  try {
    const value = JSON.parse(decoder.decode(data));
    return value !== null && typeof value === "object" ? value : undefined;
  } catch {
    return undefined;
  }
}

const text = (value: unknown) => typeof value === "string" ? value : undefined;
const count = (value: unknown) =>
  typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 0;

/** Reads an entry's value; coolock 0.1 stored the bare owner. */
export function decodeEntry(data: Uint8Array): Entry {
  const value = parse(data);
  if (!value) return data.length > 0 ? { owner: decoder.decode(data) } : {};
  return {
    owner: text(value.owner),
    node: text(value.node),
    slot: Number.isInteger(value.slot) ? value.slot as number : undefined,
  };
}

/** A slot's record: who took it, and how long it keeps others out. */
export interface SlotRecord {
  readonly owner?: string;
  readonly node?: string;
  /** The holder's entry (`lock-…`) while it holds. */
  readonly entry?: string;
  /** Guard time from the record's mtime, in ms. */
  readonly guardMs: number;
  /** Lease time from the record's mtime, in ms: the TTL of the last renewal. */
  readonly leaseMs: number;
  /** When the holder took the slot, in server ms (after its first renewal). */
  readonly since?: number;
}

/** Reads a record; `undefined` for an empty one (a free slot). */
export function decodeRecord(data: Uint8Array): SlotRecord | undefined {
  const value = parse(data);
  if (!value) return undefined;
  return {
    owner: text(value.owner),
    node: text(value.node),
    entry: text(value.entry),
    guardMs: count(value.guardMs),
    leaseMs: count(value.leaseMs),
    since: count(value.since) || undefined,
  };
}

/** Writes a record. */
export function encodeRecord(record: SlotRecord): Uint8Array {
  return encodeValue(record);
}

/** When a record stops keeping others out, in server ms. */
export function recordEnd(record: SlotRecord, stat: ZkStat): number {
  return msOf(stat.mtime) + Math.max(record.guardMs, record.leaseMs);
}

/** The limit a parent's data stores: `{"limit": N}`, else 1 (a mutex). */
export function storedLimit(data: Uint8Array): number {
  const limit = parse(data)?.limit;
  return Number.isInteger(limit) && (limit as number) > 1 ? limit as number : 1;
}

/** The parent's data for a fresh lock of `limit`. */
export function parentValue(limit: number): Uint8Array {
  return limit === 1 ? new Uint8Array() : encodeValue({ limit });
}
