/**
 * Raw memcached binary-protocol requests over memjs's server connections.
 * memjs has no compare-and-swap call, but its `Server` sends any request and
 * routes the answer by the request's opaque number; the CAS value rides in
 * the header, both ways.
 *
 * @module
 */

// @ts-types="npm:@types/memjs@1.3.3"
import type { Server } from "npm:memjs@1.3.2";
import type { HostPort } from "../../src/uri.ts";

/** The binary-protocol opcodes the memcached backend uses. */
export const Op = {
  get: 0x00,
  set: 0x01,
  add: 0x02,
  delete: 0x04,
  increment: 0x05,
} as const;

/** Response statuses the backend tells apart; others are errors. */
export const Status = {
  ok: 0x00,
  notFound: 0x01,
  exists: 0x02,
  notStored: 0x05,
} as const;

/**
 * One answer: the status, the value, and the item's CAS for a later
 * compare-and-swap.
 *
 * @example
 * ```ts
 * import { type Reply, Status } from "./protocol.ts";
 * const found = (reply: Reply) => reply.status === Status.ok;
 * ```
 */
export interface Reply {
  /** The response status, such as {@linkcode Status.exists}. */
  readonly status: number;
  /** The value, empty for most writes. */
  readonly value: Uint8Array;
  /** The item's CAS, 8 bytes. */
  readonly cas: Uint8Array;
}

/** What one request carries besides its opcode and key. */
export interface RequestBody {
  /** The extras: flags and expiry, or the increment's fields. */
  readonly extras?: Uint8Array;
  /** The value to store. */
  readonly value?: string;
  /** Only act when the item's CAS is still this one. */
  readonly cas?: Uint8Array;
}

interface SocketLike {
  readonly closed: boolean;
  on(event: string, listener: () => void): void;
  removeAllListeners(): void;
}

/**
 * A memcached cluster as memjs servers, one connection each. A key's server
 * is chosen by hashing its route string, so every client that lists the
 * same hosts in the same order finds the same server.
 *
 * @example
 * ```ts ignore
 * import { Connection, Op } from "./protocol.ts";
 * const connection = await Connection.open([{ host: "127.0.0.1", port: 11211 }], {
 *   timeoutMs: 3_000,
 * });
 * const reply = await connection.send("k", Op.get, "k", {});
 * connection.close();
 * ```
 */
export class Connection {
  #seq = 0;
  readonly #pending = new Set<(error: Error) => void>();
  readonly #closing = new Set<Promise<void>>();

  private constructor(
    private readonly servers: readonly Server[],
    private readonly timeoutMs: number,
    private readonly hash: (text: string) => number,
    private readonly makeRequest: (
      op: number,
      key: string,
      extras: Uint8Array,
      value: string,
      opaque: number,
    ) => Uint8Array,
  ) {}

  /**
   * Loads memjs and makes one server per host; connections open on first
   * use.
   */
  static async open(
    hosts: readonly HostPort[],
    options: { timeoutMs: number; username?: string; password?: string },
  ): Promise<Connection> {
    // @ts-types="npm:@types/memjs@1.3.3"
    const memjs = await import("npm:memjs@1.3.2");
    const servers = hosts.map(({ host, port }) =>
      new memjs.Server(host, port, options.username, options.password, {
        // memjs's own request timeout only half-closes a socket; this class
        // times requests out itself and destroys the socket.
        timeout: 600,
        conntimeout: options.timeoutMs / 1000,
      })
    );
    return new Connection(
      servers,
      options.timeoutMs,
      memjs.Utils.hashCode,
      (op, key, extras, value, opaque) =>
        memjs.Utils.makeRequestBuffer(
          op,
          key,
          extras as Parameters<typeof memjs.Utils.makeRequestBuffer>[2],
          value,
          opaque,
        ),
    );
  }

  /** Sends one request to the route's server and resolves its answer. */
  send(
    route: string,
    op: number,
    key: string,
    body: RequestBody,
    signal?: AbortSignal,
  ): Promise<Reply> {
    const server = this.servers[this.hash(route) % this.servers.length];
    this.#seq = (this.#seq + 1) >>> 0;
    const seq = this.#seq;
    const request = this.makeRequest(
      op,
      key,
      body.extras ?? new Uint8Array(),
      body.value ?? "",
      seq,
    );
    if (body.cas) request.set(body.cas, 16);
    return new Promise<Reply>((resolve, reject) => {
      const finish = (error: Error | undefined, reply?: Reply) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#pending.delete(fail);
        if (error) reject(error);
        else resolve(reply!);
      };
      const fail = (error: Error) => finish(error);
      const onAbort = () => finish(signal!.reason);
      const timer = setTimeout(() => {
        // The server hangs or the path to it is gone: start over next time.
        this.#reset(
          server,
          new Error(`no answer within ${this.timeoutMs / 1000} s`),
        );
      }, this.timeoutMs);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.add(fail);
      server.onResponse(seq, (response) =>
        finish(undefined, {
          status: response.header.status,
          value: response.val,
          cas: response.header.cas,
        }));
      server.onError(
        seq,
        (error: unknown) =>
          finish(error instanceof Error ? error : new Error(String(error))),
      );
      server.write(request);
    });
  }

  /**
   * Destroys the server's socket and fails its requests. memjs's handlers
   * come off first: a socket to a hung server may close only once the
   * server wakes, and memjs's late close handler would then orphan the
   * socket opened since.
   */
  #reset(server: Server, error: Error): void {
    const socket = (server as unknown as { _socket?: SocketLike })._socket;
    if (socket && !socket.closed) {
      socket.removeAllListeners();
      socket.on("error", () => {});
      const closed = new Promise<void>((resolve) =>
        socket.on("close", resolve)
      );
      this.#closing.add(closed);
      void closed.then(() => this.#closing.delete(closed));
    }
    server.error(error);
  }

  /** Fails every request in flight and destroys every socket. */
  async close(): Promise<void> {
    const closed = new Error("the backend is closed");
    for (const fail of [...this.#pending]) fail(closed);
    for (const server of this.servers) this.#reset(server, closed);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(this.#closing),
      new Promise((resolve) => timer = setTimeout(resolve, 1_000)),
    ]);
    clearTimeout(timer);
  }
}
