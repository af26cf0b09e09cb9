/**
 * The Redis backend's connections: one for commands and one for pub/sub,
 * each opened on first use, bounded, and replaced after a timeout or when
 * the server closed it, so that a hung server never blocks later calls.
 *
 * @module
 */

import type { Redis as RedisClient, RedisOptions } from "npm:ioredis@6.0.0";
import { BackendUnavailableError } from "../../src/backend.ts";
import { withTimeout } from "../../src/timing.ts";
import type { RedisTarget } from "./uri.ts";

/** Which connection: commands, or the subscriber. */
export type Kind = "main" | "sub";

/** A connection: `client` is set once it is ready. */
interface Link {
  ready: Promise<RedisClient>;
  client?: RedisClient;
}

/**
 * Rejects when `signal` aborts, else settles like `promise`.
 *
 * @example
 * ```ts
 * import { abortable } from "./client.ts";
 * console.log(await abortable(Promise.resolve(1), new AbortController().signal)); // 1
 * ```
 */
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
}

/**
 * The connections of one backend.
 *
 * @example
 * ```ts ignore
 * import { RedisLinks } from "./client.ts";
 * const links = new RedisLinks(target, async () => (await import("npm:ioredis@6.0.0")).Redis, events);
 * console.log(await links.run((client) => client.ping()));
 * await links.close();
 * ```
 */
export class RedisLinks {
  readonly #links = new Map<Kind, Link>();
  #closed = false;

  /**
   * Keeps the target; nothing connects yet.
   *
   * @param target the checked URI
   * @param load loads the client class, on first use
   * @param events where messages and wake-ups go
   */
  constructor(
    private readonly target: RedisTarget,
    private readonly load: () => Promise<typeof RedisClient>,
    private readonly events: LinkEvents,
  ) {}

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Runs one command on a connection, bounded and cancellable. */
  async run<T>(
    call: (client: RedisClient) => Promise<T>,
    signal?: AbortSignal,
    kind: Kind = "main",
  ): Promise<T> {
    signal?.throwIfAborted();
    const link = this.link(kind);
    const client = await (signal ? abortable(link, signal) : link);
    try {
      const pending = call(client);
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
    if (this.#closed) {
      return Promise.reject(
        this.unavailable(new Error("the backend is closed")),
      );
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
    return link.ready;
  }

  #drop(kind: Kind, client: RedisClient): void {
    const link = this.#links.get(kind);
    if (link?.client === client) this.#links.delete(kind);
    client.disconnect();
    if (kind === "sub") this.events.wake();
  }

  async #open(kind: Kind, link: Link): Promise<RedisClient> {
    const Redis = await this.load();
    const client = new Redis(this.target.options as RedisOptions);
    let lastError: Error | undefined;
    client.on("error", (error: Error) => {
      lastError = error;
      // ioredis listens for one error per socket; a second one (EPIPE after
      // a refused TLS handshake) would be uncaught and end the process.
      client.stream?.on("error", () => {});
    });
    client.once("end", () => this.#drop(kind, client));
    if (kind === "sub") {
      client.on("message", (channel: string) => this.events.message(channel));
    }
    try {
      await withTimeout(
        client.connect(),
        this.target.connectTimeoutMs + 2_000,
      );
      link.client = client;
      return client;
    } catch (error) {
      if (this.#links.get(kind) === link) this.#links.delete(kind);
      client.disconnect();
      throw this.unavailable(lastError ?? error);
    }
  }

  /** A `BackendUnavailableError` for a failure, with secrets scrubbed. */
  unavailable(error: unknown): Error {
    if (error instanceof BackendUnavailableError) return error;
    let why = error instanceof Error ? error.message : String(error);
    if (error instanceof DOMException && error.name === "TimeoutError") {
      why = "no answer in time";
    }
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
