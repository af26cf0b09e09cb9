/**
 * The connection under a ZooKeeper session. node-zookeeper-client keeps no
 * handle of its retry spin and never times out a handshake, and its close
 * waits for a server that may hang; this wrapper reaches into the client's
 * connection manager so that a session really ends on close.
 *
 * @module
 */

// @ts-types="npm:@types/node-zookeeper-client@1.1.0"
import type * as Zk from "npm:node-zookeeper-client@1.1.3";
import { withTimeout } from "../../src/timing.ts";

const CLOSE_WAIT_MS = 1_000;
const CLOSED_STATE = -2;
const CONNECTING_STATE = 1;
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
 *
 * @example
 * ```ts ignore
 * import { ZkLink } from "./link.ts";
 * const link = new ZkLink(client);
 * client.connect();
 * await link.end();
 * ```
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
  constructor(private readonly client: Zk.Client) {
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
    if (manager.state !== CLOSED_STATE) {
      try {
        this.client.close();
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
  }
}
