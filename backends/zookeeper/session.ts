/**
 * One ZooKeeper session for the zookeeper backend, on node-zookeeper-client:
 * the node calls the lock recipe makes, each bounded (`zookeeper_liveness.ts`),
 * and `openSession`, which connects in bounded time.
 *
 * @module
 */

import { Buffer } from "node:buffer";
// @ts-types="npm:@types/node-zookeeper-client@1.1.0"
import type * as Zk from "npm:node-zookeeper-client@1.1.3";
import { BackendUnavailableError } from "../../src/backend.ts";
import { withTimeout } from "../../src/timing.ts";
import type { ZkModule, ZkStat } from "./client.ts";
import { ZkLiveness } from "./liveness.ts";

const CONNECT_TIMEOUT_MS = 5_000;
const SPIN_DELAY_MS = 250;

/**
 * How to open a session.
 *
 * @example
 * ```ts
 * import type { SessionOptions } from "./session.ts";
 * const options: SessionOptions = {
 *   connect: "127.0.0.1:2181",
 *   sessionTimeoutMs: 6_000,
 *   display: "zookeeper://127.0.0.1:2181",
 * };
 * ```
 */
export interface SessionOptions {
  /** `host:port,host:port`, without a chroot. */
  readonly connect: string;
  /** The session timeout to ask for; the server bounds it. */
  readonly sessionTimeoutMs: number;
  /** `user:password` for digest auth. */
  readonly digest?: string;
  /** The redacted URI, for messages. */
  readonly display: string;
  /** Gives up the connect. */
  readonly signal?: AbortSignal;
}

/**
 * A live session's node calls.
 *
 * @example
 * ```ts ignore
 * import { openSession } from "./session.ts";
 * const zk = await import("npm:node-zookeeper-client@1.1.3");
 * const session = await openSession(zk.default, {
 *   connect: "127.0.0.1:2181",
 *   sessionTimeoutMs: 6_000,
 *   display: "zookeeper://127.0.0.1:2181",
 * });
 * console.log(await session.exists("/"));
 * await session.close();
 * ```
 */
export class ZkSession extends ZkLiveness {
  readonly #acls: Zk.ACL[];

  /** Use {@linkcode openSession}. */
  constructor(
    zk: ZkModule,
    client: Zk.Client,
    display: string,
    digest: boolean,
  ) {
    super(zk, client, display);
    this.#acls = [
      new zk.ACL(
        zk.Permission.ALL,
        digest ? new zk.Id("auth", "") : new zk.Id("world", "anyone"),
      ),
    ];
  }

  /** Creates a node; resolves its path. */
  create(
    path: string,
    data: Buffer,
    mode: number,
    signal?: AbortSignal,
  ): Promise<string> {
    return this.call(
      (done) => this.client.create(path, data, this.#acls, mode, done),
      signal,
    );
  }

  /**
   * Creates a path of shared persistent nodes, `mkdir -p` style, open to
   * everyone: with the creator's ACL, one digest user would lock every other
   * identity out of the whole namespace.
   */
  mkdirp(path: string, signal?: AbortSignal): Promise<string> {
    const open = [
      new this.zk.ACL(
        this.zk.Permission.ALL,
        new this.zk.Id("world", "anyone"),
      ),
    ];
    return this.call(
      (done) => this.client.mkdirp(path, open, done),
      signal,
    );
  }

  /** The names of a node's children. */
  getChildren(path: string, signal?: AbortSignal): Promise<string[]> {
    return this.call(
      (done) =>
        this.client.getChildren(path, (error, names) => done(error, names)),
      signal,
    );
  }

  /** A node's data and stat. */
  getData(
    path: string,
    signal?: AbortSignal,
  ): Promise<{ data: Buffer; stat: ZkStat }> {
    return this.call(
      (done) =>
        this.client.getData(
          path,
          (error, data, stat) =>
            done(error, { data: data ?? Buffer.alloc(0), stat }),
        ),
      signal,
    );
  }

  /** Sets a node's data if its version matches (`-1`: any). */
  setData(
    path: string,
    data: Buffer,
    version: number,
    signal?: AbortSignal,
  ): Promise<ZkStat> {
    return this.call(
      (done) => this.client.setData(path, data, version, done),
      signal,
    );
  }

  /** Deletes a node if its version matches (`-1`: any). */
  remove(path: string, version: number, signal?: AbortSignal): Promise<void> {
    return this.call(
      (done) => this.client.remove(path, version, (error) => done(error)),
      signal,
    );
  }

  /** A node's stat, or `null` when it doesn't exist. */
  exists(
    path: string,
    signal?: AbortSignal,
    watcher?: (event: { type: number }) => void,
  ): Promise<ZkStat | null> {
    return this.call(
      (done) =>
        watcher
          ? this.client.exists(path, watcher, done)
          : this.client.exists(path, done),
      signal,
    );
  }

  /**
   * Resolves the node's stat, or `null` when it doesn't exist, and calls
   * `onGone` once when it is deleted later. Data changes re-arm the watch.
   */
  async watchGone(
    path: string,
    onGone: () => void,
    signal?: AbortSignal,
  ): Promise<ZkStat | null> {
    const watcher = (event: { type: number }) => {
      if (event.type === this.zk.Event.NODE_DELETED) return onGone();
      this.exists(path, undefined, watcher).then(
        (stat) => stat ?? onGone(),
        () => {},
      );
    };
    const stat = await this.exists(path, signal, watcher);
    if (stat === null) onGone();
    return stat;
  }
}

/**
 * Connects a new session, bounded in time; rejects with
 * `BackendUnavailableError` when no session comes up.
 *
 * @example
 * ```ts ignore
 * import { openSession } from "./session.ts";
 * const zk = await import("npm:node-zookeeper-client@1.1.3");
 * const session = await openSession(zk.default, {
 *   connect: "127.0.0.1:2181",
 *   sessionTimeoutMs: 6_000,
 *   display: "zookeeper://127.0.0.1:2181",
 * });
 * await session.close();
 * ```
 */
export async function openSession(
  zk: ZkModule,
  options: SessionOptions,
): Promise<ZkSession> {
  const startedAt = performance.now();
  const client = zk.createClient(options.connect, {
    sessionTimeout: options.sessionTimeoutMs,
    spinDelay: SPIN_DELAY_MS,
    retries: 0,
  });
  const session = new ZkSession(
    zk,
    client,
    options.display,
    options.digest !== undefined,
  );
  if (options.digest !== undefined) {
    client.addAuthInfo("digest", Buffer.from(options.digest));
  }
  const connected = new Promise<void>((resolve, reject) => {
    client.once("connected", resolve);
    client.once(
      "authenticationFailed",
      () => reject(new Error("the server refused the credentials")),
    );
  });
  client.connect();
  try {
    await withTimeout(connected, CONNECT_TIMEOUT_MS, options.signal);
    // The server's session clock started when it got our connect request, so
    // an answered round trip is the first proof of how long the session lasts.
    await session.exists("/", options.signal);
    session.start(startedAt);
    return session;
  } catch (error) {
    await session.close();
    if (options.signal?.aborted) throw options.signal.reason;
    if (error instanceof BackendUnavailableError) throw error;
    const why = error instanceof DOMException
      ? `no session within ${CONNECT_TIMEOUT_MS / 1000} s${
        session.lastSocketError ? ` (${session.lastSocketError})` : ""
      }`
      : (error as Error).message;
    throw new BackendUnavailableError(options.display, why, { cause: error });
  }
}
