/**
 * The consul backend's view of Consul's HTTP API, over the `consul` npm
 * client, which this file alone names and loads, on first use. Every call
 * is bounded by a timeout and cancelled by a signal, and its errors are one
 * line, stripped of the ACL token.
 *
 * @module
 */

import type Consul from "npm:consul@2.0.1";
import { importNpm } from "../../src/npm.ts";

const SPECIFIER = "npm:consul@2.0.1";
import type { EventEmitter } from "node:events";

/** A KV entry as the client returns it, with `Value` decoded to text. */
export interface KvPair {
  readonly Key: string;
  readonly Value: string | null;
  readonly Session?: string;
  readonly LockIndex: number;
  readonly Flags: number;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** A read: the entries (none when there is no key) and `X-Consul-Index`. */
export interface KvRead {
  readonly entries: readonly KvPair[];
  readonly index: string;
}

/** A failed call; `status` is the HTTP status when Consul answered. */
export class ConsulCallError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    /** The decoded JSON body of the answer, when it had one. */
    readonly body?: unknown,
  ) {
    super(message);
    this.name = "ConsulCallError";
  }
}

/** One operation of a `/v1/txn`, with its value as text. */
export interface TxnOp {
  readonly Verb: string;
  readonly Key: string;
  readonly Value?: string;
  readonly Session?: string;
  readonly Index?: number;
}

/** What a transaction did: all its results, or every op's error. */
export type TxnOutcome =
  | { readonly ok: true; readonly results: readonly KvPair[] }
  | {
    readonly ok: false;
    readonly errors: readonly { OpIndex: number; What: string }[];
  };

/** What `/v1/agent/self` says about the agent. */
export interface AgentSelf {
  readonly datacenter: string;
  readonly node: string;
  readonly version: string;
  readonly server: boolean;
}

interface Response {
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body?: unknown;
}

type Options = Record<string, unknown>;

/** The npm client's options, as uri.ts builds them. */
export type ClientOptions = Record<string, unknown>;

/** Loads the npm client and wraps a client on the agent. */
export async function openConsul(
  options: ClientOptions,
  secret: string | undefined,
  timeoutMs: number,
): Promise<ConsulApi> {
  const [{ default: ConsulClient }, { EventEmitter }] = await Promise.all([
    // A CommonJS package: its export is the module's default.
    importNpm<{ default: typeof import("npm:consul@2.0.1") }>(SPECIFIER),
    import("node:events"),
  ]);
  return new ConsulApi(
    new ConsulClient(options as never),
    EventEmitter,
    secret,
    timeoutMs,
  );
}

/** Base64 of the UTF-8 text, as `/v1/txn` takes values. */
function base64(value: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(value)) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary);
}

/**
 * Throws for per-op errors of a transaction that are not "held" or
 * "lock-delay": an ACL refusal ("Permission denied: …") is a setup
 * problem, not a busy lock.
 */
export function throwIfDenied(
  errors: readonly { OpIndex: number; What: string }[],
): void {
  const denied = errors.find((e) => /^Permission denied/.test(e.What));
  if (denied) throw new Error(`the ACL token was refused (${denied.What})`);
}

/** One line of text, whatever the server sent. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/**
 * Calls on one Consul agent. `close()` cancels every call in flight,
 * blocking queries included.
 */
export class ConsulApi {
  readonly #closed = new AbortController();

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
      throw this.#clean(error);
    } finally {
      stop.removeEventListener("abort", cancel);
    }
  }

  /** A client error as one line without the token, the body when text. */
  #clean(error: unknown): ConsulCallError {
    const { message, statusCode, response } = error as {
      message?: string;
      statusCode?: number;
      response?: Response;
    };
    // papi keeps only short text bodies as the message; the rest is here.
    const body = response?.body;
    const raw = typeof body === "string" ||
        (body instanceof Uint8Array && body.length < 2048)
      ? new TextDecoder().decode(
        typeof body === "string" ? new TextEncoder().encode(body) : body,
      )
      : String(message ?? error).replace(/^consul: [\w.]+: /, "");
    let text = oneLine(raw) || `HTTP ${statusCode}`;
    if (this.secret) text = text.replaceAll(this.secret, "***");
    const json =
      body && typeof body === "object" && !(body instanceof Uint8Array)
        ? body
        : undefined;
    return new ConsulCallError(text, statusCode, json);
  }

  /** Reads a key; with `wait`, a blocking query past `index`. */
  get(
    key: string,
    signal?: AbortSignal,
    wait?: { index: string; ms: number },
  ): Promise<KvRead> {
    return this.#read(key, false, signal, wait);
  }

  /** Reads every key under `prefix`; with `wait`, a blocking query. */
  list(
    prefix: string,
    signal?: AbortSignal,
    wait?: { index: string; ms: number },
  ): Promise<KvRead> {
    return this.#read(prefix, true, signal, wait);
  }

  async #read(
    key: string,
    recurse: boolean,
    signal?: AbortSignal,
    wait?: { index: string; ms: number },
  ): Promise<KvRead> {
    const blockingOptions = wait
      ? { index: wait.index, wait: `${Math.ceil(wait.ms)}ms` }
      : {};
    const [response, body] = await this.#call<KvPair | KvPair[] | undefined>(
      (options) =>
        this.client.kv.get(
          {
            key,
            recurse,
            consistent: true,
            ...blockingOptions,
            ...options,
          } as never,
        ),
      signal,
      // Consul adds up to wait/16 to the wait.
      wait ? wait.ms * 17 / 16 + this.timeoutMs : this.timeoutMs,
    );
    const index = response.headers["x-consul-index"];
    // Consul answers every KV read, a missing key's 404 too, with an index;
    // a proxy's or another server's 404 has none.
    if (index === undefined) {
      throw new ConsulCallError(
        "this is not a Consul agent: a KV read came back without X-Consul-Index",
      );
    }
    const entries = body === undefined
      ? []
      : Array.isArray(body)
      ? body
      : [body];
    return { entries, index: String(index) };
  }

  /**
   * `PUT /v1/session/create` with no health checks: the npm client sends
   * `Checks: []`, which Consul's fixupEmptySessionChecks turns into
   * `NodeChecks: []` (no `serfHealth`), so only the TTL or a destroy ends
   * the session. Resolves the session ID.
   */
  async createSession(
    fields: { name: string; ttl: string; lockdelay: string },
    signal?: AbortSignal,
  ): Promise<string> {
    const [, body] = await this.#call<{ ID: string }>(
      (options) =>
        this.client.session.create(
          { ...fields, behavior: "delete", checks: [], ...options } as never,
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

  /** `PUT /v1/session/destroy/:uuid`: its locks are released or deleted. */
  async destroySession(id: string, signal?: AbortSignal): Promise<void> {
    await this.#call(
      (options) => this.client.session.destroy({ id, ...options } as never),
      signal,
    );
  }

  /** `PUT /v1/kv/:key`, with `?cas=` when given; true when applied. */
  async put(
    key: string,
    value: string,
    cas?: number,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const [, applied] = await this.#call<unknown>(
      (options) =>
        this.client.kv.set(
          {
            key,
            value,
            ...(cas === undefined ? {} : { cas }),
            ...options,
          } as never,
        ),
      signal,
    );
    // The client turns a `false` body into `undefined` without the context.
    return applied === true;
  }

  /** `DELETE /v1/kv/:key`. */
  async del(key: string, signal?: AbortSignal): Promise<void> {
    await this.#call(
      (options) => this.client.kv.del({ key, ...options } as never),
      signal,
    );
  }

  /** `PUT /v1/kv/:key?release=`; true only when applied. */
  async unlock(
    key: string,
    session: string,
    value: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const [, applied] = await this.#call<unknown>(
      (options) =>
        this.client.kv.set(
          { key, value, release: session, ...options } as never,
        ),
      signal,
    );
    return applied === true;
  }

  /**
   * `PUT /v1/txn` with KV operations: all apply or none. A 409 is an
   * outcome with every op's error (Consul collects them all); any other
   * failure rejects.
   */
  async txn(ops: readonly TxnOp[], signal?: AbortSignal): Promise<TxnOutcome> {
    const wire = ops.map(({ Value, ...op }) => ({
      KV: { ...op, ...(Value === undefined ? {} : { Value: base64(Value) }) },
    }));
    try {
      const [, body] = await this.#call<{ Results: { KV: KvPair }[] | null }>(
        (options) =>
          this.client.transaction.create(wire as never, options as never),
        signal,
      );
      return { ok: true, results: (body.Results ?? []).map((r) => r.KV) };
    } catch (error) {
      const errors = txnErrors(error);
      if (errors) return { ok: false, errors };
      throw error;
    }
  }

  /** `GET /v1/agent/self`. */
  async agentSelf(signal?: AbortSignal): Promise<AgentSelf> {
    const [, body] = await this.#call<
      { Config?: Record<string, unknown> }
    >((options) => this.client.agent.self(options as never), signal);
    const config = body.Config ?? {};
    return {
      datacenter: String(config.Datacenter ?? ""),
      node: String(config.NodeName ?? ""),
      version: String(config.Version ?? ""),
      server: config.Server === true,
    };
  }

  /**
   * `GET /v1/status/leader`: the leader's address ("" when there is none)
   * and the answer's `Date` header.
   */
  async leader(
    signal?: AbortSignal,
  ): Promise<{ leader: string; date?: string }> {
    const [response, body] = await this.#call<string>(
      (options) => this.client.status.leader(options as never),
      signal,
    );
    const date = response.headers["date"];
    return {
      leader: String(body ?? ""),
      date: date ? String(date) : undefined,
    };
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

/** The per-op errors of a 409 from `/v1/txn`, if that is what failed. */
function txnErrors(
  error: unknown,
): { OpIndex: number; What: string }[] | undefined {
  if (!(error instanceof ConsulCallError) || error.status !== 409) {
    return undefined;
  }
  const errors = (error.body as { Errors?: unknown } | undefined)?.Errors;
  return Array.isArray(errors)
    ? errors.map((e) => ({ OpIndex: Number(e.OpIndex), What: String(e.What) }))
    : [];
}
