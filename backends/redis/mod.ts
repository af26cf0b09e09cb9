/**
 * The Redis backend: each lock slot is a key set with `NX PX` in a Lua
 * script (scripts.ts) that also finds the first free slot, checks the stored
 * limit, counts the fencing token and refuses while a restarted server may
 * have lost its locks. A release publishes on the lock's channel, so waiters
 * wake at once; the subscriber is a connection of its own (client.ts).
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
import { RedisClaim } from "./claim.ts";
import { abortable, type RedisClient, RedisLinks } from "./client.ts";
import { EPOCH_KEY, keysOf, valuePrefix, wholeMs } from "./keys.ts";
import { checkRedis } from "./check.ts";
import { forceReleaseOf, lockNames, statusOf } from "./operate.ts";
import { ACQUIRE, Acquired } from "./scripts.ts";
import { redisTarget } from "./uri.ts";

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

const COMMAND_TIMEOUT_MS = 5_000;

interface Waiting {
  readonly wakers: Set<() => void>;
  readonly subscribed: Promise<RedisClient>;
}

class RedisBackend implements Backend {
  readonly scheme: string;
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: 1,
    clock: "server",
    maxTtlMs: 366 * 86_400_000,
    listsLocks: true,
    storesLimit: true,
  } as const;
  readonly displayUri: string;
  readonly permissions: readonly Deno.PermissionDescriptor[];
  readonly holdings = new Holdings();
  readonly links: RedisLinks;
  readonly #waiting = new Map<string, Waiting>();
  readonly #claims = new Set<RedisClaim>();
  /** Until when (performance.now()) the server is too fresh to grant. */
  #unsettledUntil = 0;

  constructor(uri: string) {
    const target = redisTarget(uri, COMMAND_TIMEOUT_MS);
    this.scheme = uri.slice(0, uri.indexOf(":")).toLowerCase();
    this.displayUri = target.display;
    this.permissions = [
      // Sentinels name the master's address only at connect.
      ...(target.sentinel ? [{ name: "net" as const }] : target.hosts.map((
        { host, port },
      ) => ({
        name: "net" as const,
        host: `${host.includes(":") ? `[${host}]` : host}:${port}`,
      }))),
      ...target.files.map((path) => ({ name: "read" as const, path })),
      // ioredis's `debug` dependency reads the whole environment at load.
      { name: "env" as const },
    ];
    this.links = new RedisLinks(target, {
      message: (channel) => {
        for (const wake of this.#waiting.get(channel)?.wakers ?? []) wake();
      },
      wake: () => this.#wakeAll(),
      dropped: () => {
        for (const claim of this.#claims) void claim.recheck();
      },
    });
  }

  async connect(): Promise<void> {
    await this.links.link("main");
  }

  forget(claim: RedisClaim): void {
    this.#claims.delete(claim);
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { name, limit } = request;
    const keys = keysOf(name);
    request.signal.throwIfAborted();
    // Not cut short by the signal: a SET that lands after the caller gave up
    // must be given back here, or it would hold the lock until it expires.
    const reply = await this.links.run((client, info) =>
      client.eval(
        ACQUIRE,
        3,
        keys.fence,
        keys.limit,
        EPOCH_KEY,
        name,
        String(limit),
        wholeMs(request.expiresInMs),
        valuePrefix(request.owner, request.node, limit, request.guardMs),
        info.runId,
      )
    ) as unknown[];
    switch (reply[0]) {
      case Acquired.mismatch:
        throw new LimitMismatchError(name, limit, Number(reply[1]));
      case Acquired.held:
        return undefined;
      case Acquired.unsettled:
        this.#unsettledUntil = performance.now() + Number(reply[1]);
        return undefined;
      case Acquired.refused:
        throw this.links.unavailable(
          new Error(
            `the server refuses INFO (${
              reply[1]
            }), which coolock needs to tell a restarted server`,
          ),
        );
    }
    const claim = new RedisClaim(
      BigInt(String(reply[2])),
      Number(reply[1]),
      String(reply[3]),
      request,
      this,
    );
    if (request.signal.aborted) {
      await claim.release(0).catch(() => {});
      throw request.signal.reason;
    }
    this.#claims.add(claim);
    return this.holdings.track(claim, request);
  }

  async waitForChange(request: LockRequest, signal: AbortSignal) {
    signal.throwIfAborted();
    const keys = keysOf(request.name);
    const { channel } = keys;
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
      const created: Waiting = { wakers: new Set(), subscribed };
      this.#waiting.set(channel, created);
      subscribed.catch(() => {
        if (this.#waiting.get(channel) === created) {
          this.#waiting.delete(channel);
        }
      });
      waiting = created;
    }
    const woken = Promise.withResolvers<void>();
    waiting.wakers.add(woken.resolve);
    try {
      await abortable(waiting.subscribed, signal);
      // A release between the caller's last attempt and SUBSCRIBE went
      // unheard, so look once more now that no release can be missed. A
      // server too fresh to grant has free slots that are not free yet.
      if (performance.now() >= this.#unsettledUntil) {
        const slots = Array.from(
          { length: request.limit },
          (_, k) => keys.slot(k),
        );
        const taken = await this.links.run(
          (client) => client.exists(...slots),
          signal,
        );
        if (taken < request.limit) return;
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

  async status(
    name: string | undefined,
    signal: AbortSignal,
  ): Promise<LockStatus[]> {
    const names = name === undefined
      ? await lockNames(this.links, signal)
      : [name];
    const out: LockStatus[] = [];
    for (const each of names) {
      out.push(await statusOf(this.links, each, signal));
    }
    return out;
  }

  forceRelease(name: string, signal: AbortSignal): Promise<Removal[]> {
    return forceReleaseOf(this.links, name, signal);
  }

  check(signal: AbortSignal): Promise<CheckResult[]> {
    return checkRedis(this.links, signal);
  }

  async close(): Promise<void> {
    if (this.links.closed) return;
    await this.holdings.releaseAll();
    this.#claims.clear();
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
 * One server holds each lock (not Redlock). Use `maxmemory-policy
 * noeviction`; without persistence a restarted server grants no lock until
 * it has been up for the lease time. `--limit N` takes one of N slot keys.
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
