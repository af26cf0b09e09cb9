/**
 * The mutex (limit 1), as `consul lock` takes it: a session locks the key
 * `coolock/<name>` in one `/v1/txn`, whose result carries the key's
 * `ModifyIndex`, the fencing token: a Raft index, so it only grows across
 * the datacenter, even when the key is deleted in between (its `LockIndex`
 * restarts then).
 *
 * Each attempt reads the whole base `coolock/<name>` recursively, so that a
 * semaphore of the same name in use (another node with `--limit N`) is a
 * {@linkcode LimitMismatchError}, not a second holder.
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
  decodeHolder,
  decodeRecord,
  encodeHolder,
  familyOf,
  guardKey,
  recordKey,
  semaphorePrefix,
} from "./keys.ts";
import { createSession, holdFor, type SessionLimits } from "./sessions.ts";

/**
 * Throws when a semaphore of this name is in use with another limit than
 * `limit`: its record lists a holder whose contender key a session holds.
 */
export function checkSemaphoreLimit(
  name: string,
  limit: number,
  family: readonly KvPair[],
): void {
  const entry = family.find((e) => e.Key === recordKey(name));
  const record = decodeRecord(entry?.Value);
  if (!record || record.Limit === limit) return;
  const held = new Set(family.filter((e) => e.Session).map((e) => e.Key));
  const live = Object.keys(record.Holders).some((session) =>
    held.has(`${consulKey(name)}/${session}`)
  );
  if (live) throw new LimitMismatchError(name, limit, record.Limit);
}

/** One attempt at the mutex; `undefined` when it is held (or in lock-delay). */
export async function tryMutex(
  api: ConsulApi,
  limits: SessionLimits,
  request: LockRequest,
  read: KvRead,
): Promise<Won | undefined> {
  const { name, owner, node, signal } = request;
  const key = consulKey(name);
  const family = familyOf(name, read);
  checkSemaphoreLimit(name, 1, family);
  const entry = family.find((e) => e.Key === key);
  if (entry?.Session) return undefined;
  const session = await createSession(
    api,
    limits,
    `coolock ${owner}`,
    request.expiresInMs,
    signal,
  );
  // A guarded key names its guard key, which must be lockable too (its
  // lock-delay over); it is cleared in the transaction that takes the lock.
  const probe = entry && decodeHolder(entry.Value).probe;
  const guard: TxnOp[] = probe?.startsWith(semaphorePrefix(name))
    ? [
      { Verb: "lock", Key: probe, Session: session.id },
      { Verb: "delete", Key: probe },
    ]
    : [];
  const holder = { owner, node, since: new Date().toISOString(), limit: 1 };
  const value = encodeHolder(holder);
  let won: Won | undefined;
  let refused = false;
  try {
    const outcome = await api.txn([
      ...guard,
      { Verb: "lock", Key: key, Session: session.id, Value: value },
    ], signal);
    if (!outcome.ok) {
      refused = true;
      throwIfDenied(outcome.errors);
      return undefined;
    }
    const index = outcome.results[outcome.results.length - 1].ModifyIndex;
    won = {
      token: BigInt(index),
      slot: 0,
      index: String(index),
      // Released, the key keeps who held it last, with the token.
      holding: mutexHolding(
        api,
        limits,
        name,
        session.id,
        encodeHolder({ ...holder, token: String(index) }),
      ),
    };
    return won;
  } finally {
    if (!won) {
      // A lock that may have been taken unseen is released first: the
      // destroy alone would start the session's lock-delay on the key.
      if (!refused) await api.unlock(key, session.id, value).catch(() => {});
      await api.destroySession(session.id).catch(() => {});
    }
  }
}

function mutexHolding(
  api: ConsulApi,
  limits: SessionLimits,
  name: string,
  session: string,
  value: string,
): Holding {
  const key = consulKey(name);
  return {
    async check(signal, index, waitMs) {
      const read = await api.get(
        key,
        signal,
        index === undefined ? undefined : { index, ms: waitMs ?? 0 },
      );
      const entry = read.entries[0];
      const held = entry?.Session === session;
      return {
        held,
        why: entry ? "another session holds the key" : "the key was deleted",
        index: read.index,
      };
    },
    renew: (signal) => api.renewSession(session, signal),
    async release(holdMs) {
      if (holdMs > 0) {
        // On failure the session stays, and its TTL covers the guard time.
        await holdFor(api, limits, key, session, value, holdMs, guardKey(name));
      } else {
        await api.unlock(key, session, value).catch(() => false);
      }
      await api.destroySession(session);
    },
  };
}
