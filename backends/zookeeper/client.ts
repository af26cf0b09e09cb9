/**
 * The one place that names the zookeeper backend's npm client,
 * `node-zookeeper-client@1.1.3` (typed by `@types/node-zookeeper-client@1.1.0`),
 * and loads it on first use; its result codes and stat fields as the recipe
 * reads them; and `ZkLink`, the connection under a client.
 *
 * The client keeps no handle of its retry spin, never times out a
 * handshake, and its close waits for a server that may hang, so `ZkLink`
 * reaches into the client's connection manager: a session really ends on
 * close, and a handshake that a starting or hung server never answers is
 * cut and tried again.
 *
 * @module
 */

// @ts-types="npm:@types/node-zookeeper-client@1.1.0"
import type * as Zk from "npm:node-zookeeper-client@1.1.3";
import { importNpm } from "../../src/npm.ts";
import { withTimeout } from "../../src/timing.ts";

const SPECIFIER = "npm:node-zookeeper-client@1.1.3";

/** The client module, for its constants and `createClient`. */
export type ZkModule = typeof Zk;
/** A client: one session, on one connection at a time. */
export type ZkClient = Zk.Client;
/** An ACL entry. */
export type ZkAcl = Zk.ACL;
/** A node's metadata: zxids, times, versions. */
export type ZkStat = Zk.Stat;
/** A watch event. */
export type ZkEvent = Zk.Event;

let loading: Promise<ZkModule> | undefined;

/** Loads the client, once per process. */
export function loadZooKeeper(): Promise<ZkModule> {
  // A CommonJS package: its export is the module's default.
  loading ??= importNpm<{ default: ZkModule }>(SPECIFIER).then((module) => {
    const zk = module.default;
    tolerateNewCodes(zk);
    return zk;
  });
  loading.catch(() => loading = undefined);
  return loading;
}

/**
 * The client knows the result codes of ZooKeeper 3.4 only, and throws from
 * its socket handler (an uncaught exception) on a newer one, such as
 * `SESSION_MOVED` (−118), which a server sends for a request that arrives
 * on a connection its session has left. Such codes become exceptions like
 * the others, which a call then reports.
 */
function tolerateNewCodes(zk: ZkModule): void {
  const exceptions = zk.Exception as unknown as {
    create(code: number, path?: string): Error;
    tolerant?: boolean;
  };
  if (exceptions.tolerant) return;
  const create = exceptions.create;
  exceptions.create = (code, path) => {
    try {
      return create(code, path);
    } catch {
      return Object.assign(new Error(`Exception: ZooKeeper code ${code}`), {
        code,
        name: "UNKNOWN_CODE",
        path,
      });
    }
  };
  exceptions.tolerant = true;
}

/**
 * The ZooKeeper result codes that the recipe handles itself; calls reject
 * with the client's exception for these, and with `BackendUnavailableError`
 * for everything else.
 */
export const ZkCode = {
  NO_NODE: -101,
  BAD_VERSION: -103,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
} as const;

/** The server refused by ACL: a `BackendUnavailableError` that says so. */
export const NO_AUTH = -102;

/** The server has expired or closed the session: it is gone for good. */
export const SESSION_EXPIRED = -112;

/** The result code of a ZooKeeper exception, or `undefined`. */
export function codeOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/** A rejection handler that swallows the given codes and rethrows the rest. */
export function ignore(...codes: number[]): (error: unknown) => void {
  return (error) => {
    if (!codes.includes(codeOf(error) ?? 0)) throw error;
  };
}

/** A big-endian integer of a stat (czxid, mtime, ephemeralOwner), as a bigint. */
export function bigintOf(bytes: Uint8Array): bigint {
  return bytes.reduce((sum, byte) => (sum << 8n) | BigInt(byte), 0n);
}

/** A stat's time field (ctime, mtime): server epoch milliseconds. */
export function msOf(bytes: Uint8Array): number {
  return Number(bigintOf(bytes));
}

const CLOSE_WAIT_MS = 1_000;
const CONNECTING_STATE = 1;
const CONNECTED = 2;
const CONNECTED_READ_ONLY = 3;
const HANDSHAKE_MS = 1_000;

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

function settled(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return withTimeout(promise.then(() => true), ms).catch(() => false);
}

/**
 * A client's connection, tracked so that `end()` leaves no socket, timer or
 * reconnect behind.
 */
export class ZkLink {
  #handshakeTimer?: ReturnType<typeof setTimeout>;
  #stopped = false;
  #spinning: Promise<void> = Promise.resolve();
  #lastSocketError = "";

  /**
   * Hooks into the client's connection manager.
   *
   * @param client the client, before `connect()`
   */
  constructor(private readonly client: ZkClient) {
    const manager = this.#manager;
    const findNextServer = manager.findNextServer.bind(manager);
    // The client's retry spin is a timer it keeps no handle of: track it, so
    // that end() can wait it out instead of leaking a reconnect.
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
        }, Math.max(HANDSHAKE_MS, client.getSessionTimeout() / 3));
      });
    };
    const onSocketError = manager.onSocketError.bind(manager);
    manager.onSocketError = (error) => {
      this.#lastSocketError = error.message;
      onSocketError(error);
    };
  }

  get #manager(): Manager {
    return (this.client as unknown as { connectionManager: Manager })
      .connectionManager;
  }

  /** Why a socket failed last, for a connect error. */
  get lastSocketError(): string {
    return this.#lastSocketError;
  }

  /** Closes the connection, cutting the socket if the server doesn't answer. */
  async end(): Promise<void> {
    clearTimeout(this.#handshakeTimer);
    this.#stopped = true;
    const manager = this.#manager;
    const socket = manager.socket;
    if (manager.state === CONNECTED || manager.state === CONNECTED_READ_ONLY) {
      try {
        this.client.close();
      } catch { /* the socket just went: nothing to say goodbye on */ }
    } else {
      // Mid-handshake, the client would send its close request before the
      // server's connect response, then read that response as the close's
      // reply and throw from its socket handler: cut the socket instead. A
      // session the server created meanwhile has no nodes yet, or keeps
      // them only until it expires.
      socket?.destroy();
    }
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
  }
}
