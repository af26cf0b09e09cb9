/**
 * The operator's questions about Redis locks: `status` (one script reads
 * every slot, its PTTL and the server's clock at one instant), listing by
 * `SCAN`, and `forceRelease` (deletes the slots, keeps the counter so tokens
 * keep increasing). `check` is check.ts's.
 *
 * @module
 */

import type { HolderStatus, LockStatus, Removal } from "../../src/backend.ts";
import type { RedisLinks } from "./client.ts";
import { keysOf, parseHolder, SLOT_PATTERNS, slotOfKey } from "./keys.ts";
import { FORCE_RELEASE, STATUS } from "./scripts.ts";

const SCAN_COUNT = 1_000;

/** `(slot, value, pttl)` triples of a script's reply. */
function triples(
  reply: readonly unknown[],
): Array<{ slot: number; value: string; pttl: number }> {
  const out = [];
  for (let i = 0; i + 2 < reply.length; i += 3) {
    out.push({
      slot: Number(reply[i]),
      value: String(reply[i + 1]),
      pttl: Number(reply[i + 2]),
    });
  }
  return out;
}

/** Who holds lock `name`, read at one instant of the server's clock. */
export async function statusOf(
  links: RedisLinks,
  name: string,
  signal: AbortSignal,
): Promise<LockStatus> {
  const keys = keysOf(name);
  const reply = await links.run(
    (client) => client.eval(STATUS, 2, keys.limit, keys.fence, name),
    signal,
  ) as unknown[];
  const [limit, last, now] = reply;
  const nowMs = Number(now);
  const holders = triples(reply.slice(3)).map(({ slot, value, pttl }) => {
    const held = parseHolder(value);
    const left = Math.max(0, pttl);
    const guardEnds = held.since !== undefined && held.guardMs !== undefined
      ? held.since + held.guardMs
      : undefined;
    const status: HolderStatus = {
      slot,
      state: held.released === undefined ? "held" : "guard",
      node: held.node,
      owner: held.owner,
      since: held.since === undefined ? undefined : new Date(held.since),
      token: held.token,
      leaseLeftMs: held.released === undefined ? left : undefined,
      guardLeftMs: held.released !== undefined
        ? left
        : guardEnds === undefined
        ? undefined
        : Math.max(0, guardEnds - nowMs),
    };
    return status;
  });
  return {
    name,
    limit: limit === null ? undefined : Number(limit),
    holders,
    lastToken: typeof last === "string" && /^\d+$/.test(last)
      ? BigInt(last)
      : undefined,
  };
}

/** The names of every lock that has a slot key, by `SCAN`. */
export async function lockNames(
  links: RedisLinks,
  signal: AbortSignal,
): Promise<string[]> {
  const names = new Set<string>();
  for (const pattern of SLOT_PATTERNS) {
    let cursor = "0";
    do {
      const [next, keys] = await links.run(
        (client) => client.scan(cursor, "MATCH", pattern, "COUNT", SCAN_COUNT),
        signal,
      );
      cursor = next;
      for (const key of keys) {
        const found = slotOfKey(key);
        if (found) names.add(found.name);
      }
    } while (cursor !== "0");
  }
  return [...names].sort();
}

/** Deletes every slot of lock `name`; its counter stays. */
export async function forceReleaseOf(
  links: RedisLinks,
  name: string,
  signal: AbortSignal,
): Promise<Removal[]> {
  const keys = keysOf(name);
  const reply = await links.run(
    (client) => client.eval(FORCE_RELEASE, 1, keys.limit, name, keys.channel),
    signal,
  ) as unknown[];
  return triples(reply).map(({ slot, value }) => {
    const held = parseHolder(value);
    const whose = [
      held.node === undefined ? `owner ${held.owner}` : `node ${held.node}`,
      held.token === undefined ? undefined : `token ${held.token}`,
    ].filter(Boolean).join(", ");
    return {
      what: held.released === undefined ? "lease" : "guard",
      detail: `slot ${slot} (key ${keys.slot(slot)}) of ${whose}`,
    };
  });
}
