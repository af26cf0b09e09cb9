/**
 * The memcached backend's sockets, and the one place that names its npm
 * client (`memjs@1.3.2`), loaded on first use. memjs has no compare-and-swap
 * call, but its `Server` sends any request and routes the answer by the
 * request's opaque number; the CAS value rides in the header, both ways.
 *
 * Each new socket first sends a NOOP request, whose second byte (opcode
 * 0x0a) is `\n`: memcached answers it in its binary protocol, while a Redis
 * (or a memcached that only speaks text) reads a line and answers an error,
 * so the first byte back tells "not a memcached server" at once instead of
 * a timeout.
 *
 * A socket that closes or is reset (a restart, a cut network, a hung
 * server) fires `dropped`, so that holders check their locks at once.
 *
 * @module
 */

// @ts-types="npm:@types/memjs@1.3.3"
import type { Server } from "npm:memjs@1.3.2";
import { importNpm } from "../../src/npm.ts";
import type { HostPort } from "../../src/uri.ts";
import {
  Op,
  type Reply,
  type RequestBody,
  RESPONSE_MAGIC,
} from "./protocol.ts";

/** NOOP: as a byte, the newline that ends a text-protocol line. */
const NOOP = 0x0a;
/** The probe's opaque number; requests count from 1. */
const PROBE_OPAQUE = 0;

interface SocketLike {
  readonly closed: boolean;
  on(event: string, listener: (...args: never[]) => void): void;
  once(event: string, listener: (chunk: Uint8Array) => void): void;
  removeAllListeners(): void;
}

type MemjsModule = typeof import("npm:memjs@1.3.2");
const SPECIFIER = "npm:memjs@1.3.2";

/** What the connection tells the backend. */
export interface ConnectionEvents {
  /** A socket to server `index` closed or was reset. */
  dropped(index: number): void;
}

/** The answer to a server's first request on a socket that is not memcached's. */
export class NotMemcachedError extends Error {
  constructor(address: string) {
    super(
      `${address} is not a memcached server that speaks the binary protocol`,
    );
    this.name = "NotMemcachedError";
  }
}

/**
 * A memcached cluster as memjs servers, one socket each. A key's server is
 * chosen by hashing its route string, so every client that lists the same
 * hosts in the same order finds the same server.
 */
export class Connection {
  #seq = 0;
  #closed = false;
  readonly #pending = new Set<(error: Error) => void>();
  readonly #closing = new Set<Promise<void>>();
  readonly #probed = new WeakSet<object>();

  private constructor(
    private readonly memjs: MemjsModule,
    private readonly servers: readonly Server[],
    private readonly hosts: readonly HostPort[],
    private readonly timeoutMs: number,
    private readonly events: ConnectionEvents,
  ) {}

  /** Loads memjs and makes one server per host; sockets open on first use. */
  static async open(
    hosts: readonly HostPort[],
    options: { timeoutMs: number; username?: string; password?: string },
    events: ConnectionEvents = { dropped: () => {} },
  ): Promise<Connection> {
    const memjs = await importNpm<MemjsModule>(SPECIFIER);
    const servers = hosts.map(({ host, port }) => {
      // memjs reads MEMCACHIER_* and MEMCACHE_* variables when no
      // credentials are given; give placeholders, then the URI's own, so
      // that it neither needs env access nor picks up a stray password.
      const server = new memjs.Server(host, port, "-", "-", {
        // memjs's own request timeout only half-closes a socket; this class
        // times requests out itself and destroys the socket.
        timeout: 600,
        conntimeout: options.timeoutMs / 1000,
      });
      const credentials = server as unknown as {
        username?: string;
        password?: string;
      };
      credentials.username = options.username;
      credentials.password = options.password;
      return server;
    });
    return new Connection(memjs, servers, hosts, options.timeoutMs, events);
  }

  /** How many servers. */
  get size(): number {
    return this.servers.length;
  }

  /** The index of the route's server. */
  indexOf(route: string): number {
    return this.memjs.Utils.hashCode(route) % this.servers.length;
  }

  /** `host:port` of server `index`. */
  addressOf(index: number): string {
    const { host, port } = this.hosts[index];
    return `${host}:${port}`;
  }

  /** Sends one request to the route's server and resolves its answer. */
  send(
    route: string,
    op: number,
    key: string,
    body: RequestBody,
    signal?: AbortSignal,
  ): Promise<Reply> {
    return this.#request(this.indexOf(route), op, key, body, signal, false)
      .then((replies) => replies[0]);
  }

  /** Sends a STAT request to server `index`; resolves its name-value pairs. */
  async stats(
    index: number,
    group = "",
    signal?: AbortSignal,
  ): Promise<Record<string, string>> {
    const replies = await this.#request(
      index,
      Op.stat,
      group,
      {},
      signal,
      true,
    );
    const decoder = new TextDecoder();
    const stats: Record<string, string> = {};
    for (const reply of replies) {
      const [name, value] = decoder.decode(reply.value).split("\0");
      if (name) stats[name] = value;
    }
    return stats;
  }

  /** Sends a VERSION request to server `index`. */
  async version(index: number, signal?: AbortSignal): Promise<string> {
    const [reply] = await this.#request(
      index,
      Op.version,
      "",
      {},
      signal,
      false,
    );
    return new TextDecoder().decode(reply.value);
  }

  #nextSeq(): number {
    do this.#seq = (this.#seq + 1) >>> 0; while (this.#seq === PROBE_OPAQUE);
    return this.#seq;
  }

  #request(
    index: number,
    op: number,
    key: string,
    body: RequestBody,
    signal: AbortSignal | undefined,
    multi: boolean,
  ): Promise<Reply[]> {
    if (this.#closed) {
      return Promise.reject(new Error("the backend is closed"));
    }
    const server = this.servers[index];
    const seq = this.#nextSeq();
    const request = this.memjs.Utils.makeRequestBuffer(
      op,
      key,
      (body.extras ?? new Uint8Array()) as Parameters<
        MemjsModule["Utils"]["makeRequestBuffer"]
      >[2],
      body.value ?? "",
      seq,
    );
    if (body.cas) request.set(body.cas, 16);
    return new Promise<Reply[]>((resolve, reject) => {
      const replies: Reply[] = [];
      const finish = (error: Error | undefined) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#pending.delete(fail);
        if (error) reject(error);
        else resolve(replies);
      };
      const fail = (error: Error) => finish(error);
      const onAbort = () => finish(signal!.reason);
      const timer = setTimeout(() => {
        // The server hangs or the path to it is gone: start over next time.
        this.#reset(
          index,
          new Error(`no answer within ${this.timeoutMs / 1000} s`),
        );
      }, this.timeoutMs);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.add(fail);
      const onResponse = (response: {
        header: { status: number; cas: Uint8Array; totalBodyLength: number };
        key: Uint8Array;
        val: Uint8Array;
      }) => {
        // A STAT answer is one packet per statistic, ended by an empty one.
        if (multi && response.header.totalBodyLength > 0) {
          const name = new TextDecoder().decode(response.key);
          const value = new TextDecoder().decode(response.val);
          replies.push({
            status: response.header.status,
            value: new TextEncoder().encode(`${name}\0${value}`),
            cas: response.header.cas,
          });
          return;
        }
        if (!multi) {
          replies.push({
            status: response.header.status,
            value: response.val,
            cas: response.header.cas,
          });
        }
        finish(undefined);
      };
      (onResponse as { quiet?: boolean }).quiet = multi;
      server.onResponse(seq, onResponse);
      server.onError(
        seq,
        (error: unknown) =>
          finish(error instanceof Error ? error : new Error(String(error))),
      );
      this.#probe(index);
      server.write(request);
    });
  }

  /**
   * Before the first request on a new socket, sends the probe and watches
   * the first byte that comes back.
   */
  #probe(index: number): void {
    const server = this.servers[index];
    const socketOf = () =>
      (server as unknown as { _socket?: SocketLike })._socket;
    if (socketOf()) return;
    server.onResponse(PROBE_OPAQUE, () => {});
    server.onError(PROBE_OPAQUE, () => {});
    const probe = this.memjs.Utils.makeRequestBuffer(
      NOOP,
      "",
      "",
      "",
      PROBE_OPAQUE,
    );
    server.write(probe);
    // memjs made the socket in write(), synchronously.
    const socket = socketOf();
    if (!socket || this.#probed.has(socket)) return;
    this.#probed.add(socket);
    socket.once("data", (chunk: Uint8Array) => {
      if (chunk[0] !== RESPONSE_MAGIC) {
        this.#reset(index, new NotMemcachedError(this.addressOf(index)));
      }
    });
    socket.on("close", () => {
      if (!this.#closed) this.events.dropped(index);
    });
  }

  /**
   * Destroys the server's socket and fails its requests. memjs's handlers
   * come off first: a socket to a hung server may close only once the
   * server wakes, and memjs's late close handler would then orphan the
   * socket opened since.
   */
  #reset(index: number, error: Error): void {
    const server = this.servers[index];
    const socket = (server as unknown as { _socket?: SocketLike })._socket;
    if (socket && !socket.closed) {
      socket.removeAllListeners();
      socket.on("error", () => {});
      const closed = new Promise<void>((resolve) =>
        socket.on("close", () => resolve())
      );
      this.#closing.add(closed);
      void closed.then(() => this.#closing.delete(closed));
    }
    server.error(error);
    if (!this.#closed) this.events.dropped(index);
  }

  /** Fails every request in flight and destroys every socket. */
  async close(): Promise<void> {
    this.#closed = true;
    const closed = new Error("the backend is closed");
    for (const fail of [...this.#pending]) fail(closed);
    this.servers.forEach((_, index) => this.#reset(index, closed));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(this.#closing),
      new Promise((resolve) => timer = setTimeout(resolve, 1_000)),
    ]);
    clearTimeout(timer);
  }
}
