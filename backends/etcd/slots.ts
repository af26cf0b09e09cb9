/**
 * The semaphore's rules on top of the queue: the limit stored with a lock,
 * and the slots of its holders.
 *
 * - **Limit**: the oldest entry's stored limit is the lock's. Each new entry
 *   reads the oldest in the same transaction that creates it, and an entry
 *   with another limit is refused (`LimitMismatchError`).
 * - **Slots** (limit above 1): a new holder claims the lowest slot `k` that
 *   no current holder has, by creating `slot/k` only if it is absent (or
 *   taking over one whose entry is gone), in the same transaction that
 *   writes `slot` into its own entry, compare-and-set on the entry's exact
 *   value. A slot key lives on its holder's lease, so two holders never
 *   share a slot, and a slot frees when its holder's lease goes; the next
 *   holder takes the lowest free one. A mutex (limit 1) has no slot key:
 *   its one holder is slot 0, as in the releases before the semaphore.
 *
 * @module
 */

import { LimitMismatchError, type LockRequest } from "../../src/backend.ts";
import {
  decodeEntry,
  encodeEntry,
  holdersRange,
  slotKey,
  slotOf,
  slotsRange,
  stillOwned,
} from "./keys.ts";
import type { Compare, EtcdOps, KeyValue, TxnOp } from "./ops.ts";

/** The value of an entry that holds `slot`, from now. */
export function holderValue(request: LockRequest, slot: number): string {
  const { owner, node, limit } = request;
  return encodeEntry({ owner, node, limit, slot, since: Date.now() });
}

/** Refuses a request whose limit is not the one stored with the oldest entry. */
export function checkLimit(
  request: LockRequest,
  oldest: KeyValue | undefined,
): void {
  if (!oldest) return;
  const stored = decodeEntry(oldest.value).limit;
  if (stored !== request.limit) {
    throw new LimitMismatchError(request.name, request.limit, stored);
  }
}

/** An entry that is among the oldest `limit`, about to hold. */
export interface Holding {
  readonly key: string;
  readonly lease: string;
  readonly createRevision: bigint;
  /** Its value as stored. */
  readonly value: string;
}

/** What a new holder got: its slot, and its entry's new value and revision. */
export interface Held {
  readonly slot: number;
  /** The slot key, for a limit above 1. */
  readonly slotKey?: string;
  readonly value: string;
  readonly revision: bigint;
}

/**
 * Makes an entry that is among the oldest `limit` a holder: claims a free
 * slot (limit above 1) and writes the slot and the time into its value.
 * Retries while other new holders claim slots at the same moment; resolves
 * `undefined` when the entry went meanwhile (a forced release, its lease).
 *
 * @param holders the oldest `limit` entries, as last read
 * @param taken the slot keys, as last read
 */
export async function holdSlot(
  ops: EtcdOps,
  prefix: string,
  entry: Holding,
  request: LockRequest,
  holders: readonly KeyValue[],
  taken: readonly KeyValue[],
): Promise<Held | undefined> {
  const { limit, signal } = request;
  for (let tries = 0; tries <= limit + 2; tries++) {
    const claim: SlotClaim | undefined = limit > 1
      ? freeSlot(prefix, limit, holders, taken)
      : { slot: 0, compare: [] };
    if (claim === undefined) break;
    const value = holderValue(request, claim.slot);
    const slotOps: TxnOp[] = claim.key === undefined
      ? []
      : [{ put: { key: claim.key, value: entry.key, lease: entry.lease } }];
    const result = await ops.txn(
      [
        ...stillOwned(entry.key, entry.value, entry.createRevision),
        ...claim.compare,
      ],
      [...slotOps, { put: { key: entry.key, value, lease: entry.lease } }],
      [
        { range: { key: entry.key } },
        { range: holdersRange(prefix, limit) },
        ...(limit > 1 ? [{ range: slotsRange(prefix) }] : []),
      ],
      signal,
    );
    if (result.succeeded) {
      return {
        slot: claim.slot,
        slotKey: claim.key,
        value,
        revision: result.revision,
      };
    }
    const [[mine], fresh, freshSlots = []] = result.ranges;
    if (
      mine?.value !== entry.value ||
      mine.createRevision !== entry.createRevision
    ) return undefined;
    [holders, taken] = [fresh, freshSlots];
  }
  throw new Error(`no free slot of ${limit} after ${limit + 3} tries`);
}

/** A slot to claim: its key (none for a mutex) and the conditions. */
interface SlotClaim {
  readonly slot: number;
  readonly key?: string;
  readonly compare: readonly Compare[];
}

/**
 * The lowest slot that no current holder has, and how to claim it: create
 * its key if absent, or take it over from an entry that is gone.
 */
function freeSlot(
  prefix: string,
  limit: number,
  holders: readonly KeyValue[],
  taken: readonly KeyValue[],
): SlotClaim | undefined {
  const current = new Set(holders.map((kv) => kv.key));
  const bySlot = new Map<number, KeyValue>();
  for (const kv of taken) {
    const slot = slotOf(prefix, kv.key);
    if (slot !== undefined && slot < limit) bySlot.set(slot, kv);
  }
  for (let slot = 0; slot < limit; slot++) {
    const key = slotKey(prefix, slot);
    const held = bySlot.get(slot);
    if (!held) {
      return { slot, key, compare: [{ key, target: "create", equals: 0n }] };
    }
    // A holder stays among the oldest until its entry goes, so a slot key
    // whose entry is not among them is left over (its entry was deleted
    // alone): take it over only while that entry is still absent.
    if (!current.has(held.value)) {
      return {
        slot,
        key,
        compare: [
          { key, target: "mod", equals: held.modRevision },
          { key: held.value, target: "create", equals: 0n },
        ],
      };
    }
  }
  return undefined;
}
