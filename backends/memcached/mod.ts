/**
 * The memcached backend: `add` with an expiry takes a slot item (the first
 * of N that is free); renew and release are compare-and-swap on the item's
 * CAS, so a stale holder never frees a newer one's lock. A counter that
 * never expires gives the fencing token; the first holder `add`s the limit
 * N, and every later one compares it. memcached has no notifications:
 * waiters poll the items.
 *
 * memcached loses every item when it restarts (and may evict them), so:
 *
 * - a missing counter starts from the server's clock (`stats` `time`) in
 *   microseconds, above every token handed out before;
 * - a server process grants no lock until it has been up for the request's
 *   lease time, unless its own marker (`coolock:epoch`, its pid and start
 *   time) says an earlier grant already waited: a holder of the lost items
 *   has then passed its own lost-lock deadline;
 * - a holder whose socket drops checks its item at once (claim.ts).
 *
 * @module
 */

import {
  type Backend,
  type CheckResult,
  type Claim,
  LimitMismatchError,
  type LockRequest,
  type LockStatus,
  type Removal,
} from "../../src/backend.ts";
import { Holdings } from "../../src/holdings.ts";
import { abortableDelay } from "../../src/timing.ts";
import { MemcachedClaim } from "./claim.ts";
import { EPOCH_KEY, holderValue, keysOf } from "./keys.ts";
import { checkMemcached, forceReleaseOf, statusOf } from "./operate.ts";
import {
  counterOf,
  expirySeconds,
  incrementExtras,
  Op,
  type Reply,
  Status,
  storageExtras,
  text,
} from "./protocol.ts";
import { MemcachedStore, serverMsOf, stateOf } from "./store.ts";
import { parseMemcachedUri } from "./uri.ts";

export type {
  Backend,
  BackendCapabilities,
  CheckResult,
  Claim,
  HolderStatus,
  LockRequest,
  LockStatus,
  Removal,
} from "../../src/backend.ts";

const WATCH_POLL_MS = 50;

class MemcachedBackend implements Backend {
  readonly scheme = "memcached";
  readonly capabilities = {
    notifiesWaiters: false,
    fairQueue: false,
    minTtlMs: 1_000,
    clock: "server",
    maxTtlMs: 366 * 86_400_000,
    listsLocks: false,
    storesLimit: true,
  } as const;
  readonly displayUri: string;
  readonly permissions: readonly Deno.PermissionDescriptor[];
  readonly holdings = new Holdings();
  readonly store: MemcachedStore;
  readonly #claims = new Set<MemcachedClaim>();
  /** The server's clock minus this host's, ms, as last measured. */
  #offsetMs = 0;
  /** Until when (performance.now()) a server is too fresh to grant. */
  #unsettledUntil = 0;

  constructor(uri: string) {
    const target = parseMemcachedUri(uri);
    this.displayUri = target.display;
    this.permissions = target.hosts.map(({ host, port }) => ({
      name: "net" as const,
      host: `${host.includes(":") ? `[${host}]` : host}:${port}`,
    }));
    this.store = new MemcachedStore(target, {
      dropped: () => {
        for (const claim of this.#claims) void claim.recheck();
      },
    });
  }

  serverNowMs(): number {
    return Date.now() + this.#offsetMs;
  }

  forget(claim: MemcachedClaim): void {
    this.#claims.delete(claim);
  }

  connect(): Promise<void> {
    return this.store.connect();
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { store } = this;
    const { name, owner, node, limit, signal } = request;
    const keys = await keysOf(name);
    const { route } = keys;
    signal.throwIfAborted();
    const expiry = storageExtras(expirySeconds(request.expiresInMs));
    const first = { owner, node, limit, guardMs: Math.ceil(request.guardMs) };
    // Not cut short by the signal: an add that lands after the caller gave
    // up must be given back here, or it would hold the lock until it
    // expires. One round trip: the limit (added if missing, then read),
    // slot 0, the server's state and its marker, in this order on one
    // socket.
    const [addedLimit, storedLimit, added0, stats, epoch] = await Promise.all([
      store.send(route, Op.add, keys.limit, {
        extras: expiry,
        value: String(limit),
      }),
      store.send(route, Op.get, keys.limit),
      store.send(route, Op.add, keys.slot(0), {
        extras: expiry,
        value: holderValue(first),
      }),
      store.stats(route),
      store.send(route, Op.get, EPOCH_KEY),
    ]);
    store.expect(addedLimit, Status.ok, Status.exists, Status.notStored);
    store.expect(storedLimit, Status.ok, Status.notFound);
    let slot = -1;
    let added: Reply | undefined;
    if (added0.status === Status.ok) [slot, added] = [0, added0];
    else store.expect(added0, Status.exists, Status.notStored);
    const giveBack = () =>
      slot < 0
        ? Promise.resolve()
        : store.send(route, Op.delete, keys.slot(slot), {
          cas: added!.cas,
        }).then(() => {}, () => {});
    const stored = storedLimit.status === Status.ok
      ? Number(text(storedLimit.value))
      : limit;
    if (stored !== limit) {
      await giveBack();
      throw new LimitMismatchError(name, limit, stored);
    }
    try {
      for (let k = 1; slot < 0 && k < limit; k++) {
        const reply = await store.send(route, Op.add, keys.slot(k), {
          extras: expiry,
          value: holderValue(first),
        });
        if (reply.status === Status.ok) [slot, added] = [k, reply];
        else store.expect(reply, Status.exists, Status.notStored);
      }
      if (slot < 0) return undefined;
      const state = stateOf(stats);
      const serverMs = serverMsOf(state);
      this.#offsetMs = serverMs - Date.now();
      if (!(epoch.status === Status.ok && text(epoch.value) === state.bootId)) {
        const settledMs = state.settledS * 1000;
        if (settledMs < request.expiresInMs) {
          this.#unsettledUntil = performance.now() + request.expiresInMs -
            settledMs;
          await giveBack();
          return undefined;
        }
        const marked = await store.send(route, Op.set, EPOCH_KEY, {
          extras: storageExtras(0),
          value: state.bootId,
        });
        store.expect(marked, Status.ok);
      }
      signal.throwIfAborted();
      const counted = await store.send(route, Op.increment, keys.fence, {
        extras: incrementExtras(BigInt(state.timeS) * 1_000_000n),
      }, signal);
      store.expect(counted, Status.ok);
      const holder = {
        ...first,
        since: serverMs,
        token: counterOf(counted),
        until: serverMs + request.expiresInMs,
      };
      const value = holderValue(holder);
      // Our item still there (its CAS unchanged since the add) means no
      // restart, eviction or removal came between: nobody else counted a
      // token for this slot while we held it, and the server state above is
      // this process's.
      const put = await store.send(route, Op.set, keys.slot(slot), {
        extras: expiry,
        value,
        cas: added!.cas,
      }, signal);
      if (put.status !== Status.ok) {
        store.expect(put, Status.exists, Status.notFound);
        return undefined;
      }
      const claim = new MemcachedClaim(
        holder.token,
        slot,
        holder,
        value,
        request,
        keys,
        this,
      );
      this.#claims.add(claim);
      return this.holdings.track(claim, request);
    } catch (error) {
      await giveBack();
      throw error;
    }
  }

  /**
   * memcached has no notifications, so this polls the slot items with cheap
   * GETs: an expiry lands on memcached's one-second tick, and the
   * lifecycle's own polling (up to half a second apart) would add to that.
   * A server too fresh to grant has free slots that are not free yet.
   */
  async waitForChange(request: LockRequest, signal: AbortSignal) {
    const keys = await keysOf(request.name);
    const slots = Array.from({ length: request.limit }, (_, k) => keys.slot(k));
    while (true) {
      if (performance.now() >= this.#unsettledUntil) {
        const replies = await Promise.all(
          slots.map((key) =>
            this.store.send(keys.route, Op.get, key, {}, signal)
          ),
        );
        if (replies.some((reply) => reply.status === Status.notFound)) return;
      }
      await abortableDelay(WATCH_POLL_MS, signal);
    }
  }

  async status(
    name: string | undefined,
    signal: AbortSignal,
  ): Promise<LockStatus[]> {
    if (name === undefined) {
      throw new TypeError("memcached can't list its keys: name a lock");
    }
    return [await statusOf(this.store, name, signal)];
  }

  forceRelease(name: string, signal: AbortSignal): Promise<Removal[]> {
    return forceReleaseOf(this.store, name, signal);
  }

  check(signal: AbortSignal): Promise<CheckResult[]> {
    return checkMemcached(this.store, signal);
  }

  async close(): Promise<void> {
    if (this.store.closed) return;
    await this.holdings.releaseAll();
    this.#claims.clear();
    await this.store.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The memcached backend: `memcached://[user:password@]host[:port][,host...]`
 * (binary protocol; credentials are for SASL). `?timeout=` bounds each call,
 * in seconds (default 3). With several hosts a lock name always maps to the
 * same one, so every node must list the hosts in the same order.
 *
 * memcached drops every lock when it restarts or evicts; a restarted server
 * grants no lock until it has been up for the lease time. `--limit N` takes
 * one of N slot items.
 *
 * @param uri the backend URI
 *
 * @example
 * ```ts ignore
 * import { withLock } from "../../mod.ts";
 * import { memcached } from "./mod.ts";
 * await withLock(
 *   { backend: memcached("memcached://127.0.0.1:11211"), lock: "nightly", guardTime: 0 },
 *   () => console.log("only one node runs this"),
 * );
 * ```
 */
export function memcached(uri: string | URL): Backend {
  return new MemcachedBackend(String(uri));
}
