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
  BackendUnavailableError,
  type Claim,
  LockLostError,
  type LockRequest,
} from "../src/backend.ts";
import { encodeLockName } from "../src/names.ts";
import { abortableDelay } from "../src/timing.ts";
import { parseBackendUri, secondsParam } from "../src/uri.ts";
import {
  Connection,
  expirySeconds,
  incrementExtras,
  Op,
  type Reply,
  type RequestBody,
  Status,
  storageExtras,
} from "./memcached_binary.ts";

const CALL_TIMEOUT_MS = 3_000;
const MAX_KEY_BYTES = 250;
const CAS_TRIES = 3;
const WATCH_POLL_MS = 50;

interface Keys {
  readonly route: string;
  readonly lock: string;
  readonly fence: string;
}

// Both keys route by the name alone, so they live on the same server.
async function keysOf(name: string): Promise<Keys> {
  let id = encodeLockName(name);
  if (`coolock:fence:${id}`.length > MAX_KEY_BYTES) {
    // `#` never appears in an encoded name, so hashed ids can't collide.
    const bytes = new TextEncoder().encode(name);
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", bytes),
    );
    id = "#" + Array.from(digest, (b) => b.toString(16).padStart(2, "0"))
      .join("");
  }
  return {
    route: id,
    lock: `coolock:lock:${id}`,
    fence: `coolock:fence:${id}`,
  };
}

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

class MemcachedClaim implements Claim {
  readonly acquiredAt = performance.now();

  constructor(
    readonly token: bigint,
    readonly request: LockRequest,
    private readonly keys: Keys,
    private readonly backend: MemcachedBackend,
  ) {}

  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    const renewed = await this.backend.swap(this.keys, this.request.owner, {
      op: Op.set,
      extras: storageExtras(expirySeconds(expiresInMs)),
    }, signal);
    if (!renewed) {
      throw new LockLostError(
        this.request.name,
        "the key expired, was deleted or is held by another owner",
      );
    }
  }

  async release(holdMs: number): Promise<void> {
    this.backend.held.delete(this);
    await this.backend.swap(
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
  } as const;
  readonly displayUri: string;
  readonly held = new Set<MemcachedClaim>();
  readonly #open: () => Promise<Connection>;
  readonly #secret: string | undefined;
  #connection?: Promise<Connection>;
  #closed = false;

  constructor(uri: string) {
    const parsed = parseBackendUri(uri, 11211);
    const bad = (why: string) =>
      new TypeError(`Memcached URI '${parsed.display}' ${why}`);
    if (parsed.scheme !== "memcached") {
      throw bad("must start with memcached://");
    }
    if (parsed.hosts.length === 0) throw bad("has no host");
    if (parsed.path !== "" && parsed.path !== "/") {
      throw bad(`has a path '${parsed.path}': memcached has no databases`);
    }
    for (const name of parsed.params.keys()) {
      if (name !== "timeout") {
        throw bad(`has an unknown query option '${name}': use timeout`);
      }
    }
    const timeoutMs = secondsParam(parsed, "timeout", CALL_TIMEOUT_MS);
    if (timeoutMs === 0) throw bad("has a 'timeout' of 0: use a positive one");
    this.displayUri = parsed.display;
    this.#secret = parsed.password || undefined;
    this.#open = () =>
      Connection.open(parsed.hosts, {
        timeoutMs,
        username: parsed.username || undefined,
        password: parsed.password,
      });
  }

  async connect(): Promise<void> {
    if (this.#closed) throw this.#unavailable("the backend is closed");
    this.#connection ??= this.#open();
    await this.#connection;
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { owner, signal } = request;
    const keys = await keysOf(request.name);
    signal.throwIfAborted();
    // Not cut short by the signal: an add that lands after the caller gave
    // up must be given back here, or it would hold the lock until it expires.
    const added = await this.send(keys, Op.add, keys.lock, {
      extras: storageExtras(expirySeconds(request.expiresInMs)),
      value: owner,
    });
    if (added.status === Status.exists || added.status === Status.notStored) {
      return undefined;
    }
    this.#expect(added, Status.ok);
    try {
      signal.throwIfAborted();
      // A counter recreated after an eviction or a restart starts from the
      // clock, above the tokens it handed out unless they came faster than
      // one a millisecond.
      const counted = await this.send(keys, Op.increment, keys.fence, {
        extras: incrementExtras(BigInt(Date.now())),
      }, signal);
      this.#expect(counted, Status.ok);
      const token = new DataView(
        counted.value.buffer,
        counted.value.byteOffset,
        8,
      ).getBigUint64(0);
      // Our item still there means nobody took the lock since our add, so
      // nobody counted a token after ours while we held it.
      const check = await this.send(keys, Op.get, keys.lock, {}, signal);
      if (check.status !== Status.ok || decode(check.value) !== owner) {
        return undefined;
      }
      const claim = new MemcachedClaim(token, request, keys, this);
      this.held.add(claim);
      return claim;
    } catch (error) {
      await this.send(keys, Op.delete, keys.lock, { cas: added.cas })
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
      const got = await this.send(keys, Op.get, keys.lock, {}, signal);
      if (got.status === Status.notFound) return;
      await abortableDelay(WATCH_POLL_MS, signal);
    }
  }

  /**
   * Compare-and-swap on the lock item while it holds `owner`: resolves false
   * when it is gone or another owner's. A CAS that changed under us while
   * the value stayed ours (a renewal crossing a release) is tried again.
   */
  async swap(
    keys: Keys,
    owner: string,
    write: { op: number; extras?: Uint8Array },
    signal?: AbortSignal,
  ): Promise<boolean> {
    for (let tries = 0; tries < CAS_TRIES; tries++) {
      const got = await this.send(keys, Op.get, keys.lock, {}, signal);
      if (got.status === Status.notFound) return false;
      this.#expect(got, Status.ok);
      if (decode(got.value) !== owner) return false;
      const put = await this.send(keys, write.op, keys.lock, {
        extras: write.extras,
        value: write.op === Op.set ? owner : undefined,
        cas: got.cas,
      }, signal);
      if (put.status === Status.ok) return true;
      if (put.status === Status.notFound) return false;
      this.#expect(put, Status.exists);
    }
    throw this.#unavailable("the lock item kept changing under CAS");
  }

  async send(
    keys: Keys,
    op: number,
    key: string,
    body: RequestBody,
    signal?: AbortSignal,
  ): Promise<Reply> {
    if (this.#closed) throw this.#unavailable("the backend is closed");
    this.#connection ??= this.#open();
    const connection = await this.#connection;
    try {
      return await connection.send(keys.route, op, key, body, signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw this.#unavailable((error as Error).message, error);
    }
  }

  #expect(reply: Reply, status: number): void {
    if (reply.status !== status) {
      throw this.#unavailable(
        `memcached answered with status 0x${reply.status.toString(16)}`,
      );
    }
  }

  #unavailable(why: string, cause?: unknown): BackendUnavailableError {
    const safe = this.#secret ? why.replaceAll(this.#secret, "***") : why;
    return new BackendUnavailableError(this.displayUri, safe, { cause });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await Promise.allSettled(
      [...this.held].map((claim) =>
        claim.release(
          Math.max(
            0,
            claim.acquiredAt + claim.request.guardMs - performance.now(),
          ),
        )
      ),
    );
    this.#closed = true;
    const connection = this.#connection;
    this.#connection = undefined;
    await (await connection)?.close();
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
 * import { withLock } from "../mod.ts";
 * import { memcached } from "./memcached.ts";
 * await withLock(
 *   { backend: memcached("memcached://127.0.0.1:11211"), lock: "nightly", guardTime: 0 },
 *   () => console.log("only one node runs this"),
 * );
 * ```
 */
export function memcached(uri: string | URL): Backend {
  return new MemcachedBackend(String(uri));
}
