/**
 * One ZooKeeper session of the zookeeper backend: the node calls the recipe
 * makes, each bounded (`liveness.ts`), multi-op transactions, watches, and
 * `openSession`, which connects in bounded time.
 *
 * Nodes are created with the session's ACL: open to everyone without
 * credentials, or only to the session's digest identity (`auth`) with them.
 * The root path is created open, so that one digest user can't lock every
 * other identity out of the whole namespace.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { BackendUnavailableError } from "../../src/backend.ts";
import { withTimeout } from "../../src/timing.ts";
import type { ZkAcl, ZkClient, ZkEvent, ZkModule, ZkStat } from "./client.ts";
import { ZkLiveness } from "./liveness.ts";

const CONNECT_TIMEOUT_MS = 5_000;
const SPIN_DELAY_MS = 250;

/** How to open a session. */
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

/** One operation of a multi-op transaction. */
export type TxnOp =
  | { readonly check: string }
  | {
    readonly setData: string;
    readonly data: Uint8Array;
    readonly version: number;
  }
  | { readonly remove: string; readonly version: number };

/** What each operation of a committed transaction returned, in order. */
export interface TxnResult {
  /** The node's stat after a `setData`; absent for other operations. */
  readonly stat?: ZkStat;
}

/** A node's data and stat. */
export interface NodeData {
  readonly data: Uint8Array;
  readonly stat: ZkStat;
}

/** A live session's node calls. */
export class ZkSession extends ZkLiveness {
  readonly #acls: ZkAcl[];
  readonly #open: ZkAcl[];

  /** Use {@linkcode openSession}. */
  constructor(
    zk: ZkModule,
    client: ZkClient,
    display: string,
    /** The digest identity's user name, when the session has one. */
    readonly user: string | undefined,
  ) {
    super(zk, client, display);
    this.#open = [
      new zk.ACL(zk.Permission.ALL, new zk.Id("world", "anyone")),
    ];
    this.#acls = user === undefined
      ? this.#open
      : [new zk.ACL(zk.Permission.ALL, new zk.Id("auth", ""))];
  }

  /** Creates a node with the session's ACL; resolves its path. */
  create(
    path: string,
    data: Uint8Array,
    mode: number,
    signal?: AbortSignal,
  ): Promise<string> {
    return this.call(
      (done) =>
        this.client.create(path, Buffer.from(data), this.#acls, mode, done),
      signal,
    );
  }

  /** Creates a path of shared persistent nodes, `mkdir -p`, open to everyone. */
  mkdirp(path: string, signal?: AbortSignal): Promise<string> {
    return this.call(
      (done) => this.client.mkdirp(path, this.#open, done),
      signal,
    );
  }

  /** The names of a node's children, and the node's stat. */
  getChildren(
    path: string,
    signal?: AbortSignal,
  ): Promise<{ children: string[]; stat: ZkStat }> {
    return this.call(
      (done) =>
        this.client.getChildren(
          path,
          (error, children, stat) => done(error, { children, stat }),
        ),
      signal,
    );
  }

  /** A node's data and stat. */
  getData(path: string, signal?: AbortSignal): Promise<NodeData> {
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
    data: Uint8Array,
    version: number,
    signal?: AbortSignal,
  ): Promise<ZkStat> {
    return this.call(
      (done) => this.client.setData(path, Buffer.from(data), version, done),
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

  /**
   * Runs the operations atomically: all apply, or none does and it rejects
   * with the code of the first that failed.
   */
  transaction(
    ops: readonly TxnOp[],
    signal?: AbortSignal,
  ): Promise<TxnResult[]> {
    return this.call((done) => {
      const txn = this.client.transaction();
      // The client turns version 0 into -1 (`version || -1`), which would
      // match any version: put the version back on each operation.
      const queued = (txn as unknown as { ops: { version?: number }[] }).ops;
      for (const op of ops) {
        if ("check" in op) txn.check(op.check);
        else if ("setData" in op) {
          txn.setData(op.setData, Buffer.from(op.data), op.version);
          queued[queued.length - 1].version = op.version;
        } else {
          txn.remove(op.remove, op.version);
          queued[queued.length - 1].version = op.version;
        }
      }
      txn.commit((error, results: { stat?: ZkStat }[]) =>
        done(error, results?.map(({ stat }) => ({ stat })))
      );
    }, signal);
  }

  /** A node's stat, or `null` when it doesn't exist. */
  exists(
    path: string,
    signal?: AbortSignal,
    watcher?: (event: ZkEvent) => void,
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
   * `onEvent` once, with the event's type, when the node is deleted or (with
   * `dataToo`) its data changes; a data change re-arms a deletion-only watch.
   */
  async watch(
    path: string,
    onEvent: (type: number) => void,
    options: { dataToo?: boolean; signal?: AbortSignal } = {},
  ): Promise<ZkStat | null> {
    const { NODE_DELETED } = this.zk.Event;
    const watcher = (event: ZkEvent) => {
      if (event.type === NODE_DELETED || options.dataToo) {
        return onEvent(event.type);
      }
      this.exists(path, undefined, watcher).then(
        (stat) => stat ?? onEvent(NODE_DELETED),
        () => {},
      );
    };
    const stat = await this.exists(path, options.signal, watcher);
    if (stat === null) onEvent(NODE_DELETED);
    return stat;
  }
}

/**
 * Connects a new session, bounded in time; rejects with
 * `BackendUnavailableError` when no session comes up.
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
  const user = options.digest?.slice(0, options.digest.indexOf(":"));
  const session = new ZkSession(zk, client, options.display, user);
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
