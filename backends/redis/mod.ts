/**
 * The Redis backend: `SET NX PX` with the owner as the value, in Lua scripts
 * (`redis_scripts.ts`) that also count the fencing token and compare the
 * owner before renewing or releasing. A release publishes on a channel, so
 * waiters wake at once; the subscriber is a connection of its own
 * (`redis_links.ts`).
 *
 * @module
 */

import type { Redis as RedisClient } from "npm:ioredis@6.0.0";
import {
  type Backend,
  type Claim,
  LockLostError,
  type LockRequest,
} from "../../src/backend.ts";
import { Holdings } from "../../src/holdings.ts";
import { abortable, RedisLinks } from "./client.ts";
import { redisTarget } from "./uri.ts";
import { ACQUIRE, keysOf, RELEASE, RENEW, wholeMs } from "./scripts.ts";

const COMMAND_TIMEOUT_MS = 5_000;

interface Waiting {
  readonly wakers: Set<() => void>;
  readonly subscribed: Promise<RedisClient>;
}

class RedisClaim implements Claim {
  /** Slots other than 0 come with the semaphore (issue 16). */
  readonly slot = 0;
  readonly #lost = new AbortController();
  readonly lost: AbortSignal = this.#lost.signal;

  constructor(
    readonly token: bigint,
    readonly request: LockRequest,
    private readonly backend: RedisBackend,
  ) {}

  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    const { name, owner } = this.request;
    const renewed = await this.backend.links.run(
      (client) =>
        client.eval(RENEW, 1, keysOf(name).lock, owner, wholeMs(expiresInMs)),
      signal,
    );
    if (renewed !== 1) {
      const error = new LockLostError(
        name,
        "the key expired, was deleted or is held by another owner",
      );
      this.#lost.abort(error);
      throw error;
    }
  }

  async release(holdMs: number): Promise<void> {
    const { name, owner } = this.request;
    const { lock, channel } = keysOf(name);
    const hold = holdMs > 0 ? wholeMs(holdMs) : "0";
    await this.backend.links.run((client) =>
      client.eval(RELEASE, 1, lock, owner, hold, channel)
    );
  }
}

class RedisBackend implements Backend {
  readonly scheme: string;
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: 1,
    clock: "server",
    maxTtlMs: 366 * 86_400_000,
    listsLocks: false,
    storesLimit: false,
  } as const;
  readonly displayUri: string;
  readonly holdings = new Holdings();
  readonly links: RedisLinks;
  readonly #waiting = new Map<string, Waiting>();

  constructor(uri: string) {
    const target = redisTarget(uri, COMMAND_TIMEOUT_MS);
    this.scheme = uri.slice(0, uri.indexOf(":")).toLowerCase();
    this.displayUri = target.display;
    this.links = new RedisLinks(
      target,
      async () => (await import("npm:ioredis@6.0.0")).Redis,
      {
        message: (channel) => {
          for (const wake of this.#waiting.get(channel)?.wakers ?? []) wake();
        },
        wake: () => this.#wakeAll(),
      },
    );
  }

  async connect(): Promise<void> {
    await this.links.link("main");
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { lock, fence } = keysOf(request.name);
    request.signal.throwIfAborted();
    // Not cut short by the signal: a SET that lands after the caller gave up
    // must be given back here, or it would hold the lock until it expires.
    const token = await this.links.run((client) =>
      client.eval(
        ACQUIRE,
        2,
        lock,
        fence,
        request.owner,
        wholeMs(request.expiresInMs),
      )
    );
    if (token === null) return undefined;
    const claim = new RedisClaim(BigInt(String(token)), request, this);
    if (request.signal.aborted) {
      await claim.release(0).catch(() => {});
      throw request.signal.reason;
    }
    return this.holdings.track(claim, request);
  }

  async waitForChange(request: LockRequest, signal: AbortSignal) {
    signal.throwIfAborted();
    const { lock, channel } = keysOf(request.name);
    let waiting = this.#waiting.get(channel);
    if (!waiting) {
      const subscribed = this.links.run(
        async (sub) => {
          await sub.subscribe(channel);
          return sub;
        },
        undefined,
        "sub",
      );
      waiting = { wakers: new Set(), subscribed };
      this.#waiting.set(channel, waiting);
      subscribed.catch(() => {
        if (this.#waiting.get(channel) === waiting) {
          this.#waiting.delete(channel);
        }
      });
    }
    const woken = Promise.withResolvers<void>();
    waiting.wakers.add(woken.resolve);
    try {
      await abortable(waiting.subscribed, signal);
      // A release between the caller's last attempt and SUBSCRIBE went
      // unheard, so look once more now that no release can be missed.
      if (!(await this.links.run((client) => client.exists(lock), signal))) {
        return;
      }
      await abortable(woken.promise, signal);
    } finally {
      waiting.wakers.delete(woken.resolve);
      if (waiting.wakers.size === 0 && this.#waiting.get(channel) === waiting) {
        this.#waiting.delete(channel);
        waiting.subscribed.then((sub) => sub.unsubscribe(channel)).catch(
          () => {},
        );
      }
    }
  }

  #wakeAll(): void {
    for (const { wakers } of this.#waiting.values()) {
      for (const wake of wakers) wake();
    }
    this.#waiting.clear();
  }

  async close(): Promise<void> {
    if (this.links.closed) return;
    await this.holdings.releaseAll();
    await this.links.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The Redis backend. `redis://[user:password@]host[:port][/db]`, or
 * `rediss://` for TLS with `?ca=`, `?cert=` and `?key=` files; several hosts
 * with `?sentinel=<master>` (and `&sentinel_password=`) are Sentinels.
 * `?connect_timeout=` bounds a connection attempt, in seconds (default 3).
 *
 * @param uri the backend URI
 *
 * @example
 * ```ts ignore
 * import { withLock } from "../../mod.ts";
 * import { redis } from "./mod.ts";
 * await withLock(
 *   { backend: redis("redis://127.0.0.1:6379/0"), lock: "nightly", guardTime: 0 },
 *   () => console.log("only one node runs this"),
 * );
 * ```
 */
export function redis(uri: string | URL): Backend {
  return new RedisBackend(String(uri));
}
