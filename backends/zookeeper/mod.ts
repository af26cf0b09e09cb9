/**
 * The ZooKeeper backend: the lock recipe (`queue.ts`) with a slot record per
 * slot, judged by the server's clock (`slots.ts`), held by `claim.ts`, on
 * one session per backend (`session.ts`, `liveness.ts`), and the
 * operator's calls (`operate.ts`, `check.ts`). The node layout is in
 * `keys.ts`; the npm client is named and loaded in `client.ts` only.
 *
 * Loss: the session is lost once no call was answered for the session
 * timeout minus a margin (a disconnect, a hung server, a partition), before
 * the server can expire it; `EXPIRED` only arrives after a reconnect. A held
 * entry deleted out of band, or a claim left unrenewed past its lease, is
 * lost too (`claim.ts`). None of these lets another holder in early: the
 * slot record keeps everybody out until the lease last renewed has run out
 * on the server's clock.
 *
 * @module
 */

import type {
  Backend,
  CheckResult,
  Claim,
  LockRequest,
  LockStatus,
  Removal,
} from "../../src/backend.ts";
import { BackendUnavailableError } from "../../src/errors.ts";
import { Holdings } from "../../src/holdings.ts";
import { abortableDelay, withTimeout } from "../../src/timing.ts";
import { loadZooKeeper } from "./client.ts";
import { checkZooKeeper } from "./check.ts";
import { everyLockStatus, forceRelease, lockStatus } from "./operate.ts";
import { LockQueue } from "./queue.ts";
import { openSession, type ZkSession } from "./session.ts";
import { parseZooKeeperUri, type ZooKeeperTarget } from "./uri.ts";

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

const MIN_SESSION_MS = 2_000;
const MAX_DEFAULT_SESSION_MS = 60_000;
/** The session timeout asked for by a backend whose first use is an operator call. */
const OPERATE_SESSION_MS = 10_000;
const OPEN_WAIT_MS = 15_000;

class ZooKeeperBackend implements Backend {
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: true,
    minTtlMs: MIN_SESSION_MS,
    clock: "server",
    // The lease lives in the slot record, not in the session: any duration
    // coolock accepts is kept.
    maxTtlMs: 366 * 86_400_000,
    listsLocks: true,
    storesLimit: true,
  } as const;
  readonly scheme: string;
  readonly displayUri: string;
  readonly permissions: readonly Deno.PermissionDescriptor[];
  readonly #target: ZooKeeperTarget;
  readonly #queue: LockQueue;
  readonly #closing = new AbortController();
  readonly #sessions = new Set<ZkSession>();
  readonly #holdings = new Holdings();
  #session?: Promise<ZkSession>;
  #askedMs = 0;

  constructor(target: ZooKeeperTarget) {
    this.#target = target;
    this.#queue = new LockQueue(target.root);
    this.scheme = target.scheme;
    this.displayUri = target.display;
    this.permissions = target.hosts.map(({ host, port }) => ({
      name: "net",
      host: `${host}:${port}`,
    }));
  }

  /**
   * The backend's session, opened on first use with a timeout of the first
   * request's lease (2 to 60 s), or the URI's `session_timeout`.
   */
  async #sessionFor(leaseMs: number, signal: AbortSignal): Promise<ZkSession> {
    if (this.#closing.signal.aborted) {
      throw new BackendUnavailableError(this.displayUri, "it was closed");
    }
    const pending = this.#session;
    const current = await pending?.catch(() => undefined);
    if (current && !current.lost.aborted) return current;
    if (this.#session === pending) {
      const sessionTimeoutMs = this.#target.sessionTimeoutMs ??
        Math.min(MAX_DEFAULT_SESSION_MS, Math.max(MIN_SESSION_MS, leaseMs));
      this.#askedMs = sessionTimeoutMs;
      this.#session = (async () => {
        const zk = await loadZooKeeper();
        const session = await openSession(zk, {
          connect: this.#target.connect,
          sessionTimeoutMs,
          digest: this.#target.digest,
          display: this.displayUri,
          signal: this.#closing.signal,
        });
        this.#sessions.add(session);
        session.lost.addEventListener("abort", () => {
          session.close().then(() => this.#sessions.delete(session));
        });
        return session;
      })();
      this.#session.catch(() => {});
    }
    const opening = this.#session!;
    try {
      return await withTimeout(opening, OPEN_WAIT_MS, signal);
    } catch (error) {
      if (this.#session === opening) this.#session = undefined;
      throw error;
    }
  }

  async connect(request: LockRequest): Promise<void> {
    await this.#sessionFor(request.expiresInMs, request.signal);
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    request.signal.throwIfAborted();
    const session = await this.#sessionFor(
      request.expiresInMs,
      request.signal,
    );
    const queue = this.#queue;
    let place = queue.get(request.owner);
    // A place on a dead session went with its ephemeral entry.
    if (place && place.session !== session) queue.forget(place);
    place = queue.get(request.owner) ?? await queue.enqueue(session, request);
    try {
      const claim = await queue.examine(place, request);
      if (claim || !request.wait) await queue.leave(place, !claim);
      if (claim && request.signal.aborted) {
        await claim.release(0).catch(() => {});
        throw request.signal.reason;
      }
      return claim && this.#holdings.track(claim, request);
    } catch (error) {
      await queue.leave(place, true).catch(() => {});
      throw error;
    }
  }

  async waitForChange(
    request: LockRequest,
    signal: AbortSignal,
  ): Promise<void> {
    const place = this.#queue.get(request.owner);
    if (!place) return;
    const stop = AbortSignal.any([signal, place.session.lost]);
    const waits: Promise<void>[] = [];
    if (place.lapseAt !== undefined) {
      waits.push(abortableDelay(place.lapseAt - performance.now(), stop));
    }
    if (place.wake) waits.push(place.wake);
    if (waits.length === 0) return;
    let quit = () => {};
    const stopped = new Promise<void>((_, reject) => {
      quit = () => reject(stop.reason);
      stop.addEventListener("abort", quit, { once: true });
    });
    if (stop.aborted) quit();
    try {
      await Promise.race([...waits, stopped]);
    } finally {
      stop.removeEventListener("abort", quit);
      stopped.catch(() => {});
      for (const wait of waits) wait.catch(() => {});
    }
  }

  async status(
    name: string | undefined,
    signal: AbortSignal,
  ): Promise<LockStatus[]> {
    const session = await this.#sessionFor(OPERATE_SESSION_MS, signal);
    return name === undefined
      ? await everyLockStatus(session, this.#target.root, signal)
      : [await lockStatus(session, this.#target.root, name, signal)];
  }

  async forceRelease(name: string, signal: AbortSignal): Promise<Removal[]> {
    const session = await this.#sessionFor(OPERATE_SESSION_MS, signal);
    return await forceRelease(session, this.#target.root, name, signal);
  }

  async check(signal: AbortSignal): Promise<CheckResult[]> {
    const session = await this.#sessionFor(OPERATE_SESSION_MS, signal);
    return await checkZooKeeper(session, this.#target, this.#askedMs, signal);
  }

  async close(): Promise<void> {
    await this.#holdings.releaseAll();
    for (const claim of [...this.#queue.held]) {
      await claim.release(0).catch(() => {});
    }
    this.#queue.forgetAll();
    this.#closing.abort();
    await this.#session?.catch(() => undefined);
    this.#session = undefined;
    await Promise.all([...this.#sessions].map((session) => session.close()));
    this.#sessions.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The ZooKeeper backend:
 * `zookeeper://[user:password@]host[:port][,host...][/chroot][?session_timeout=S]`
 * (also `kazoo://`). Nodes live under `<chroot>/coolock/<name>/`. With a
 * user name and password the session authenticates by digest and creates
 * its nodes readable and writable only by that identity. `session_timeout`
 * is in seconds; by default the session timeout is the first lock
 * request's lease time (the TTL, or the guard time when longer), from 2 to
 * 60 s, and the server bounds it to 2–20 × its tickTime. The lease itself
 * lives in a record on the server, so any TTL is kept, whatever session
 * timeout the server grants. Nothing connects until first use.
 *
 * @param uri the backend URI
 * @returns the backend; close it (or `await using` it) when done
 *
 * @example
 * ```ts
 * import { zookeeper } from "./mod.ts";
 * await using backend = zookeeper("zookeeper://zk1:2181,zk2:2181/apps?session_timeout=10");
 * console.log(backend.displayUri);
 * ```
 */
export function zookeeper(uri: string | URL): Backend {
  return new ZooKeeperBackend(parseZooKeeperUri(String(uri)));
}
