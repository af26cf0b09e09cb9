/**
 * The Redis backend: `SET NX PX` with the owner as the value, in Lua scripts
 * that also count the fencing token and compare the owner before renewing or
 * releasing. A release publishes on a channel, so waiters wake at once.
 *
 * @module
 */

import type { Redis as RedisClient, RedisOptions } from "npm:ioredis@6.0.0";
import {
  type Backend,
  BackendUnavailableError,
  type Claim,
  LockLostError,
  type LockRequest,
} from "../src/backend.ts";
import { withTimeout } from "../src/timing.ts";
import { type RedisTarget, redisTarget } from "./redis_options.ts";

const COMMAND_TIMEOUT_MS = 5_000;

// The counter never expires: tokens keep increasing after the lock expires.
const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return tostring(redis.call('INCR', KEYS[2]))
end
return false`;
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;
// Guard time keeps the key, only shortened to what is left of it.
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1`;

function keysOf(name: string) {
  return {
    lock: `coolock:lock:${name}`,
    fence: `coolock:fence:${name}`,
    channel: `coolock:released:${name}`,
  };
}

const wholeMs = (ms: number) => String(Math.max(1, Math.ceil(ms)));

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return withTimeout(promise, 2 ** 31 - 1, signal);
}

type Kind = "main" | "sub";

/** A connection: `client` is set once it is ready. */
interface Link {
  ready: Promise<RedisClient>;
  client?: RedisClient;
}

interface Waiting {
  readonly wakers: Set<() => void>;
  readonly subscribed: Promise<RedisClient>;
}

class RedisClaim implements Claim {
  readonly #lost = new AbortController();
  readonly lost: AbortSignal = this.#lost.signal;
  readonly acquiredAt = performance.now();

  constructor(
    readonly token: bigint,
    readonly request: LockRequest,
    private readonly backend: RedisBackend,
  ) {}

  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    const { name, owner } = this.request;
    const renewed = await this.backend.run(
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
    this.backend.held.delete(this);
    const { name, owner } = this.request;
    const { lock, channel } = keysOf(name);
    const hold = holdMs > 0 ? wholeMs(holdMs) : "0";
    await this.backend.run((client) =>
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
  } as const;
  readonly displayUri: string;
  readonly held = new Set<RedisClaim>();
  readonly #target: RedisTarget;
  readonly #links = new Map<Kind, Link>();
  readonly #waiting = new Map<string, Waiting>();
  #closed = false;

  constructor(uri: string) {
    this.#target = redisTarget(uri, COMMAND_TIMEOUT_MS);
    this.scheme = uri.slice(0, uri.indexOf(":")).toLowerCase();
    this.displayUri = this.#target.display;
  }

  async connect(): Promise<void> {
    await this.#link("main");
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { lock, fence } = keysOf(request.name);
    request.signal.throwIfAborted();
    // Not cut short by the signal: a SET that lands after the caller gave up
    // must be given back here, or it would hold the lock until it expires.
    const token = await this.run((client) =>
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
    this.held.add(claim);
    return claim;
  }

  async waitForChange(request: LockRequest, signal: AbortSignal) {
    signal.throwIfAborted();
    const { lock, channel } = keysOf(request.name);
    let waiting = this.#waiting.get(channel);
    if (!waiting) {
      const subscribed = this.run(
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
      if (!(await this.run((client) => client.exists(lock), signal))) return;
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

  /** Runs one command on a connection, bounded and cancellable. */
  async run<T>(
    call: (client: RedisClient) => Promise<T>,
    signal?: AbortSignal,
    kind: Kind = "main",
  ): Promise<T> {
    signal?.throwIfAborted();
    const link = this.#link(kind);
    const client = await (signal ? abortable(link, signal) : link);
    try {
      const pending = call(client);
      pending.catch((error) => {
        // An unanswered command means a hung server or a dead path to it:
        // drop the connection so that the next call starts a new one.
        if (/timed out/i.test(error?.message)) this.#drop(kind, client);
      });
      return await (signal ? abortable(pending, signal) : pending);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw this.#unavailable(error);
    }
  }

  #link(kind: Kind): Promise<RedisClient> {
    if (this.#closed) {
      return Promise.reject(
        this.#unavailable(new Error("the backend is closed")),
      );
    }
    let link = this.#links.get(kind);
    // A connection dropped after a timeout or closed by the server is
    // replaced rather than failing every later call.
    if (link?.client && link.client.status !== "ready") {
      this.#drop(kind, link.client);
      link = undefined;
    }
    if (!link) {
      const created = {} as Link;
      created.ready = this.#open(kind, created);
      this.#links.set(kind, created);
      link = created;
    }
    return link.ready;
  }

  #drop(kind: Kind, client: RedisClient): void {
    const link = this.#links.get(kind);
    if (link?.client === client) this.#links.delete(kind);
    client.disconnect();
    if (kind === "sub") this.#wakeAll();
  }

  async #open(kind: Kind, link: Link): Promise<RedisClient> {
    const { Redis } = await import("npm:ioredis@6.0.0");
    const client = new Redis(this.#target.options as RedisOptions);
    let lastError: Error | undefined;
    client.on("error", (error: Error) => {
      lastError = error;
      // ioredis listens for one error per socket; a second one (EPIPE after
      // a refused TLS handshake) would be uncaught and end the process.
      client.stream?.on("error", () => {});
    });
    client.once("end", () => this.#drop(kind, client));
    if (kind === "sub") {
      client.on("message", (channel: string) => {
        for (const wake of this.#waiting.get(channel)?.wakers ?? []) wake();
      });
    }
    try {
      await withTimeout(
        client.connect(),
        this.#target.connectTimeoutMs + 2_000,
      );
      link.client = client;
      return client;
    } catch (error) {
      if (this.#links.get(kind) === link) this.#links.delete(kind);
      client.disconnect();
      throw this.#unavailable(lastError ?? error);
    }
  }

  #wakeAll(): void {
    for (const { wakers } of this.#waiting.values()) {
      for (const wake of wakers) wake();
    }
    this.#waiting.clear();
  }

  #unavailable(error: unknown): Error {
    if (error instanceof BackendUnavailableError) return error;
    let why = error instanceof Error ? error.message : String(error);
    if (error instanceof DOMException && error.name === "TimeoutError") {
      why = "no answer in time";
    }
    for (const secret of this.#target.secrets) {
      why = why.replaceAll(secret, "***");
    }
    return new BackendUnavailableError(this.displayUri, why, { cause: error });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const claims = [...this.held];
    await Promise.allSettled(
      claims.map((claim) =>
        claim.release(
          Math.max(
            0,
            claim.acquiredAt + claim.request.guardMs - performance.now(),
          ),
        )
      ),
    );
    this.#closed = true;
    this.#wakeAll();
    const links = [...this.#links.values()];
    this.#links.clear();
    await Promise.all(links.map(async (link) => {
      const client = await link.ready.catch(() => undefined);
      if (!client || client.status === "end") return;
      const ended = new Promise((resolve) => client.once("end", resolve));
      client.disconnect();
      await ended;
    }));
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
 * import { withLock } from "../mod.ts";
 * import { redis } from "./redis.ts";
 * await withLock(
 *   { backend: redis("redis://127.0.0.1:6379/0"), lock: "nightly", guardTime: 0 },
 *   () => console.log("only one node runs this"),
 * );
 * ```
 */
export function redis(uri: string | URL): Backend {
  return new RedisBackend(String(uri));
}
