/**
 * The operator's calls on memcached: `status` reads the slot items (their
 * value says who, since when and until when: memcached can't read an item's
 * TTL), `forceRelease` deletes them by CAS and keeps the counter so tokens
 * keep increasing, and `check` (reachable, credentials, permissions,
 * version, clock in whole seconds, eviction). memcached can't list its
 * keys, so `status` needs a name.
 *
 * @module
 */

import type {
  CheckResult,
  HolderStatus,
  LockStatus,
  Removal,
} from "../../src/backend.ts";
import { keysOf, parseHolder } from "./keys.ts";
import { Op, Status, storageExtras, text } from "./protocol.ts";
import { type MemcachedStore, serverMsOf, stateOf } from "./store.ts";

/** The stored limit of a lock, or undefined. */
async function storedLimit(
  store: MemcachedStore,
  route: string,
  key: string,
  signal: AbortSignal,
): Promise<number | undefined> {
  const got = await store.send(route, Op.get, key, {}, signal);
  store.expect(got, Status.ok, Status.notFound);
  const limit = got.status === Status.ok ? Number(text(got.value)) : NaN;
  return Number.isInteger(limit) && limit > 0 ? limit : undefined;
}

/** Who holds lock `name`, by the server's clock (whole seconds). */
export async function statusOf(
  store: MemcachedStore,
  name: string,
  signal: AbortSignal,
): Promise<LockStatus> {
  const keys = await keysOf(name);
  const { route } = keys;
  const limit = await storedLimit(store, route, keys.limit, signal);
  const slots = Array.from({ length: limit ?? 1 }, (_, k) => k);
  const [state, fence, ...items] = await Promise.all([
    store.stats(route, "", signal).then(stateOf),
    store.send(route, Op.get, keys.fence, {}, signal),
    ...slots.map((k) => store.send(route, Op.get, keys.slot(k), {}, signal)),
  ]);
  const nowMs = serverMsOf(state);
  const holders: HolderStatus[] = [];
  items.forEach((item, slot) => {
    if (item.status !== Status.ok) return;
    const held = parseHolder(text(item.value));
    const left = held.until === undefined
      ? undefined
      : Math.max(0, held.until - nowMs);
    const guarded = held.released !== undefined;
    holders.push({
      slot,
      state: guarded ? "guard" : "held",
      node: held.node,
      owner: held.owner,
      since: held.since === undefined ? undefined : new Date(held.since),
      token: held.token,
      leaseLeftMs: guarded ? undefined : left,
      guardLeftMs: guarded
        ? left
        : held.since === undefined || held.guardMs === undefined
        ? undefined
        : Math.max(0, held.since + held.guardMs - nowMs),
    });
  });
  // memcached keeps a counter as its decimal text.
  const counter = fence.status === Status.ok ? text(fence.value).trim() : "";
  const last = /^\d+$/.test(counter) ? BigInt(counter) : undefined;
  return { name, limit, holders, lastToken: last };
}

/** Deletes every slot item of lock `name` and its stored limit; the counter stays. */
export async function forceReleaseOf(
  store: MemcachedStore,
  name: string,
  signal: AbortSignal,
): Promise<Removal[]> {
  const keys = await keysOf(name);
  const { route } = keys;
  const limit = await storedLimit(store, route, keys.limit, signal) ?? 1;
  const removed: Removal[] = [];
  for (let slot = 0; slot < limit; slot++) {
    const key = keys.slot(slot);
    const got = await store.send(route, Op.get, key, {}, signal);
    if (got.status === Status.notFound) continue;
    store.expect(got, Status.ok);
    const deleted = await store.send(route, Op.delete, key, {
      cas: got.cas,
    }, signal);
    store.expect(deleted, Status.ok, Status.notFound, Status.exists);
    if (deleted.status !== Status.ok) continue;
    const held = parseHolder(text(got.value));
    const whose = [
      held.node === undefined ? `owner ${held.owner}` : `node ${held.node}`,
      held.token === undefined ? undefined : `token ${held.token}`,
    ].filter(Boolean).join(", ");
    removed.push({
      what: held.released === undefined ? "lease" : "guard",
      detail: `slot ${slot} (key ${key}) of ${whose}`,
    });
  }
  await store.send(route, Op.delete, keys.limit, {}, signal);
  return removed;
}

/** Checks that every server is fit for coolock. */
export async function checkMemcached(
  store: MemcachedStore,
  signal: AbortSignal,
): Promise<CheckResult[]> {
  const { target } = store;
  const connection = await store.connection();
  const results: CheckResult[] = [];
  const add = (
    name: string,
    status: CheckResult["status"],
    detail: string,
    ms?: number,
  ) => results.push({ name, status, detail, ms });
  const servers = Array.from({ length: connection.size }, (_, i) => i);
  const rtts: number[] = [];
  const versions: string[] = [];
  for (const index of servers) {
    const started = performance.now();
    try {
      versions.push(await connection.version(index, signal));
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const why = store.unavailable((error as Error).message).message
        .replace(/^Backend '.*?' is unavailable: /s, "");
      if (/authentication/i.test(why)) {
        add("reachable", "ok", `${connection.addressOf(index)} answered`);
        add(
          "credentials",
          "fail",
          "the server refused the SASL user or password",
        );
        return results;
      }
      throw store.unavailable(why, error);
    }
    rtts.push(performance.now() - started);
  }
  const rtt = Math.max(...rtts);
  add(
    "reachable",
    "ok",
    servers.map((i) => `${connection.addressOf(i)} in ${rtts[i].toFixed(1)} ms`)
      .join(", "),
    rtt,
  );
  add(
    "credentials",
    "ok",
    target.username
      ? `authenticated as SASL user '${target.username}'`
      : "no credentials configured, and none needed",
  );
  add(
    "version",
    "ok",
    [...new Set(versions)].map((v) => `memcached ${v}`).join(", "),
  );
  // What a lock needs: ADD with expiry and DELETE, on every server.
  const probe = `coolock:check:${crypto.randomUUID()}`;
  const refused: string[] = [];
  for (const index of servers) {
    const route = routeTo(connection.indexOf.bind(connection), index);
    const added = await store.send(route, Op.add, probe, {
      extras: storageExtras(10),
      value: "probe",
    }, signal);
    const deleted = await store.send(route, Op.delete, probe, {}, signal);
    if (added.status !== Status.ok || deleted.status !== Status.ok) {
      refused.push(connection.addressOf(index));
    }
  }
  add(
    "permissions",
    refused.length === 0 ? "ok" : "fail",
    refused.length === 0
      ? "may add and delete coolock:* items"
      : `${refused.join(", ")} refused to add and delete a probe item`,
  );
  let worst = 0;
  let evicting: string[] = [];
  for (const index of servers) {
    const route = routeTo(connection.indexOf.bind(connection), index);
    const before = Date.now();
    const state = stateOf(await store.stats(route, "", signal));
    const after = Date.now();
    const skew = serverMsOf(state) - (before + after) / 2;
    if (Math.abs(skew) > Math.abs(worst)) worst = skew;
    const settings = await store.stats(route, "settings", signal);
    if (settings.evictions !== "off") {
      evicting.push(connection.addressOf(index));
    }
  }
  const size = Math.abs(worst);
  add(
    "clock",
    size > 1_500 ? "warn" : "ok",
    `the server's clock (stats time: whole seconds, ticking once a second, so ±1 s) is ${
      size.toFixed(0)
    } ms ${worst >= 0 ? "ahead of" : "behind"} this host's${
      size > 1_500 ? ": guard times and 'since' are off by as much" : ""
    }`,
    worst,
  );
  evicting = [...new Set(evicting)];
  add(
    "eviction",
    evicting.length === 0 ? "ok" : "warn",
    evicting.length === 0
      ? "memcached runs with -M: it refuses writes rather than evict items"
      : `${
        evicting.join(", ")
      } may evict a lock item when memory is full, and let a second holder in: start memcached with -M`,
  );
  return results;
}

/** A route string that hashes to server `index`. */
function routeTo(indexOf: (route: string) => number, index: number): string {
  for (let i = 0;; i++) {
    const route = `coolock:check:${i}`;
    if (indexOf(route) === index) return route;
  }
}
