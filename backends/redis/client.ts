/**
 * The Redis backend's connections, and the one place that names its npm
 * client (`ioredis@6.0.0`), loaded on first use. Two connections per
 * backend: one for commands and one for pub/sub, each opened on first use,
 * bounded, and replaced after a timeout or when the server closed it, so
 * that a hung server never blocks later calls.
 *
 * Opening a connection also checks what it reached, because ioredis does
 * not: it selects the database itself (ioredis ignores a failed `SELECT`
 * and stays on 0), reads `INFO server` (the run_id the acquire script
 * compares with its marker), and says "is not a Redis server" where ioredis
 * would say `Unknown RESP type`.
 *
 * When a ready command connection drops (a restart, a cut network),
 * `dropped` fires, so that holders check their locks at once rather than
 * at their next renewal.
 *
 * @module
 */

import type { Redis as RedisClient, RedisOptions } from "npm:ioredis@6.0.0";
import { importNpm } from "../../src/npm.ts";

const SPECIFIER = "npm:ioredis@6.0.0";
import { BackendUnavailableError } from "../../src/backend.ts";
import { withTimeout } from "../../src/timing.ts";

export type { RedisClient, RedisOptions };

/** What the connections need of a checked URI (uri.ts's `RedisTarget`). */
export interface LinkTarget {
  /** The URI with secrets replaced by `***`. */
  readonly display: string;
  /** `host:port` of the server, or of the first Sentinel, for messages. */
  readonly address: string;
  /** The database number; selected here, not by ioredis. */
  readonly db: number;
  /** Whether the hosts are Sentinels. */
  readonly sentinel: boolean;
  /** Options for ioredis's `new Redis()`, with bounded connection attempts. */
  readonly options: Readonly<Record<string, unknown>>;
  /** How long one connection attempt may take, in milliseconds. */
  readonly connectTimeoutMs: number;
  /** Secrets that must be scrubbed from any server or client message. */
  readonly secrets: readonly string[];
}

/** Which connection: commands, or the subscriber. */
export type Kind = "main" | "sub";

/** What `INFO server` said when a connection opened. */
export interface ServerInfo {
  /**
   * The server process's run_id, which changes at every start; empty when
   * the server refuses INFO.
   */
  readonly runId: string;
}

/** A connection: `client` and `info` are set once it is ready. */
interface Link {
  ready: Promise<RedisClient>;
  client?: RedisClient;
  info?: ServerInfo;
}

/** Rejects when `signal` aborts, else settles like `promise`. */
export function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal,
): Promise<T> {
  return withTimeout(promise, 2 ** 31 - 1, signal);
}

/** What the connections tell the backend. */
export interface LinkEvents {
  /** A message arrived on a subscribed channel. */
  message(channel: string): void;
  /** The subscriber went, or the links closed: waiters must look again. */
  wake(): void;
  /** A ready command connection dropped: holders must look at their keys. */
  dropped(): void;
}

/** Loads the client class, once per process. */
export function loadRedis(): Promise<typeof RedisClient> {
  return importNpm<typeof import("npm:ioredis@6.0.0")>(SPECIFIER).then((
    module,
  ) => module.Redis);
}

/** The connections of one backend. */
export class RedisLinks {
  readonly #links = new Map<Kind, Link>();
  #closed = false;

  /**
   * Keeps the target; nothing connects yet.
   *
   * @param target the checked URI
   * @param events where messages, wake-ups and drops go
   */
  constructor(
    readonly target: LinkTarget,
    private readonly events: LinkEvents,
  ) {}

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Runs one command on a connection, bounded and cancellable. */
  async run<T>(
    call: (client: RedisClient, info: ServerInfo) => Promise<T>,
    signal?: AbortSignal,
    kind: Kind = "main",
  ): Promise<T> {
    signal?.throwIfAborted();
    const link = this.#linkOf(kind);
    const client = await (signal ? abortable(link.ready, signal) : link.ready);
    try {
      const pending = call(client, link.info!);
      pending.catch((error) => {
        // An unanswered command means a hung server or a dead path to it:
        // drop the connection so that the next call starts a new one.
        if (/timed out/i.test(error?.message)) this.#drop(kind, client);
      });
      return await (signal ? abortable(pending, signal) : pending);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw this.unavailable(error);
    }
  }

  /** The ready connection of this kind, opened or replaced as needed. */
  link(kind: Kind): Promise<RedisClient> {
    return this.#linkOf(kind).ready;
  }

  #linkOf(kind: Kind): Link {
    if (this.#closed) {
      const ready = Promise.reject(
        this.unavailable(new Error("the backend is closed")),
      );
      ready.catch(() => {});
      return { ready };
    }
    let link = this.#links.get(kind);
    // A connection dropped after a timeout or closed by the server is
    // replaced rather than failing every later call.
    if (link?.client && link.client.status !== "ready") {
      this.#drop(kind, link.client);
      link = undefined;
    }
    if (!link) {
      const created = {} as Link;
      created.ready = this.#open(kind, created);
      this.#links.set(kind, created);
      link = created;
    }
    return link;
  }

  #drop(kind: Kind, client: RedisClient): void {
    const link = this.#links.get(kind);
    const wasReady = link?.client === client;
    if (wasReady) this.#links.delete(kind);
    client.disconnect();
    if (kind === "sub") this.events.wake();
    else if (wasReady && !this.#closed) this.events.dropped();
  }

  async #open(kind: Kind, link: Link): Promise<RedisClient> {
    const Redis = await loadRedis();
    const client = new Redis(this.target.options as RedisOptions);
    let lastError: Error | undefined;
    client.on("error", (error: Error) => {
      lastError ??= error;
      // ioredis listens for one error per socket; a second one (EPIPE after
      // a refused TLS handshake) would be uncaught and end the process.
      client.stream?.on("error", () => {});
    });
    client.once("end", () => this.#drop(kind, client));
    if (kind === "sub") {
      client.on("message", (channel: string) => this.events.message(channel));
    }
    try {
      const info = await withTimeout(
        (async () => {
          await client.connect();
          await this.#select(client);
          // A server that refuses INFO still works for status and check;
          // the acquire script then says what it misses.
          const text = await client.info("server").catch(() => "");
          if (/^loading:1\r?$/m.test(text)) {
            throw new Error("the server is still loading its data");
          }
          return infoOf(text);
        })(),
        this.target.connectTimeoutMs + 2_000,
      );
      if (this.#links.get(kind) !== link) {
        // Closed or replaced meanwhile.
        client.disconnect();
        throw new Error("the backend is closed");
      }
      link.info = info;
      link.client = client;
      return client;
    } catch (error) {
      if (this.#links.get(kind) === link) this.#links.delete(kind);
      client.disconnect();
      if (error instanceof RangeError) throw error;
      throw this.unavailable(lastError ?? error);
    }
  }

  /**
   * Selects the URI's database. ioredis would send `SELECT` itself, but on
   * failure it only emits an error and carries on in database 0, where the
   * keys would then land: a configuration error, never an outage.
   */
  async #select(client: RedisClient): Promise<void> {
    const { db, display } = this.target;
    if (db === 0) return;
    try {
      await client.select(db);
    } catch (error) {
      if (!/DB index is out of range/i.test((error as Error)?.message)) {
        throw error;
      }
      const databases = await client.config("GET", "databases").then(
        (reply) => Number((reply as string[])[1]),
        () => NaN,
      );
      throw new RangeError(
        `Redis URI '${display}' names database ${db}, which does not exist on this server${
          databases > 0
            ? ` (it has ${databases}: use /0 to /${databases - 1})`
            : ""
        }`,
      );
    }
  }

  /** A `BackendUnavailableError` for a failure, with secrets scrubbed. */
  unavailable(error: unknown): Error {
    if (error instanceof BackendUnavailableError) return error;
    let why = error instanceof Error ? error.message : String(error);
    if (error instanceof DOMException && error.name === "TimeoutError") {
      why = "no answer in time";
    } else if (/Unknown RESP type|Protocol error/i.test(why)) {
      why = `${this.target.address} is not a Redis server`;
    }
    why = why.split("\n")[0];
    for (const secret of this.target.secrets) {
      why = why.replaceAll(secret, "***");
    }
    return new BackendUnavailableError(this.target.display, why, {
      cause: error,
    });
  }

  /** Ends every connection; later calls reject. */
  async close(): Promise<void> {
    this.#closed = true;
    this.events.wake();
    const links = [...this.#links.values()];
    this.#links.clear();
    await Promise.all(links.map(async (link) => {
      const client = await link.ready.catch(() => undefined);
      if (!client || client.status === "end") return;
      const ended = new Promise((resolve) => client.once("end", resolve));
      client.disconnect();
      await ended;
    }));
  }
}

/** Reads the fields coolock needs from an `INFO server` reply. */
function infoOf(text: string): ServerInfo {
  return { runId: /^run_id:(\w+)\r?$/m.exec(text)?.[1] ?? "" };
}
