/**
 * The ZooKeeper backend: the standard lock recipe (`zookeeper_queue.ts`) on
 * one session per backend (`zookeeper_session.ts`), with a guard record in
 * the lock's parent node for guard time (`zookeeper_guard.ts`).
 *
 * Loss: the session is lost once no call was answered for the session
 * timeout minus a margin (a disconnect, a hung server, a partition), before
 * the server can expire it; `EXPIRED` only arrives after a reconnect. A held
 * node deleted out of band, or a claim left unrenewed past its lease, is lost
 * too (`zookeeper_claim.ts`).
 *
 * @module
 */

import {
  type Backend,
  BackendUnavailableError,
  type Claim,
  type LockRequest,
} from "../../src/backend.ts";
import { abortableDelay, withTimeout } from "../../src/timing.ts";
import { Holdings } from "../../src/holdings.ts";
import type { ZkModule } from "./client.ts";
import { LockQueue } from "./queue.ts";
import { openSession, type ZkSession } from "./session.ts";
import { parseZooKeeperUri, type ZooKeeperConfig } from "./uri.ts";

const MIN_SESSION_MS = 2_000;
const MAX_DEFAULT_SESSION_MS = 60_000;
const OPEN_WAIT_MS = 15_000;

class ZooKeeperBackend implements Backend {
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: true,
    minTtlMs: MIN_SESSION_MS,
    clock: "server",
    maxTtlMs: 366 * 86_400_000,
    listsLocks: false,
    storesLimit: false,
  } as const;
  readonly scheme: string;
  readonly displayUri: string;
  readonly #config: ZooKeeperConfig;
  readonly #queue: LockQueue;
  readonly #closing = new AbortController();
  readonly #sessions = new Set<ZkSession>();
  readonly #holdings = new Holdings();
  #session?: Promise<ZkSession>;

  constructor(config: ZooKeeperConfig) {
    this.#config = config;
    this.#queue = new LockQueue(config.root);
    this.scheme = config.scheme;
    this.displayUri = config.display;
  }

  async #sessionFor(request: LockRequest): Promise<ZkSession> {
    if (this.#closing.signal.aborted) {
      throw new BackendUnavailableError(this.displayUri, "it was closed");
    }
    const pending = this.#session;
    const current = await pending?.catch(() => undefined);
    if (current && !current.lost.aborted) return current;
    if (this.#session === pending) {
      const sessionTimeoutMs = this.#config.sessionTimeoutMs ?? Math.min(
        MAX_DEFAULT_SESSION_MS,
        Math.max(MIN_SESSION_MS, request.expiresInMs),
      );
      this.#session = (async () => {
        const { default: zk } = await import("npm:node-zookeeper-client@1.1.3");
        const session = await openSession(zk as ZkModule, {
          connect: this.#config.connect,
          sessionTimeoutMs,
          digest: this.#config.digest,
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
      return await withTimeout(opening, OPEN_WAIT_MS, request.signal);
    } catch (error) {
      if (this.#session === opening) this.#session = undefined;
      throw error;
    }
  }

  async connect(request: LockRequest): Promise<void> {
    await this.#sessionFor(request);
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    request.signal.throwIfAborted();
    const session = await this.#sessionFor(request);
    const queue = this.#queue;
    let place = queue.get(request.owner);
    // A place on a dead session went with its ephemeral node.
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
    if (place.guardUntil !== undefined) {
      await abortableDelay(place.guardUntil - performance.now(), stop);
    } else if (place.wake) {
      let quit = () => {};
      const stopped = new Promise<void>((_, reject) => {
        quit = () => reject(stop.reason);
        stop.addEventListener("abort", quit, { once: true });
      });
      if (stop.aborted) quit();
      try {
        await Promise.race([place.wake, stopped]);
      } finally {
        stop.removeEventListener("abort", quit);
        stopped.catch(() => {});
      }
    }
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
 * The ZooKeeper backend: `zookeeper://[user:password@]host[:port][,host...][/chroot][?session_timeout=S]`
 * (also `kazoo://`). Nodes live under `<chroot>/coolock/<name>/`. With a
 * user name and password the session authenticates by digest and creates its
 * nodes readable and writable only by that identity. `session_timeout` is in
 * seconds; by default the session timeout is the first lock request's lease
 * time (TTL, or the guard time when longer), from 2 to 60 s, and the server
 * bounds it to 2–20 × its tickTime. Nothing connects until first use.
 *
 * @param uri the backend URI
 *
 * @example
 * ```ts
 * import { zookeeper } from "./mod.ts";
 * const backend = zookeeper("zookeeper://zk1:2181,zk2:2181/apps?session_timeout=10");
 * console.log(backend.displayUri);
 * await backend.close();
 * ```
 */
export function zookeeper(uri: string | URL): Backend {
  return new ZooKeeperBackend(parseZooKeeperUri(String(uri)));
}
