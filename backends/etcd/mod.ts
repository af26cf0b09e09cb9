/**
 * The lock recipe that the `etcd` (JSON gateway) and `etcd3` (gRPC) backends
 * share, on their own {@linkcode EtcdOps}: each acquisition queues its own
 * key (`etcd_keys.ts`, `etcd_queue.ts`); the lowest key holds the lock
 * (`etcd_claim.ts`), and a waiter watches only its predecessor.
 *
 * @module
 */

import {
  type Backend,
  BackendUnavailableError,
  type Claim,
  type LockRequest,
} from "../../src/backend.ts";
import { abortableDelay } from "../../src/timing.ts";
import { Holdings } from "../../src/holdings.ts";
import { EtcdClaim, type Place } from "./claim.ts";
import { lockPrefix } from "./keys.ts";
import type { EtcdOps } from "./ops.ts";
import { EtcdQueue } from "./queue.ts";
import type { EtcdConfig } from "./uri.ts";

/** The shortest lease TTL that etcd grants with its default timing. */
export const ETCD_MIN_TTL_MS = 2_000;

/**
 * The etcd lock backend over a set of {@linkcode EtcdOps}; the `etcd` and
 * `etcd3` factories build it on their own clients.
 *
 * @example
 * ```ts
 * import { EtcdBackend } from "./mod.ts";
 * import { parseEtcdUri } from "./uri.ts";
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
    maxTtlMs: 366 * 86_400_000,
    listsLocks: false,
    storesLimit: false,
  } as const;
  /** The URI with its password replaced by `***`. */
  readonly displayUri: string;
  readonly #queue: EtcdQueue;
  readonly #claims = new Set<EtcdClaim>();
  readonly #holdings = new Holdings();
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
    this.#queue = new EtcdQueue(config.timeoutMs);
  }

  #client(): Promise<EtcdOps> {
    if (this.#closed) throw new TypeError("The etcd backend is closed");
    return this.#ops ??= this.open();
  }

  /** Makes the client ahead of the first attempt. */
  async connect(): Promise<void> {
    await this.#client();
  }

  /** Queues a key and holds the lock when it is the lowest. */
  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    request.signal.throwIfAborted();
    const ops = await this.#client();
    const queue = this.#queue;
    const prefix = lockPrefix(this.config.root, request.name);
    try {
      const place = await queue.take(ops, prefix, request);
      if (!place) return undefined;
      const before = await ops.predecessor(
        prefix,
        place.createRevision,
        request.signal,
      );
      if (!before) {
        return this.#holdings.track(this.#claim(ops, request, place), request);
      }
      if (!request.wait) {
        await queue.drop(request.owner, ops);
        return undefined;
      }
      place.predecessor = before;
      return undefined;
    } catch (error) {
      if (!request.wait) await queue.drop(request.owner, ops);
      if (error instanceof BackendUnavailableError) throw error;
      throw new BackendUnavailableError(
        this.displayUri,
        (error as Error)?.message ?? String(error),
        { cause: error },
      );
    }
  }

  #claim(ops: EtcdOps, request: LockRequest, place: Place): Claim {
    this.#queue.won(request.owner, place);
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
    const before = this.#queue.get(request.owner)?.predecessor;
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

  /** Releases held claims, gives up queue places and closes the client. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const ops = await this.#ops?.catch(() => undefined);
    this.#closed = true;
    if (!ops) return;
    await this.#holdings.releaseAll();
    await Promise.allSettled(
      [...this.#claims].map((claim) => claim.release(0)),
    );
    await this.#queue.dropAll(ops);
    await ops.close();
  }

  /** Calls {@linkcode EtcdBackend.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
