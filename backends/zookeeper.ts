/**
 * The ZooKeeper backend: the standard lock recipe. Each contender adds an
 * `EPHEMERAL_SEQUENTIAL` node under `/coolock/<name>/`; the lowest sequence
 * number holds the lock, and each waiter watches only its predecessor, so a
 * release wakes one process and waiters are served in arrival order. The
 * fencing token is the lock node's czxid, which the ensemble hands out in
 * strictly increasing order, also across a re-created parent.
 *
 * Guard time: the ephemeral node dies with its session, so the winner writes
 * a guard record `{owner, guardMs}` into the persistent parent node at
 * acquisition. It holds until the parent's mtime + guardMs, judged against a
 * fresh server write (the contender rewrites its own node and reads its
 * mtime), never the local clock, so it outlives a holder killed by SIGKILL.
 * A parent is deleted, by version and only when it has no children, once its
 * guard record has lapsed.
 *
 * Loss: the session is lost once no call was answered for the session
 * timeout minus a margin (a disconnect, a hung server, a partition), before
 * the server can expire it; `EXPIRED` only arrives after a reconnect. A held
 * node deleted out of band, or a claim left unrenewed past its lease, is lost
 * too; the latter deletes its node, as a key with a TTL would expire.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  type Backend,
  BackendUnavailableError,
  type Claim,
  LockLostError,
  type LockRequest,
} from "../src/backend.ts";
import { encodeLockName } from "../src/names.ts";
import { parseBackendUri, secondsParam } from "../src/uri.ts";
import { abortableDelay, withTimeout } from "../src/timing.ts";
import {
  bigintOf,
  codeOf,
  openSession,
  ZkCode,
  type ZkModule,
  type ZkSession,
} from "./zookeeper_session.ts";

const MIN_SESSION_MS = 2_000;
const MAX_DEFAULT_SESSION_MS = 60_000;
const OPEN_WAIT_MS = 15_000;
const NODE = /^lock-(\d{10})$/;

interface Config {
  readonly scheme: string;
  readonly display: string;
  readonly connect: string;
  readonly root: string;
  readonly digest?: string;
  readonly sessionTimeoutMs?: number;
}

function checkChroot(path: string, display: string): string {
  const chroot = path.replace(/\/$/, "");
  const bad = (why: string) =>
    new TypeError(
      `ZooKeeper URI '${display}' has a bad chroot '${path}': ${why}`,
    );
  if (chroot === "") return "";
  if (chroot.split("/").slice(1).some((part) => part === "")) {
    throw bad("it has an empty node name");
  }
  if (chroot.split("/").some((part) => part === "." || part === "..")) {
    throw bad("use no '.' or '..'");
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff]/.test(chroot)) {
    throw bad("it contains a character ZooKeeper forbids");
  }
  if (/^\/zookeeper(\/|$)/.test(chroot)) throw bad("'/zookeeper' is reserved");
  return chroot;
}

function parseConfig(text: string): Config {
  const uri = parseBackendUri(text, 2181);
  const { display } = uri;
  if (uri.scheme !== "zookeeper" && uri.scheme !== "kazoo") {
    throw new TypeError(
      `ZooKeeper URI '${display}' must start with zookeeper:// or kazoo://`,
    );
  }
  if (uri.hosts.length === 0) {
    throw new TypeError(`ZooKeeper URI '${display}' names no host`);
  }
  const ipv6 = uri.hosts.find((host) => host.host.includes(":"));
  if (ipv6) {
    throw new TypeError(
      `ZooKeeper URI '${display}' names the IPv6 address '${ipv6.host}', which the client can't reach: use a host name`,
    );
  }
  if ((uri.username === "") !== (uri.password === undefined)) {
    throw new TypeError(
      `ZooKeeper URI '${display}' needs both a user name and a password for digest auth`,
    );
  }
  for (const name of uri.params.keys()) {
    if (name !== "session_timeout") {
      throw new TypeError(
        `ZooKeeper URI '${display}' has an unknown option '${name}': use session_timeout`,
      );
    }
  }
  const sessionMs = secondsParam(uri, "session_timeout", 0);
  if (uri.params.has("session_timeout") && sessionMs < 1_000) {
    throw new TypeError(
      `ZooKeeper URI '${display}' has a 'session_timeout' of '${
        uri.params.get("session_timeout")
      }': use at least 1 second`,
    );
  }
  return {
    scheme: uri.scheme,
    display,
    connect: uri.hosts.map(({ host, port }) => `${host}:${port}`).join(","),
    root: `${checkChroot(uri.path, display)}/coolock`,
    digest: uri.password === undefined
      ? undefined
      : `${uri.username}:${uri.password}`,
    sessionTimeoutMs: sessionMs || undefined,
  };
}

/** A contender's node in a lock's queue, kept across attempts in wait mode. */
interface Place {
  readonly session: ZkSession;
  readonly parent: string;
  readonly path: string;
  readonly name: string;
  unlisten(): void;
  /** The predecessor watched, and the promise its deletion resolves. */
  watched?: string;
  wake?: Promise<void>;
  /** When an active guard record lapses, on performance.now(). */
  guardUntil?: number;
}

function guardOf(data: Uint8Array): number {
  try {
    const guard = JSON.parse(new TextDecoder().decode(data));
    return typeof guard?.guardMs === "number" ? guard.guardMs : 0;
  } catch {
    return 0;
  }
}

function ignore(...codes: number[]): (error: unknown) => void {
  return (error) => {
    if (!codes.includes(codeOf(error) ?? 0)) throw error;
  };
}

class ZooKeeperClaim implements Claim {
  readonly lost: AbortSignal;
  readonly #deleted = new AbortController();
  #released = false;
  #lapse?: ReturnType<typeof setTimeout>;

  constructor(
    readonly token: bigint,
    private readonly name: string,
    private readonly place: Place,
    /** Server-clock ms when the guard record lapses; 0 without one. */
    private readonly guardEnd: number,
    private readonly parentVersion: number,
    private readonly onDone: (claim: ZooKeeperClaim) => void,
    sentAt: number,
    expiresInMs: number,
  ) {
    this.lost = AbortSignal.any([place.session.lost, this.#deleted.signal]);
    this.#lapseAt(sentAt + expiresInMs);
  }

  /**
   * The session outlives an owner that stopped renewing (its lifecycle gave
   * the lease up as lost while the session held on), so an unrenewed claim
   * lapses like a key with a TTL: its node goes, its guard record stays.
   */
  #lapseAt(due: number): void {
    clearTimeout(this.#lapse);
    this.#lapse = setTimeout(() => {
      this.#deleted.abort(
        new Error("No renewal came in time, so the lock lapsed"),
      );
      this.release(0).catch(() => {});
    }, Math.max(0, due - performance.now()));
  }

  /** Called when the watch sees the held node deleted. */
  gone(): void {
    if (this.#released) return;
    this.#deleted.abort(
      new Error(`The lock node '${this.place.path}' was deleted`),
    );
  }

  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    // The session's own heartbeat keeps it alive; this confirms the node.
    const { session, path } = this.place;
    if (this.lost.aborted) {
      throw new LockLostError(this.name, (this.lost.reason as Error).message);
    }
    const sentAt = performance.now();
    const stat = await session.exists(path, signal);
    if (!stat || bigintOf(stat.czxid) !== this.token) {
      throw new LockLostError(this.name, `the lock node '${path}' is gone`);
    }
    if (!this.#released && !this.lost.aborted) {
      this.#lapseAt(sentAt + expiresInMs);
    }
  }

  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    clearTimeout(this.#lapse);
    this.onDone(this);
    const { session, path, parent } = this.place;
    if (session.lost.aborted) return;
    let tidy = this.guardEnd === 0;
    if (!tidy && holdMs <= 0) {
      const now = await session.setData(path, Buffer.alloc(0), -1);
      tidy = Number(bigintOf(now.mtime)) >= this.guardEnd;
    }
    await session.remove(path, -1).catch(ignore(ZkCode.NO_NODE));
    if (tidy) await tidyParent(session, parent, this.parentVersion);
  }
}

/** Deletes a lock's parent unless a contender came or its guard changed. */
function tidyParent(
  session: ZkSession,
  parent: string,
  version: number,
): Promise<void> {
  return session.remove(parent, version).catch(
    ignore(ZkCode.NOT_EMPTY, ZkCode.NO_NODE, ZkCode.BAD_VERSION),
  );
}

class ZooKeeperBackend implements Backend {
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: true,
    minTtlMs: MIN_SESSION_MS,
    clock: "server",
  } as const;
  readonly scheme: string;
  readonly displayUri: string;
  readonly #config: Config;
  readonly #places = new Map<string, Place>();
  readonly #held = new Set<ZooKeeperClaim>();
  readonly #closing = new AbortController();
  readonly #sessions = new Set<ZkSession>();
  #session?: Promise<ZkSession>;

  constructor(config: Config) {
    this.#config = config;
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
    let place = this.#places.get(request.owner);
    // A place on a dead session went with its ephemeral node.
    if (place && place.session !== session) this.#forget(place);
    place = this.#places.get(request.owner) ??
      await this.#enqueue(session, request);
    try {
      const claim = await this.#examine(place, request);
      if (claim || !request.wait) await this.#leave(place, !claim);
      if (claim && request.signal.aborted) {
        await claim.release(0).catch(() => {});
        throw request.signal.reason;
      }
      return claim;
    } catch (error) {
      await this.#leave(place, true).catch(() => {});
      throw error;
    }
  }

  async #enqueue(session: ZkSession, request: LockRequest): Promise<Place> {
    const parent = `${this.#config.root}/${encodeLockName(request.name)}`;
    const data = Buffer.from(request.owner);
    let path: string;
    for (let tries = 1;; tries++) {
      try {
        path = await session.create(
          `${parent}/lock-`,
          data,
          session.zk.CreateMode.EPHEMERAL_SEQUENTIAL,
          request.signal,
        );
        break;
      } catch (error) {
        // A releasing holder may have just tidied the parent away.
        if (codeOf(error) !== ZkCode.NO_NODE || tries === 3) throw error;
        await session.mkdirp(this.#config.root, request.signal);
        await session.create(
          parent,
          Buffer.alloc(0),
          session.zk.CreateMode.PERSISTENT,
          request.signal,
        ).catch(ignore(ZkCode.NODE_EXISTS));
      }
    }
    const onAbort = () => void this.#leave(place, true, true).catch(() => {});
    const place: Place = {
      session,
      parent,
      path,
      name: path.slice(parent.length + 1),
      unlisten: () => request.signal.removeEventListener("abort", onAbort),
    };
    this.#places.set(request.owner, place);
    request.signal.addEventListener("abort", onAbort, { once: true });
    return place;
  }

  #forget(place: Place): void {
    place.unlisten();
    for (const [owner, kept] of this.#places) {
      if (kept === place) this.#places.delete(owner);
    }
  }

  /**
   * Drops a queue place; `remove` also deletes its node (not when won), and
   * `tidy` the parent when that leaves it empty and unguarded (a waiter
   * giving up; a failed try leaves it to the holder).
   */
  async #leave(place: Place, remove: boolean, tidy = false): Promise<void> {
    if (![...this.#places.values()].includes(place)) return;
    this.#forget(place);
    if (!remove || place.session.lost.aborted) return;
    const { session, path, parent } = place;
    await session.remove(path, -1).catch(ignore(ZkCode.NO_NODE));
    if (!tidy) return;
    const { data, stat } = await session.getData(parent);
    if (data.length === 0) await tidyParent(session, parent, stat.version);
  }

  async #examine(
    place: Place,
    request: LockRequest,
  ): Promise<ZooKeeperClaim | undefined> {
    const { session, parent, path, name } = place;
    const { signal } = request;
    const startedAt = performance.now();
    const queue = (await session.getChildren(parent, signal))
      .filter((child) => NODE.test(child)).sort();
    const index = queue.indexOf(name);
    place.guardUntil = undefined;
    if (index < 0) {
      // Deleted out of band: the next attempt queues again, at the back.
      this.#forget(place);
      return undefined;
    }
    if (index > 0) {
      const predecessor = `${parent}/${queue[index - 1]}`;
      if (request.wait && place.watched !== predecessor) {
        place.watched = predecessor;
        place.wake = new Promise<void>((resolve) => {
          session.watchGone(predecessor, resolve, signal).catch(() => {
            place.watched = undefined;
            resolve();
          });
        });
      }
      return undefined;
    }
    const { data, stat: parentStat } = await session.getData(parent, signal);
    const heldGuardMs = guardOf(data);
    if (heldGuardMs > 0) {
      const now = await session.setData(path, Buffer.from(request.owner), -1);
      const remaining = Number(bigintOf(parentStat.mtime)) + heldGuardMs -
        Number(bigintOf(now.mtime));
      if (remaining > 0) {
        place.guardUntil = performance.now() + remaining;
        return undefined;
      }
    }
    let guardEnd = 0;
    let parentVersion = parentStat.version;
    if (request.guardMs > 0 || data.length > 0) {
      const record = request.guardMs > 0
        ? Buffer.from(
          JSON.stringify({ owner: request.owner, guardMs: request.guardMs }),
        )
        : Buffer.alloc(0);
      const written = await session.setData(
        parent,
        record,
        parentStat.version,
        signal,
      );
      parentVersion = written.version;
      if (request.guardMs > 0) {
        guardEnd = Number(bigintOf(written.mtime)) + request.guardMs;
      }
    }
    let deleted = false;
    let onDeleted: () => void = () => deleted = true;
    const stat = await session.watchGone(path, () => onDeleted(), signal);
    if (!stat) return undefined;
    const claim = new ZooKeeperClaim(
      bigintOf(stat.czxid),
      request.name,
      place,
      guardEnd,
      parentVersion,
      (done) => this.#held.delete(done),
      startedAt,
      request.expiresInMs,
    );
    onDeleted = () => claim.gone();
    if (deleted) claim.gone();
    this.#held.add(claim);
    return claim;
  }

  async waitForChange(
    request: LockRequest,
    signal: AbortSignal,
  ): Promise<void> {
    const place = this.#places.get(request.owner);
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
    for (const claim of [...this.#held]) await claim.release(0).catch(() => {});
    for (const place of [...this.#places.values()]) this.#forget(place);
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
 * import { zookeeper } from "./zookeeper.ts";
 * const backend = zookeeper("zookeeper://zk1:2181,zk2:2181/apps?session_timeout=10");
 * console.log(backend.displayUri);
 * await backend.close();
 * ```
 */
export function zookeeper(uri: string | URL): Backend {
  return new ZooKeeperBackend(parseConfig(String(uri)));
}
