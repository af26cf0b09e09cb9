/**
 * The memcached backend: `add` with an expiry takes the lock, the owner as
 * its value; renew and release are compare-and-swap on the item's CAS, so a
 * stale holder never frees a newer one's lock. A counter that never expires
 * gives the fencing token. memcached has no notifications: waiters poll the
 * item.
 *
 * @module
 */

import {
  type Backend,
  type Claim,
  LockLostError,
  type LockRequest,
} from "../../src/backend.ts";
import { abortableDelay } from "../../src/timing.ts";
import { Holdings } from "../../src/holdings.ts";
import { Op, Status } from "./protocol.ts";
import { expirySeconds, incrementExtras, storageExtras } from "./extras.ts";
import { type Keys, keysOf } from "./keys.ts";
import { MemcachedStore } from "./client.ts";
import { parseMemcachedUri } from "./uri.ts";

const WATCH_POLL_MS = 50;

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

class MemcachedClaim implements Claim {
  /** Slots other than 0 come with the semaphore (issue 16). */
  readonly slot = 0;

  constructor(
    readonly token: bigint,
    readonly request: LockRequest,
    private readonly keys: Keys,
    private readonly backend: MemcachedBackend,
  ) {}

  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    const renewed = await this.backend.store.swap(
      this.keys,
      this.request.owner,
      {
        op: Op.set,
        extras: storageExtras(expirySeconds(expiresInMs)),
      },
      signal,
    );
    if (!renewed) {
      throw new LockLostError(
        this.request.name,
        "the key expired, was deleted or is held by another owner",
      );
    }
  }

  async release(holdMs: number): Promise<void> {
    await this.backend.store.swap(
      this.keys,
      this.request.owner,
      holdMs > 0
        ? { op: Op.set, extras: storageExtras(expirySeconds(holdMs)) }
        : { op: Op.delete },
    );
  }
}

class MemcachedBackend implements Backend {
  readonly scheme = "memcached";
  readonly capabilities = {
    notifiesWaiters: false,
    fairQueue: false,
    minTtlMs: 1_000,
    clock: "server",
    maxTtlMs: 366 * 86_400_000,
    listsLocks: false,
    storesLimit: false,
  } as const;
  readonly displayUri: string;
  readonly holdings = new Holdings();
  readonly store: MemcachedStore;

  constructor(uri: string) {
    const target = parseMemcachedUri(uri);
    this.displayUri = target.display;
    this.store = new MemcachedStore(target);
  }

  connect(): Promise<void> {
    return this.store.connect();
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { owner, signal } = request;
    const keys = await keysOf(request.name);
    signal.throwIfAborted();
    // Not cut short by the signal: an add that lands after the caller gave
    // up must be given back here, or it would hold the lock until it expires.
    const added = await this.store.send(keys, Op.add, keys.lock, {
      extras: storageExtras(expirySeconds(request.expiresInMs)),
      value: owner,
    });
    if (added.status === Status.exists || added.status === Status.notStored) {
      return undefined;
    }
    this.store.expect(added, Status.ok);
    try {
      signal.throwIfAborted();
      // A counter recreated after an eviction or a restart starts from the
      // clock, above the tokens it handed out unless they came faster than
      // one a millisecond.
      const counted = await this.store.send(keys, Op.increment, keys.fence, {
        extras: incrementExtras(BigInt(Date.now())),
      }, signal);
      this.store.expect(counted, Status.ok);
      const token = new DataView(
        counted.value.buffer,
        counted.value.byteOffset,
        8,
      ).getBigUint64(0);
      // Our item still there means nobody took the lock since our add, so
      // nobody counted a token after ours while we held it.
      const check = await this.store.send(keys, Op.get, keys.lock, {}, signal);
      if (check.status !== Status.ok || decode(check.value) !== owner) {
        return undefined;
      }
      const claim = new MemcachedClaim(token, request, keys, this);
      return this.holdings.track(claim, request);
    } catch (error) {
      await this.store.send(keys, Op.delete, keys.lock, { cas: added.cas })
        .catch(() => {});
      throw error;
    }
  }

  /**
   * memcached has no notifications, so this polls the item with a cheap GET:
   * an expiry lands on memcached's one-second tick, and the lifecycle's own
   * polling (up to half a second apart) would add to that.
   */
  async waitForChange(request: LockRequest, signal: AbortSignal) {
    const keys = await keysOf(request.name);
    while (true) {
      const got = await this.store.send(keys, Op.get, keys.lock, {}, signal);
      if (got.status === Status.notFound) return;
      await abortableDelay(WATCH_POLL_MS, signal);
    }
  }

  async close(): Promise<void> {
    if (this.store.closed) return;
    await this.holdings.releaseAll();
    await this.store.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The memcached backend: `memcached://[user:password@]host[:port][,host...]`
 * (binary protocol; credentials are for SASL). `?timeout=` bounds each call,
 * in seconds (default 3). With several hosts a lock
 * name always maps to the same one, so every node must list the hosts in
 * the same order.
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
