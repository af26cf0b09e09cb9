/**
 * The semaphore (limit N > 1), Consul's documented recipe (api/semaphore.go)
 * under `coolock/<name>/`: each holder's session locks its own contender key
 * `coolock/<name>/<session>` and is listed in the record `.lock` (`Limit`,
 * `Holders`), which changes only by compare-and-set, and only while fewer
 * than `Limit` holders are alive. coolock takes both steps in one `/v1/txn`
 * (a loser writes nothing), and adds `Slots`: each holder's slot, the lowest
 * one free. The fencing token is that transaction's Raft index, the record's
 * new `ModifyIndex`, so tokens strictly increase across every slot.
 *
 * One change to Consul's pruneDeadHolders: a holder whose contender key is
 * gone counts as dead only once its key can be locked again. The CAS
 * transaction that drops dead holders also locks and deletes each one's key,
 * so a key under lock-delay (a guard, or a session that was invalidated)
 * fails the transaction (agent/consul/txn_endpoint.go preCheck; every op's
 * error is reported) and that holder keeps its slot. Guard time and
 * lock-delay therefore hold per slot, exactly as for the mutex.
 *
 * @module
 */

import { LimitMismatchError, type LockRequest } from "../../src/backend.ts";
import type { Holding, Won } from "./claim.ts";
import {
  type ConsulApi,
  type KvPair,
  type KvRead,
  throwIfDenied,
  type TxnOp,
} from "./client.ts";
import {
  consulKey,
  contenderKey,
  decodeRecord,
  encodeHolder,
  familyOf,
  recordKey,
  semaphorePrefix,
  type SemaphoreRecord,
} from "./keys.ts";
import { createSession, holdFor, type SessionLimits } from "./sessions.ts";

const ROUNDS = 8;

/** A semaphore as one read shows it. */
export interface SemaphoreView {
  readonly record: SemaphoreRecord | undefined;
  /** The record's ModifyIndex, 0 when there is none. */
  readonly recordIndex: number;
  /** Holders whose contender key a session holds. */
  readonly alive: readonly string[];
  /** Holders whose key is gone or free: dead, or guarded by lock-delay. */
  readonly suspects: readonly string[];
  /** The contender keys, by session. */
  readonly entries: ReadonlyMap<string, KvPair>;
}

/** What one read of `coolock/<name>` says of its semaphore. */
export function viewOf(name: string, family: readonly KvPair[]): SemaphoreView {
  const prefix = semaphorePrefix(name);
  const recordEntry = family.find((e) => e.Key === recordKey(name));
  const record = decodeRecord(recordEntry?.Value);
  const entries = new Map(
    family.filter((e) => e.Key.startsWith(prefix) && e !== recordEntry)
      .map((e) => [e.Key.slice(prefix.length), e]),
  );
  const holders = Object.keys(record?.Holders ?? {});
  return {
    record,
    recordIndex: recordEntry?.ModifyIndex ?? 0,
    alive: holders.filter((h) => entries.get(h)?.Session),
    suspects: holders.filter((h) => !entries.get(h)?.Session),
    entries,
  };
}

function lowestFreeSlot(
  record: SemaphoreRecord | undefined,
  kept: readonly string[],
  limit: number,
): number {
  const used = new Set(kept.map((h) => record?.Slots[h]));
  let slot = 0;
  while (used.has(slot) && slot < limit) slot++;
  return slot;
}

/** One attempt at a slot; `undefined` when all `limit` slots are held. */
export async function trySemaphore(
  api: ConsulApi,
  limits: SessionLimits,
  request: LockRequest,
  read: KvRead,
): Promise<Won | undefined> {
  const { name, limit, owner, node, signal } = request;
  const refuseMismatch = (view: SemaphoreView, kept: number) => {
    if (view.record && view.record.Limit !== limit && kept > 0) {
      throw new LimitMismatchError(name, limit, view.record.Limit);
    }
  };
  const look = (read: KvRead) => {
    const family = familyOf(name, read);
    if (family.find((e) => e.Key === consulKey(name))?.Session) {
      throw new LimitMismatchError(name, limit, 1);
    }
    const view = viewOf(name, family);
    refuseMismatch(view, view.alive.length);
    return view;
  };
  let view = look(read);
  if (view.alive.length >= limit) return undefined;
  const session = await createSession(
    api,
    limits,
    `coolock ${owner}`,
    request.expiresInMs,
    signal,
  );
  const key = contenderKey(name, session.id);
  const holder = { owner, node, since: new Date().toISOString(), limit };
  let won: Won | undefined;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      if (round > 0) view = look(await api.list(consulKey(name), signal));
      let suspects = [...view.suspects];
      const kept = [...view.alive];
      while (true) {
        refuseMismatch(view, kept.length);
        if (kept.length >= limit) return undefined;
        const slot = lowestFreeSlot(view.record, kept, limit);
        const next: SemaphoreRecord = {
          Limit: limit,
          Holders: Object.fromEntries(
            [...kept, session.id].map((h) => [h, true]),
          ),
          Slots: Object.fromEntries([
            ...kept.flatMap((h) =>
              view.record?.Slots[h] === undefined
                ? []
                : [[h, view.record.Slots[h]]]
            ),
            [session.id, slot],
          ]),
        };
        // One transaction, so one Raft index: the dead holders' keys are
        // locked (no lock-delay left) and deleted, this session's contender
        // key is locked, and the record is swapped. That index is the token,
        // and the contender key's ModifyIndex shows it.
        const ops: TxnOp[] = suspects.flatMap((h) => [
          { Verb: "lock", Key: contenderKey(name, h), Session: session.id },
          { Verb: "delete", Key: contenderKey(name, h) },
        ]);
        ops.push(
          {
            Verb: "lock",
            Key: key,
            Session: session.id,
            Value: encodeHolder({ ...holder, slot }),
          },
          {
            Verb: "cas",
            Key: recordKey(name),
            Index: view.recordIndex,
            Value: JSON.stringify(next),
          },
        );
        const outcome = await api.txn(ops, signal);
        if (outcome.ok) {
          const index = outcome.results[outcome.results.length - 1].ModifyIndex;
          won = {
            token: BigInt(index),
            slot,
            index: String(index),
            holding: semaphoreHolding(api, limits, name, session.id, {
              ...holder,
              slot,
              token: String(index),
            }),
          };
          return won;
        }
        throwIfDenied(outcome.errors);
        const failed = new Set(outcome.errors.map((e) => e.OpIndex));
        const stuck = suspects.filter((_, i) => failed.has(2 * i));
        // Nothing stuck: the record changed under us; read it again.
        if (stuck.length === 0) break;
        kept.push(...stuck);
        suspects = suspects.filter((h) => !stuck.includes(h));
      }
    }
    return undefined;
  } finally {
    // A failed transaction wrote nothing; the session holds no key.
    if (!won) await api.destroySession(session.id).catch(() => {});
  }
}

function semaphoreHolding(
  api: ConsulApi,
  limits: SessionLimits,
  name: string,
  session: string,
  holder: Parameters<typeof encodeHolder>[0],
): Holding {
  const key = contenderKey(name, session);
  const value = encodeHolder(holder);
  return {
    async check(signal, index, waitMs) {
      const read = await api.list(
        semaphorePrefix(name),
        signal,
        index === undefined ? undefined : { index, ms: waitMs ?? 0 },
      );
      const view = viewOf(name, read.entries);
      const mine = view.entries.get(session);
      const listed = view.record?.Holders[session] === true;
      return {
        held: mine?.Session === session && listed,
        why: mine?.Session !== session
          ? mine
            ? "another session holds its contender key"
            : "its contender key was deleted"
          : "the semaphore record no longer lists it",
        index: read.index,
      };
    },
    renew: (signal) => api.renewSession(session, signal),
    async release(holdMs) {
      if (holdMs > 0) {
        // The record keeps this holder; its key's lock-delay keeps the slot.
        await holdFor(api, limits, key, session, value, holdMs);
      } else {
        await leaveRecord(api, name, session);
        await api.del(key).catch(() => {});
      }
      await api.destroySession(session);
    },
  };
}

/** Drops `session` from the record by CAS, deleting the record when empty. */
async function leaveRecord(
  api: ConsulApi,
  name: string,
  session: string,
): Promise<void> {
  for (let round = 0; round < ROUNDS; round++) {
    const read = await api.get(recordKey(name));
    const entry = read.entries[0];
    const record = decodeRecord(entry?.Value);
    if (!entry || !record?.Holders[session]) return;
    const { [session]: _, ...holders } = record.Holders;
    const { [session]: __, ...slots } = record.Slots;
    const op: TxnOp = Object.keys(holders).length === 0
      ? { Verb: "delete-cas", Key: recordKey(name), Index: entry.ModifyIndex }
      : {
        Verb: "cas",
        Key: recordKey(name),
        Index: entry.ModifyIndex,
        Value: JSON.stringify({ ...record, Holders: holders, Slots: slots }),
      };
    if ((await api.txn([op])).ok) return;
  }
}
