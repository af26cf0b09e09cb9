/**
 * One ZooKeeper session for the zookeeper backend, on node-zookeeper-client.
 * The client queues requests forever while disconnected and never notices a
 * hung server (its pings expect no answer), so this wrapper bounds every call,
 * judges liveness by answered round trips, and really ends the connection on
 * close.
 *
 * @module
 */

import { Buffer } from "node:buffer";
// @ts-types="npm:@types/node-zookeeper-client@1.1.0"
import type * as Zk from "npm:node-zookeeper-client@1.1.3";
import { BackendUnavailableError } from "../src/backend.ts";
import { withTimeout } from "../src/timing.ts";

/**
 * The node-zookeeper-client module, as the backend imports it.
 *
 * @example
 * ```ts
 * import type { ZkModule } from "./zookeeper_session.ts";
 * const modes = (zk: ZkModule) => zk.CreateMode.EPHEMERAL_SEQUENTIAL;
 * ```
 */
export type ZkModule = typeof Zk;

/**
 * A node's metadata, as ZooKeeper returns it.
 *
 * @example
 * ```ts
 * import { bigintOf, type ZkStat } from "./zookeeper_session.ts";
 * const created = (stat: ZkStat) => bigintOf(stat.czxid);
 * ```
 */
export type ZkStat = Zk.Stat;

/**
 * The ZooKeeper result codes that the lock recipe handles itself; calls
 * reject with the client's exception for these, and with
 * `BackendUnavailableError` for everything else.
 *
 * @example
 * ```ts
 * import { codeOf, ZkCode } from "./zookeeper_session.ts";
 * const missing = (error: unknown) => codeOf(error) === ZkCode.NO_NODE;
 * ```
 */
export const ZkCode = {
  NO_NODE: -101,
  BAD_VERSION: -103,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
} as const;

const HANDLED = new Set<number>(Object.values(ZkCode));
/** Codes that say nothing reached the server. */
const NO_ANSWER = new Set([-4, -7, -112, -115]);
const CALL_TIMEOUT_MS = 5_000;
const CONNECT_TIMEOUT_MS = 5_000;
const CLOSE_WAIT_MS = 1_000;
const SPIN_DELAY_MS = 250;
const CLOSED_STATE = -2;
const CONNECTING_STATE = 1;
const HANDSHAKE_MS = 1_000;

/**
 * The result code of a ZooKeeper exception, or `undefined`.
 *
 * @example
 * ```ts
 * import { codeOf } from "./zookeeper_session.ts";
 * console.log(codeOf(new Error("x"))); // undefined
 * ```
 */
export function codeOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/**
 * A big-endian integer of a stat (czxid, mtime), as a bigint.
 *
 * @example
 * ```ts
 * import { bigintOf } from "./zookeeper_session.ts";
 * console.log(bigintOf(new Uint8Array([0, 1]))); // 1n
 * ```
 */
export function bigintOf(bytes: Uint8Array): bigint {
  return bytes.reduce((sum, byte) => (sum << 8n) | BigInt(byte), 0n);
}

/** The parts of the client's connection manager that close() must reach. */
interface Manager {
  state: number;
  socket?: {
    destroyed: boolean;
    destroy(): void;
    once(event: "close", listener: () => void): void;
  };
  connectTimeoutHandler?: ReturnType<typeof setTimeout> | null;
  findNextServer(callback: (server: unknown) => void): void;
  onSocketError(error: Error): void;
}

/**
 * How to open a session.
 *
 * @example
 * ```ts
 * import type { SessionOptions } from "./zookeeper_session.ts";
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

function settled(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return withTimeout(promise.then(() => true), ms).catch(() => false);
}

/**
 * A live session: bounded calls, and `lost` aborting once no answer was
 * confirmed for the session timeout minus a margin (the server may then
 * have expired it), or the server said it expired.
 *
 * @example
 * ```ts ignore
 * import { openSession } from "./zookeeper_session.ts";
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
export class ZkSession {
  readonly #acls: Zk.ACL[];
  readonly #client: Zk.Client;
  readonly #lost = new AbortController();
  #confirmedAt = -Infinity;
  #beatTimer?: ReturnType<typeof setTimeout>;
  #handshakeTimer?: ReturnType<typeof setTimeout>;
  #deadlineTimer?: ReturnType<typeof setTimeout>;
  #beating = false;
  #closed?: Promise<void>;
  #stopped = false;
  #spinning: Promise<void> = Promise.resolve();
  #lastSocketError = "";
  #lostWhy = "";

  /** Use {@linkcode openSession}. */
  constructor(
    readonly zk: ZkModule,
    client: Zk.Client,
    readonly display: string,
    digest: boolean,
  ) {
    this.#client = client;
    this.#acls = [
      new zk.ACL(
        zk.Permission.ALL,
        digest ? new zk.Id("auth", "") : new zk.Id("world", "anyone"),
      ),
    ];
    const manager = this.#manager;
    const findNextServer = manager.findNextServer.bind(manager);
    // The client's retry spin is a timer it keeps no handle of: track it, so
    // that close() can wait it out instead of leaking a reconnect.
    manager.findNextServer = (callback) => {
      let done = () => {};
      this.#spinning = new Promise((resolve) => done = resolve);
      findNextServer((server) => {
        done();
        if (this.#stopped) return;
        callback(server);
        // Nor does it time out a handshake that a starting or hung server
        // never answers: cut such a socket, so that the client tries again.
        const socket = manager.socket;
        clearTimeout(this.#handshakeTimer);
        this.#handshakeTimer = setTimeout(() => {
          if (manager.state === CONNECTING_STATE && manager.socket === socket) {
            socket?.destroy();
          }
        }, Math.max(HANDSHAKE_MS, this.timeoutMs / 3));
      });
    };
    const onSocketError = manager.onSocketError.bind(manager);
    manager.onSocketError = (error) => {
      this.#lastSocketError = error.message;
      onSocketError(error);
    };
    client.on("state", (state) => {
      if (state.code === zk.State.EXPIRED.code) {
        this.lose("the server expired the session");
      } else if (state.code === zk.State.AUTH_FAILED.code) {
        this.lose("the server refused the credentials");
      }
    });
  }

  get #manager(): Manager {
    return (this.#client as unknown as { connectionManager: Manager })
      .connectionManager;
  }

  /** Aborts when the session is known or feared gone. */
  get lost(): AbortSignal {
    return this.#lost.signal;
  }

  /** Why a socket failed last, for a connect error. */
  get lastSocketError(): string {
    return this.#lastSocketError;
  }

  /** The timeout the server granted, in milliseconds. */
  get timeoutMs(): number {
    return this.#client.getSessionTimeout();
  }

  /** Starts the heartbeat and the lost-session deadline. */
  start(confirmedAt: number): void {
    this.#confirm(confirmedAt);
    this.#beat();
    this.#armDeadline();
  }

  #confirm(sentAt: number): void {
    this.#confirmedAt = Math.max(this.#confirmedAt, sentAt);
  }

  get #marginMs(): number {
    return Math.max(250, this.timeoutMs / 10);
  }

  #beat(): void {
    this.#beatTimer = setTimeout(() => {
      if (!this.#beating) {
        this.#beating = true;
        this.exists("/").catch(() => {}).finally(() => this.#beating = false);
      }
      this.#beat();
    }, this.timeoutMs / 5);
  }

  #armDeadline(): void {
    const due = this.#confirmedAt + this.timeoutMs - this.#marginMs -
      performance.now();
    if (due <= 0) {
      this.lose(
        `no answer from ZooKeeper for ${
          (this.timeoutMs - this.#marginMs) / 1000
        } s, so the session may have expired`,
      );
      return;
    }
    this.#deadlineTimer = setTimeout(() => this.#armDeadline(), due);
  }

  /** Declares the session gone and ends it, so its nodes go too. */
  lose(why: string): void {
    if (this.#lost.signal.aborted) return;
    this.#lostWhy = `the ZooKeeper session is gone: ${why}`;
    this.#lost.abort(new Error(`The ZooKeeper session is gone: ${why}`));
    void this.close();
  }

  #call<T>(
    start: (done: (error: unknown, value?: T) => void) => void,
    signal?: AbortSignal,
  ): Promise<T> {
    if (this.#lost.signal.aborted) {
      return Promise.reject(this.#unavailable());
    }
    const sentAt = performance.now();
    const pending = new Promise<T>((resolve, reject) =>
      start((error, value) => {
        // A late answer still proves the server heard us at sentAt or later.
        const code = codeOf(error);
        if (!error || (code !== undefined && !NO_ANSWER.has(code))) {
          this.#confirm(sentAt);
        }
        if (error) reject(error);
        else resolve(value as T);
      })
    );
    const stop = signal
      ? AbortSignal.any([signal, this.#lost.signal])
      : this.#lost.signal;
    return withTimeout(pending, CALL_TIMEOUT_MS, stop).catch((error) => {
      if (signal?.aborted) throw signal.reason;
      const code = codeOf(error);
      if (code !== undefined && HANDLED.has(code)) throw error;
      if (this.#lost.signal.aborted) throw this.#unavailable();
      const why = error instanceof DOMException
        ? `no answer within ${CALL_TIMEOUT_MS / 1000} s`
        : `ZooKeeper answered ${String(error)}`;
      throw new BackendUnavailableError(this.display, why, { cause: error });
    });
  }

  #unavailable(): BackendUnavailableError {
    return new BackendUnavailableError(
      this.display,
      this.#lostWhy,
    );
  }

  /** Creates a node; resolves its path. */
  create(
    path: string,
    data: Buffer,
    mode: number,
    signal?: AbortSignal,
  ): Promise<string> {
    return this.#call(
      (done) => this.#client.create(path, data, this.#acls, mode, done),
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
    return this.#call(
      (done) => this.#client.mkdirp(path, open, done),
      signal,
    );
  }

  /** The names of a node's children. */
  getChildren(path: string, signal?: AbortSignal): Promise<string[]> {
    return this.#call(
      (done) =>
        this.#client.getChildren(path, (error, names) => done(error, names)),
      signal,
    );
  }

  /** A node's data and stat. */
  getData(
    path: string,
    signal?: AbortSignal,
  ): Promise<{ data: Buffer; stat: ZkStat }> {
    return this.#call(
      (done) =>
        this.#client.getData(
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
    return this.#call(
      (done) => this.#client.setData(path, data, version, done),
      signal,
    );
  }

  /** Deletes a node if its version matches (`-1`: any). */
  remove(path: string, version: number, signal?: AbortSignal): Promise<void> {
    return this.#call(
      (done) => this.#client.remove(path, version, (error) => done(error)),
      signal,
    );
  }

  /** A node's stat, or `null` when it doesn't exist. */
  exists(
    path: string,
    signal?: AbortSignal,
    watcher?: (event: { type: number }) => void,
  ): Promise<ZkStat | null> {
    return this.#call(
      (done) =>
        watcher
          ? this.#client.exists(path, watcher, done)
          : this.#client.exists(path, done),
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

  /** Ends the session and every timer and socket of it. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      if (!this.#lost.signal.aborted) {
        this.#lostWhy = "the backend was closed";
        this.#lost.abort(new Error("The ZooKeeper backend was closed"));
      }
      clearTimeout(this.#beatTimer);
      clearTimeout(this.#deadlineTimer);
      clearTimeout(this.#handshakeTimer);
      this.#stopped = true;
      const manager = this.#manager;
      if (manager.state !== CLOSED_STATE) {
        try {
          this.#client.close();
        } catch { /* no socket yet: nothing to say goodbye on */ }
      }
      const socket = manager.socket;
      if (socket && !socket.destroyed) {
        const gone = new Promise<void>((resolve) =>
          socket.once("close", resolve)
        );
        // A hung server never answers the close request: cut the socket.
        if (!(await settled(gone, CLOSE_WAIT_MS))) {
          socket.destroy();
          await settled(gone, CLOSE_WAIT_MS);
        }
      }
      clearTimeout(manager.connectTimeoutHandler ?? undefined);
      await this.#spinning;
    })();
    return this.#closed;
  }
}

/**
 * Connects a new session, bounded in time; rejects with
 * `BackendUnavailableError` when no session comes up.
 *
 * @example
 * ```ts ignore
 * import { openSession } from "./zookeeper_session.ts";
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
