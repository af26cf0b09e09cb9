/**
 * The lock recipe that the `etcd` (JSON gateway) and `etcd3` (gRPC) backends
 * share, so that both take the same keys and exclude each other: each
 * acquisition puts its own key `<root>/<name>/<lease id>` with its lease, and
 * the key with the lowest create revision under the prefix holds the lock,
 * as in etcd's `concurrency.Mutex`. A waiter watches only its predecessor.
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
import { type BackendUri, parseBackendUri, secondsParam } from "../src/uri.ts";

/** What a key holds at one revision. */
export interface KeyState {
  /** The revision that created the key: the fencing token. */
  readonly createRevision: bigint;
  /** The owner that the key names. */
  readonly value: string;
  /** The store revision at which it was read. */
  readonly revision: bigint;
}

/** The first change to a watched key. */
export type KeyChange =
  | { readonly kind: "put"; readonly value: string; readonly revision: bigint }
  | { readonly kind: "delete"; readonly revision: bigint };

/**
 * The few etcd calls the recipe needs; each backend implements them on its
 * own client. Every call honours `signal` and its own call timeout.
 *
 * @example
 * ```ts
 * import type { EtcdOps } from "./etcd_lock.ts";
 * async function ttlLeft(ops: EtcdOps, lease: string): Promise<number> {
 *   return await ops.keepAlive(lease, AbortSignal.timeout(1_000));
 * }
 * ```
 */
export interface EtcdOps {
  /** Grants a lease; resolves its id and the TTL the server granted. */
  grant(ttlSeconds: number, signal: AbortSignal): Promise<[string, number]>;
  /** Refreshes a lease; resolves its TTL in seconds, 0 when it is gone. */
  keepAlive(lease: string, signal: AbortSignal): Promise<number>;
  /** Revokes a lease (deleting its keys); a lease already gone is fine. */
  revoke(lease: string, signal: AbortSignal): Promise<void>;
  /**
   * Puts `key` with `lease` unless it exists, and reads it back. With
   * `ifEmpty`, puts it only when no key exists under that prefix, else
   * resolves `"held"`. Resolves `undefined` when the lease is gone.
   */
  create(
    key: string,
    value: string,
    lease: string,
    signal: AbortSignal,
    ifEmpty?: string,
  ): Promise<KeyState | "held" | undefined>;
  /** Reads one key. */
  read(key: string, signal: AbortSignal): Promise<KeyState | undefined>;
  /** The key under `prefix` with the highest create revision below `below`. */
  predecessor(
    prefix: string,
    below: bigint,
    signal: AbortSignal,
  ): Promise<{ key: string; revision: bigint } | undefined>;
  /** Puts `key` again with another lease if it still holds `value` as created. */
  replace(
    key: string,
    value: string,
    createRevision: bigint,
    lease: string,
    signal: AbortSignal,
  ): Promise<boolean>;
  /** Deletes `key` if it still holds `value` as created. */
  remove(
    key: string,
    value: string,
    createRevision: bigint,
    signal: AbortSignal,
  ): Promise<boolean>;
  /** Resolves the first put or delete of `key` at or after `fromRevision`. */
  nextChange(
    key: string,
    fromRevision: bigint,
    signal: AbortSignal,
  ): Promise<KeyChange>;
  /** Ends every connection and stream. */
  close(): Promise<void>;
}

/** What both etcd backends read from their URI. */
export interface EtcdConfig {
  /** The parsed URI, password included. */
  readonly uri: BackendUri;
  /** Whether the scheme asks for TLS (`+https`). */
  readonly tls: boolean;
  /** The key root, `coolock` unless the URI has a path. */
  readonly root: string;
  /** The bound on one call, from `?timeout=` seconds. */
  readonly timeoutMs: number;
}

const PARAMS = new Set(["ca", "cert", "key", "timeout"]);

/**
 * Parses and checks an `etcd://` or `etcd3://` URI (`+http`, `+https`).
 *
 * @example
 * ```ts
 * import { parseEtcdUri } from "./etcd_lock.ts";
 * const config = parseEtcdUri("etcd://h1:2379,h2/jobs?timeout=3", "etcd");
 * console.log(config.uri.hosts.length, config.root, config.timeoutMs); // 2 jobs 3000
 * ```
 */
export function parseEtcdUri(
  input: string | URL,
  family: "etcd" | "etcd3",
): EtcdConfig {
  const uri = parseBackendUri(String(input), 2379);
  const bad = (why: string) =>
    new TypeError(`Backend URI '${uri.display}' ${why}`);
  if (![family, `${family}+http`, `${family}+https`].includes(uri.scheme)) {
    throw bad(`is not ${family}://, ${family}+http:// or ${family}+https://`);
  }
  if (uri.hosts.length === 0) throw bad("names no host");
  if (uri.password !== undefined && uri.username === "") {
    throw bad("has a password but no user name");
  }
  for (const name of uri.params.keys()) {
    if (!PARAMS.has(name)) {
      throw bad(`has an unknown option '${name}': use ca, cert, key, timeout`);
    }
  }
  const tls = uri.scheme.endsWith("+https");
  if (!tls && ["ca", "cert", "key"].some((name) => uri.params.has(name))) {
    throw bad(`has TLS options: use ${family}+https://`);
  }
  if (uri.params.has("cert") !== uri.params.has("key")) {
    throw bad("needs both 'cert' and 'key', or neither");
  }
  const timeoutMs = secondsParam(uri, "timeout", 5_000);
  if (timeoutMs <= 0) throw bad("has a zero 'timeout'");
  const root = uri.path.replace(/^\/+|\/+$/g, "") || "coolock";
  return { uri, tls, root, timeoutMs };
}

/**
 * The prefix under which the keys of one lock live.
 *
 * @example
 * ```ts
 * import { lockPrefix } from "./etcd_lock.ts";
 * console.log(lockPrefix("coolock", "a/b")); // coolock/a%2Fb/
 * ```
 */
export function lockPrefix(root: string, name: string): string {
  return `${root}/${encodeLockName(name)}/`;
}

/**
 * The end of the key range that holds every key starting with `prefix`.
 *
 * @example
 * ```ts
 * import { prefixEnd } from "./etcd_lock.ts";
 * console.log(prefixEnd("coolock/a/")); // coolock/a0
 * ```
 */
export function prefixEnd(prefix: string): string {
  // Lock prefixes are ASCII and end in "/", so one character step is enough.
  return prefix.slice(0, -1) +
    String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/** The shortest lease TTL that etcd grants with its default timing. */
export const ETCD_MIN_TTL_MS = 2_000;

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/** One acquisition's key: a place in the queue until it is the lowest. */
interface Place {
  readonly key: string;
  readonly lease: string;
  readonly ttlMs: number;
  /** When the last acknowledged grant or keepalive of the lease was sent. */
  ackedAt: number;
  createRevision: bigint;
  revision: bigint;
  predecessor?: { key: string; revision: bigint };
  readonly stop: () => void;
}

/**
 * The etcd lock backend over a set of {@linkcode EtcdOps}; the `etcd` and
 * `etcd3` factories build it on their own clients.
 *
 * @example
 * ```ts
 * import { EtcdBackend, parseEtcdUri } from "./etcd_lock.ts";
 * const config = parseEtcdUri("etcd://127.0.0.1", "etcd");
 * const backend = new EtcdBackend(
 *   "etcd",
 *   config,
 *   () => Promise.reject(new Error("no client here")),
 * );
 * await backend.close();
 * ```
 */
export class EtcdBackend implements Backend {
  /** Waiters queue in create-revision order and watch their predecessor. */
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: true,
    minTtlMs: ETCD_MIN_TTL_MS,
    clock: "server",
  } as const;
  /** The URI with its password replaced by `***`. */
  readonly displayUri: string;
  readonly #places = new Map<string, Place>();
  readonly #claims = new Set<EtcdClaim>();
  readonly #cleanups = new Set<Promise<void>>();
  #ops?: Promise<EtcdOps>;
  #closed = false;

  /**
   * Keeps the configuration; `connect` runs on first use.
   *
   * @param scheme the scheme this backend serves
   * @param config the parsed URI
   * @param connect makes the client, on first use
   */
  constructor(
    /** The URI scheme, such as `etcd` or `etcd3+https`. */
    readonly scheme: string,
    private readonly config: EtcdConfig,
    private readonly open: () => Promise<EtcdOps>,
  ) {
    this.displayUri = config.uri.display;
  }

  #client(): Promise<EtcdOps> {
    if (this.#closed) throw new TypeError("The etcd backend is closed");
    return this.#ops ??= this.open();
  }

  #bound(signal?: AbortSignal): AbortSignal {
    const timeout = AbortSignal.timeout(this.config.timeoutMs);
    return signal ? AbortSignal.any([signal, timeout]) : timeout;
  }

  async connect(): Promise<void> {
    await this.#client();
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    request.signal.throwIfAborted();
    const ops = await this.#client();
    const prefix = lockPrefix(this.config.root, request.name);
    try {
      const place = await this.#place(ops, prefix, request);
      if (!place) return undefined;
      const before = await ops.predecessor(
        prefix,
        place.createRevision,
        request.signal,
      );
      if (!before) return this.#claim(ops, request, place);
      if (!request.wait) {
        await this.#drop(request.owner, ops);
        return undefined;
      }
      place.predecessor = before;
      return undefined;
    } catch (error) {
      if (!request.wait) await this.#drop(request.owner, ops);
      if (error instanceof BackendUnavailableError) throw error;
      throw new BackendUnavailableError(
        this.displayUri,
        (error as Error)?.message ?? String(error),
        { cause: error },
      );
    }
  }

  /** This request's queue place, fresh; `undefined` when held (no wait). */
  async #place(
    ops: EtcdOps,
    prefix: string,
    request: LockRequest,
  ): Promise<Place | undefined> {
    const place = this.#places.get(request.owner);
    if (place) {
      const sentAt = performance.now();
      const [ttl, state] = await Promise.all([
        ops.keepAlive(place.lease, request.signal),
        ops.create(place.key, request.owner, place.lease, request.signal),
      ]);
      if (ttl > 0 && state && state !== "held") {
        return Object.assign(place, state, { ackedAt: sentAt });
      }
      await this.#drop(request.owner, ops);
    }
    const sentAt = performance.now();
    const [lease, ttl] = await ops.grant(
      seconds(request.expiresInMs),
      request.signal,
    );
    const key = `${prefix}${BigInt(lease).toString(16)}`;
    const keeping = new AbortController();
    const fresh: Place = {
      key,
      lease,
      ttlMs: ttl * 1000,
      ackedAt: sentAt,
      createRevision: 0n,
      revision: 0n,
      stop: () => keeping.abort(),
    };
    this.#places.set(request.owner, fresh);
    const onAbort = () => void this.#drop(request.owner, ops);
    request.signal.addEventListener("abort", onAbort, { once: true });
    keeping.signal.addEventListener(
      "abort",
      () => request.signal.removeEventListener("abort", onAbort),
      { once: true },
    );
    // Without waiting, take the lock only when nobody holds or queues for it.
    const state = await ops.create(
      key,
      request.owner,
      lease,
      request.signal,
      request.wait ? undefined : prefix,
    );
    if (state === "held") {
      await this.#drop(request.owner, ops);
      return undefined;
    }
    if (state?.value !== request.owner) {
      throw new Error("the new lease expired before its key was put");
    }
    // A queue place lives as long as its lease: keep it while we wait.
    if (request.wait) void this.#keep(ops, fresh, keeping.signal);
    return Object.assign(fresh, state);
  }

  async #keep(ops: EtcdOps, place: Place, signal: AbortSignal) {
    while (!signal.aborted) {
      try {
        await abortableDelay(place.ttlMs / 3, signal);
        const sentAt = performance.now();
        if (await ops.keepAlive(place.lease, this.#bound(signal)) > 0) {
          place.ackedAt = sentAt;
        }
      } catch { /* the next attempt finds out */ }
    }
  }

  /** Gives up a queue place; revoking its lease deletes its key. */
  #drop(owner: string, ops: EtcdOps): Promise<void> {
    const place = this.#places.get(owner);
    if (!place) return Promise.resolve();
    this.#places.delete(owner);
    place.stop();
    const cleanup = ops.revoke(place.lease, this.#bound()).catch(() => {});
    this.#cleanups.add(cleanup);
    return cleanup.finally(() => this.#cleanups.delete(cleanup));
  }

  #claim(ops: EtcdOps, request: LockRequest, place: Place): Claim {
    this.#places.delete(request.owner);
    place.stop();
    const claim = new EtcdClaim(
      ops,
      request.name,
      request.owner,
      place,
      this.config.timeoutMs,
      () => this.#claims.delete(claim),
    );
    this.#claims.add(claim);
    return claim;
  }

  /** Resolves when this waiter's predecessor in the queue is deleted. */
  async waitForChange(
    request: LockRequest,
    signal: AbortSignal,
  ): Promise<void> {
    const before = this.#places.get(request.owner)?.predecessor;
    if (!before) return await abortableDelay(60_000, signal);
    const ops = await this.#client();
    for (;;) {
      const change = await ops.nextChange(
        before.key,
        before.revision + 1n,
        signal,
      );
      if (change.kind === "delete") return;
      before.revision = change.revision;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const ops = await this.#ops?.catch(() => undefined);
    this.#closed = true;
    if (!ops) return;
    await Promise.allSettled(
      [...this.#claims].map((claim) => claim.release(0)),
    );
    for (const owner of [...this.#places.keys()]) void this.#drop(owner, ops);
    await Promise.allSettled([...this.#cleanups]);
    await ops.close();
  }

  /** Calls {@linkcode EtcdBackend.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class EtcdClaim implements Claim {
  readonly token: bigint;
  readonly #lost = new AbortController();
  readonly #watching = new AbortController();
  readonly lost: AbortSignal = this.#lost.signal;
  #lease: string;
  #ttlMs: number;
  #ackedAt: number;
  #expiry?: ReturnType<typeof setTimeout>;
  #released?: Promise<void>;

  constructor(
    private readonly ops: EtcdOps,
    private readonly name: string,
    private readonly owner: string,
    private readonly place: Place,
    private readonly timeoutMs: number,
    private readonly onDone: () => void,
  ) {
    this.token = place.createRevision;
    this.#lease = place.lease;
    this.#ttlMs = place.ttlMs;
    this.#ackedAt = place.ackedAt;
    this.#armExpiry();
    void this.#watch(place.revision + 1n);
  }

  #lose(why: string): LockLostError {
    const error = new LockLostError(this.name, why);
    if (!this.#watching.signal.aborted) {
      this.#lost.abort(error);
      this.#stop();
    }
    return error;
  }

  #stop() {
    clearTimeout(this.#expiry);
    this.#watching.abort();
  }

  #armExpiry() {
    clearTimeout(this.#expiry);
    // Clients learn of a dead lease late; the server drops it at this time.
    const due = this.#ackedAt + this.#ttlMs - performance.now();
    this.#expiry = setTimeout(
      () => this.#lose("no keepalive was acknowledged within the lease TTL"),
      Math.max(0, due),
    );
  }

  async #watch(from: bigint) {
    const signal = this.#watching.signal;
    while (!signal.aborted) {
      try {
        const change = await this.ops.nextChange(this.place.key, from, signal);
        if (change.kind === "delete") {
          return void this.#lose("its key was deleted");
        }
        if (change.value !== this.owner) {
          return void this.#lose("its key was overwritten");
        }
        from = change.revision + 1n;
      } catch {
        // A compacted or broken watch: look, then watch from there.
        try {
          await abortableDelay(500, signal);
          from = (await this.#check(signal)) + 1n;
        } catch { /* unreachable: renewals and the deadline decide */ }
      }
    }
  }

  async #check(signal: AbortSignal): Promise<bigint> {
    const state = await this.ops.read(this.place.key, this.#bound(signal));
    if (state?.value !== this.owner || state.createRevision !== this.token) {
      throw this.#lose("its key is gone or belongs to another owner");
    }
    return state.revision;
  }

  #bound(signal: AbortSignal): AbortSignal {
    return AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]);
  }

  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    if (this.#watching.signal.aborted) {
      throw new LockLostError(this.name, "it was released or lost before");
    }
    const sentAt = performance.now();
    if (this.#ttlMs > expiresInMs + 1_000) {
      // The lease still covers the guard time; shorten it once that has run.
      if (this.#ackedAt + this.#ttlMs - sentAt >= expiresInMs) {
        await this.#check(signal);
      } else await this.#swap(expiresInMs, signal);
      return;
    }
    const [ttl] = await Promise.all([
      this.ops.keepAlive(this.#lease, this.#bound(signal)),
      this.#check(signal),
    ]);
    if (ttl <= 0) throw this.#lose("its lease expired");
    this.#ackedAt = sentAt;
    this.#armExpiry();
  }

  /** Moves the key to a fresh lease of `expiresInMs`, then revokes the old. */
  async #swap(expiresInMs: number, signal: AbortSignal) {
    const sentAt = performance.now();
    const [lease, ttl] = await this.ops.grant(
      seconds(expiresInMs),
      this.#bound(signal),
    );
    const old = this.#lease;
    let moved = false;
    try {
      moved = await this.ops.replace(
        this.place.key,
        this.owner,
        this.token,
        lease,
        this.#bound(signal),
      );
    } finally {
      if (moved) {
        [this.#lease, this.#ttlMs, this.#ackedAt] = [lease, ttl * 1000, sentAt];
      }
      const revoked = moved ? [old] : [lease, old];
      await Promise.allSettled(
        revoked.map((id) => this.ops.revoke(id, this.#bound(signal))),
      );
    }
    if (!moved) throw this.#lose("its key belongs to another owner");
    if (!this.#watching.signal.aborted) this.#armExpiry();
  }

  release(holdMs: number): Promise<void> {
    return this.#released ??= this.#release(holdMs);
  }

  async #release(holdMs: number): Promise<void> {
    this.#stop();
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      if (holdMs > 0) {
        // A fresh lease that nobody renews keeps the key for the guard time.
        await this.#swap(holdMs, signal).catch((error) => {
          if (!(error instanceof LockLostError)) throw error;
        });
      } else {
        await this.ops.remove(this.place.key, this.owner, this.token, signal);
        await this.ops.revoke(this.#lease, signal);
      }
    } finally {
      this.onDone();
    }
  }
}
