/**
 * The consul backend's view of Consul's HTTP API, over the `consul` npm
 * client: every call bounded by a timeout, cancelled by a signal, and its
 * errors stripped of anything secret.
 *
 * @module
 */

import type Consul from "npm:consul@2.0.1";
import type { EventEmitter } from "node:events";
import { base64 } from "./keys.ts";

/** A KV entry as the client returns it, with `Value` decoded to text. */
export interface KvPair {
  /** The full key. */
  readonly Key: string;
  /** The value, decoded from base64 to text. */
  readonly Value: string | null;
  /** The session that holds the lock, if any. */
  readonly Session?: string;
  /** How many times the key was acquired since it was created. */
  readonly LockIndex: number;
  /** The Raft index that created the key. */
  readonly CreateIndex: number;
  /** The Raft index that last changed the key. */
  readonly ModifyIndex: number;
}

/** A read: the entry (absent when there is no key) and `X-Consul-Index`. */
export interface KvRead {
  /** The entry, or `undefined` when the key does not exist. */
  readonly entry: KvPair | undefined;
  /** The `X-Consul-Index` header, for a blocking query that follows. */
  readonly index: string;
}

/** A failed call; `status` is the HTTP status when Consul answered. */
export class ConsulCallError extends Error {
  /**
   * Makes the error.
   *
   * @param message what went wrong, without secrets
   * @param status the HTTP status, when there was an answer
   */
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = "ConsulCallError";
  }
}

interface Response {
  readonly headers: Record<string, string | string[] | undefined>;
}

type Options = Record<string, unknown>;

/**
 * Calls on one Consul agent. `close()` cancels every call in flight,
 * blocking queries included.
 *
 * @example
 * ```ts ignore
 * import { ConsulApi } from "./client.ts";
 * const { Consul } = await import("npm:consul@2.0.1");
 * const { EventEmitter } = await import("node:events");
 * const api = new ConsulApi(new Consul(), EventEmitter, undefined, 5_000);
 * console.log((await api.get("coolock/report")).entry?.Session);
 * api.close();
 * ```
 */
export class ConsulApi {
  readonly #closed = new AbortController();

  /**
   * Wraps a client.
   *
   * @param client the npm client
   * @param Emitter node's `EventEmitter`, which the client cancels by
   * @param secret the ACL token, scrubbed from every message
   * @param timeoutMs the bound of one call that does not block
   */
  constructor(
    private readonly client: Consul,
    private readonly Emitter: typeof EventEmitter,
    private readonly secret: string | undefined,
    private readonly timeoutMs: number,
  ) {}

  async #call<T>(
    run: (options: Options) => Promise<unknown>,
    signal?: AbortSignal,
    timeoutMs = this.timeoutMs,
  ): Promise<[Response, T]> {
    const stop = signal
      ? AbortSignal.any([signal, this.#closed.signal])
      : this.#closed.signal;
    stop.throwIfAborted();
    // The client cancels a request when its context emits "cancel", and
    // answers [response, body] when the context asks for the response.
    const ctx = Object.assign(new this.Emitter(), { includeResponse: true });
    const cancel = () => ctx.emit("cancel");
    stop.addEventListener("abort", cancel, { once: true });
    try {
      return await run({ ctx, timeout: timeoutMs }) as [Response, T];
    } catch (error) {
      if (stop.aborted) throw stop.reason;
      const { message, statusCode } = error as {
        message?: string;
        statusCode?: number;
      };
      let text = String(message ?? error).replace(/^consul: [\w.]+: /, "");
      if (this.secret) text = text.replaceAll(this.secret, "***");
      throw new ConsulCallError(text, statusCode);
    } finally {
      stop.removeEventListener("abort", cancel);
    }
  }

  /** Reads a key; with `wait`, a blocking query past `index`. */
  async get(
    key: string,
    signal?: AbortSignal,
    wait?: { index: string; ms: number },
  ): Promise<KvRead> {
    const blockingOptions = wait
      ? { index: wait.index, wait: `${Math.ceil(wait.ms)}ms` }
      : {};
    const [response, entry] = await this.#call<KvPair | undefined>(
      (options) =>
        this.client.kv.get({ key, ...blockingOptions, ...options } as never),
      signal,
      // Consul adds up to wait/16 to the wait.
      wait ? wait.ms * 17 / 16 + this.timeoutMs : this.timeoutMs,
    );
    const index = response.headers["x-consul-index"];
    return { entry, index: String(index ?? "0") };
  }

  /** `PUT /v1/session/create`; resolves the session ID. */
  async createSession(
    fields: { name: string; ttl: string; lockdelay: string },
    signal?: AbortSignal,
  ): Promise<string> {
    const [, body] = await this.#call<{ ID: string }>(
      (options) =>
        this.client.session.create(
          { ...fields, behavior: "delete", ...options } as never,
        ),
      signal,
    );
    return body.ID;
  }

  /** `PUT /v1/session/renew/:uuid`; a 404 means the session is gone. */
  async renewSession(id: string, signal?: AbortSignal): Promise<void> {
    await this.#call(
      (options) => this.client.session.renew({ id, ...options } as never),
      signal,
    );
  }

  /** `PUT /v1/session/destroy/:uuid`: its locks are deleted. */
  async destroySession(id: string, signal?: AbortSignal): Promise<void> {
    await this.#call(
      (options) => this.client.session.destroy({ id, ...options } as never),
      signal,
    );
  }

  /** `PUT /v1/kv/:key?acquire=` or `?release=`; true only when applied. */
  async lock(
    verb: "acquire" | "release",
    key: string,
    session: string,
    value: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const [, applied] = await this.#call<unknown>(
      (options) =>
        this.client.kv.set(
          { key, value, [verb]: session, ...options } as never,
        ),
      signal,
    );
    // The client turns a `false` body into `undefined` without the context.
    return applied === true;
  }

  /**
   * Moves a held lock from one session to another in one `/v1/txn`:
   * unlock with `from`, lock with `to`. False when `from` no longer held it.
   */
  async handOver(
    key: string,
    from: string,
    to: string,
    value: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const op = (Verb: string, Session: string) => ({
      KV: { Verb, Key: key, Value: base64(value), Session },
    });
    try {
      await this.#call(
        (options) =>
          this.client.transaction.create(
            [op("unlock", from), op("lock", to)] as never,
            options as never,
          ),
        signal,
      );
      return true;
    } catch (error) {
      if (error instanceof ConsulCallError && error.status === 409) {
        return false;
      }
      throw error;
    }
  }

  /** Cancels every call in flight and closes the client's connections. */
  async close(): Promise<void> {
    this.#closed.abort(new ConsulCallError("The consul backend is closed"));
    // Deno's node:http only lets the agent destroy a cancelled request's
    // keep-alive socket a macrotask later; before that it would stay open.
    await new Promise((resolve) => setTimeout(resolve, 10));
    this.client.destroy();
  }
}
