/**
 * The operator's questions on Consul: who holds a lock (`status`), free it
 * (`forceRelease`), and is the agent fit (`check`).
 *
 * - **status** reads `coolock/<name>` (or all of `coolock/`) recursively.
 *   A holder's node, owner and `since` come from the value it stored, so
 *   `since` is by the holder's clock, and so is the end of a guard; the
 *   token is the key's `ModifyIndex` (mutex) or the one the holder wrote
 *   into its contender key (semaphore). Consul does not expose how long a
 *   session has left (its timer lives on the leader) nor a lock-delay, so a
 *   crashed holder's lock in its lock-delay shows as free.
 * - **forceRelease** deletes each held key first and then destroys its
 *   session, so no lock-delay starts, and deletes the semaphore record.
 *   Tokens keep growing, as `ModifyIndex` only grows; a live holder sees its
 *   key gone at once (its monitor) or at its next renewal, and stops.
 * - **check**: the round trip and the leader (`/v1/status/leader`), the
 *   token and the agent's version and datacenter (`/v1/agent/self`), the
 *   right to create a session and to write under `coolock/` (a probe
 *   session and key, removed again), and the clock skew, from the second
 *   at which the agent's `Date` header ticks.
 *
 * @module
 */

import type {
  CheckResult,
  HolderStatus,
  LockStatus,
  Removal,
} from "../../src/backend.ts";
import { type ConsulApi, ConsulCallError, type KvPair } from "./client.ts";
import { consulKey, decodeHolder, familyOf, nameOf, ROOT } from "./keys.ts";
import { viewOf } from "./semaphore.ts";
import { createSession, type SessionLimits } from "./sessions.ts";

function dateOf(text: string | undefined): Date | undefined {
  const date = text ? new Date(text) : undefined;
  return date && !Number.isNaN(date.getTime()) ? date : undefined;
}

/**
 * A key's holder: held by its own session (`own`, or for the mutex key any
 * session while the value has no guard end), or guarded (handed to a guard
 * session, or written back with a guard end still ahead).
 */
function holderStatus(
  entry: KvPair,
  slot: number,
  own: string | undefined,
  now: number,
): HolderStatus | undefined {
  const value = decodeHolder(entry.Value);
  const guardUntil = dateOf(value.guardUntil)?.getTime();
  const held = entry.Session !== undefined &&
    (own === undefined ? guardUntil === undefined : entry.Session === own);
  const guarded = !held && guardUntil !== undefined &&
    (entry.Session !== undefined || guardUntil > now);
  if (!held && !guarded) return undefined;
  // A held key was last written when it was taken: its index is the token.
  const token = value.token ?? (held ? String(entry.ModifyIndex) : undefined);
  return {
    slot: value.slot ?? slot,
    state: held ? "held" : "guard",
    node: value.node || undefined,
    owner: value.owner || undefined,
    since: dateOf(value.since),
    token: token === undefined ? undefined : BigInt(token),
    guardLeftMs: guarded ? Math.max(0, guardUntil! - now) : undefined,
  };
}

/** The status of one lock from the entries of its base key. */
function statusOf(name: string, family: readonly KvPair[]): LockStatus {
  const now = Date.now();
  const mutex = family.find((e) => e.Key === consulKey(name));
  const view = viewOf(name, family);
  const holders: HolderStatus[] = [];
  if (mutex) {
    const status = holderStatus(mutex, 0, undefined, now);
    if (status) holders.push(status);
  }
  for (const session of Object.keys(view.record?.Holders ?? {})) {
    const entry = view.entries.get(session);
    const status = entry &&
      holderStatus(entry, view.record?.Slots[session] ?? 0, session, now);
    if (status) holders.push(status);
  }
  const tokens = [
    ...holders.flatMap((h) => (h.token === undefined ? [] : [h.token])),
    ...family.flatMap((e) => {
      const token = decodeHolder(e.Value).token;
      return token === undefined ? [] : [BigInt(token)];
    }),
  ];
  return {
    name,
    limit: view.record && view.alive.length > 0 ? view.record.Limit : undefined,
    holders: holders.sort((a, b) => a.slot - b.slot),
    lastToken: tokens.length
      ? tokens.reduce((a, b) => (a > b ? a : b))
      : undefined,
  };
}

/** `status`: one lock, or every lock under `coolock/`. */
export async function lockStatuses(
  api: ConsulApi,
  name: string | undefined,
  signal: AbortSignal,
): Promise<LockStatus[]> {
  if (name !== undefined) {
    const read = await api.list(consulKey(name), signal);
    return [statusOf(name, familyOf(name, read))];
  }
  const read = await api.list(ROOT, signal);
  const byBase = new Map<string, KvPair[]>();
  for (const entry of read.entries) {
    const base = entry.Key.split("/").slice(0, 2).join("/");
    byBase.set(base, [...(byBase.get(base) ?? []), entry]);
  }
  const statuses: LockStatus[] = [];
  for (const [base, family] of byBase) {
    const lock = nameOf(base);
    if (lock !== undefined) statuses.push(statusOf(lock, family));
  }
  return statuses.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** `forceRelease`: every held key of the lock, its session and its record. */
export async function releaseByForce(
  api: ConsulApi,
  name: string,
  signal: AbortSignal,
): Promise<Removal[]> {
  const read = await api.list(consulKey(name), signal);
  const removed: Removal[] = [];
  for (const entry of familyOf(name, read)) {
    const value = decodeHolder(entry.Value);
    const isRecord = entry.Key.endsWith("/.lock");
    const guard = !entry.Session &&
      (dateOf(value.guardUntil)?.getTime() ?? 0) > Date.now();
    if (!entry.Session && !isRecord && !guard) continue;
    // Deleting first: a destroyed session that still held it would start
    // its lock-delay; a deleted key starts none.
    await api.del(entry.Key, signal);
    if (entry.Session) {
      await api.destroySession(entry.Session, signal);
      removed.push({
        what: value.guardUntil ? "guard session" : "session",
        detail: `${entry.Session} on ${entry.Key}${
          value.node ? ` (node ${value.node})` : ""
        }`,
      });
    } else {
      removed.push({
        what: isRecord ? "semaphore record" : "guard record",
        detail: entry.Key,
      });
    }
  }
  return removed;
}

/** The skew of the agent's clock, from the moment its `Date` second ticks. */
async function clockSkew(
  api: ConsulApi,
  signal: AbortSignal,
): Promise<{ skewMs: number; errorMs: number } | undefined> {
  let previous: { second: number; receivedAt: number } | undefined;
  for (let probe = 0; probe < 30; probe++) {
    const sentAt = Date.now();
    const { date } = await api.leader(signal);
    const receivedAt = Date.now();
    const second = dateOf(date)?.getTime();
    if (second === undefined) return undefined;
    if (previous && second > previous.second) {
      // The tick fell between the previous answer and this request's end.
      const tick = (previous.receivedAt + receivedAt) / 2;
      return {
        skewMs: second - tick,
        errorMs: (receivedAt - previous.receivedAt) / 2,
      };
    }
    previous = { second, receivedAt };
    if (probe === 0 && receivedAt - sentAt > 500) {
      return {
        skewMs: second + 500 - (sentAt + receivedAt) / 2,
        errorMs: 1_000,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 40));
  }
  return undefined;
}

function failure(name: string, error: unknown): CheckResult {
  return {
    name,
    status: "fail",
    detail: error instanceof Error ? error.message : String(error),
  };
}

/** `check`: reachable, credentials, permissions, version, datacenter, clock. */
export async function checkAgent(
  api: ConsulApi,
  limits: SessionLimits,
  wantedDc: string | undefined,
  signal: AbortSignal,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const started = performance.now();
  const { leader } = await api.leader(signal);
  const rtt = performance.now() - started;
  results.push(
    leader
      ? {
        name: "reachable",
        status: "ok",
        detail: `round trip ${rtt.toFixed(1)} ms; leader ${leader}`,
        ms: rtt,
      }
      : {
        name: "reachable",
        status: "fail",
        detail: "the agent answers, but its cluster has no leader",
        ms: rtt,
      },
  );
  try {
    const self = await api.agentSelf(signal);
    results.push({
      name: "credentials",
      status: "ok",
      detail: "the ACL token is accepted",
    });
    results.push({
      name: "version",
      status: "ok",
      detail: `Consul ${self.version} on node ${self.node} (${
        self.server ? "server" : "client"
      } agent), datacenter ${self.datacenter}`,
    });
    if (wantedDc && wantedDc !== self.datacenter) {
      results.push({
        name: "datacenter",
        status: "fail",
        detail:
          `the URI names datacenter '${wantedDc}', but the agent is in '${self.datacenter}'`,
      });
    }
  } catch (error) {
    if (!(error instanceof ConsulCallError) || error.status !== 403) {
      throw error;
    }
    const unknown = /ACL not found/.test(error.message);
    results.push(
      unknown
        ? {
          name: "credentials",
          status: "fail",
          detail: "Consul does not know the ACL token",
        }
        : {
          name: "credentials",
          status: "ok",
          detail: "the ACL token is accepted",
        },
    );
    results.push({
      name: "version",
      status: "warn",
      detail: unknown
        ? "unknown: the token was refused"
        : "unknown: the token may not read /v1/agent/self (agent:read)",
    });
  }
  results.push(await permissions(api, limits, signal));
  const skew = await clockSkew(api, signal).catch(() => undefined);
  results.push(
    skew === undefined
      ? {
        name: "clock",
        status: "warn",
        detail: "the agent sent no usable Date header",
      }
      : {
        name: "clock",
        status: Math.abs(skew.skewMs) - skew.errorMs > 1_000 ? "warn" : "ok",
        detail: `the agent's clock is ${Math.round(skew.skewMs)} ms ${
          skew.skewMs >= 0 ? "ahead of" : "behind"
        } this host's (± ${
          Math.round(skew.errorMs)
        } ms); Consul times TTLs and lock-delay on its leader, so a skew only shifts the times that status shows`,
        ms: skew.skewMs,
      },
  );
  return results;
}

async function permissions(
  api: ConsulApi,
  limits: SessionLimits,
  signal: AbortSignal,
): Promise<CheckResult> {
  const probe = `${ROOT}.coolock-check-${crypto.randomUUID()}`;
  try {
    const session = await createSession(
      api,
      limits,
      "coolock check",
      0,
      signal,
      0,
    );
    await api.destroySession(session.id, signal);
    if (!(await api.put(probe, "check", undefined, signal))) {
      return {
        name: "permissions",
        status: "fail",
        detail: `Consul did not write ${probe}`,
      };
    }
    await api.del(probe, signal);
    return {
      name: "permissions",
      status: "ok",
      detail:
        `may create sessions and write under ${ROOT}; the servers' shortest session TTL is ${
          limits.ttlMinMs / 1000
        } s`,
    };
  } catch (error) {
    return failure("permissions", error);
  }
}
