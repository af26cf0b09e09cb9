/**
 * A small client for etcd's v3 JSON gateway (`POST /v3/...`) on plain
 * `fetch`, with no npm client at all: endpoint failover, user/password
 * tokens, a bound on every call, newline-delimited JSON streams for
 * watches, and the gateway's errors (gRPC status codes in JSON answers,
 * fetch failures described without the URL).
 *
 * @module
 */

import { type AuthState, type Ping, readPing } from "../ops.ts";

/** A JSON object as the gateway sends it. */
export type Json = Record<string, unknown>;

/** An error answer from etcd, with its gRPC status code. */
export class GatewayError extends Error {
  /**
   * Wraps one error answer.
   *
   * @param code the gRPC status code (5 not found, 14 unavailable, 16 bad token)
   * @param message etcd's message
   */
  constructor(
    /** The gRPC status code. */
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "GatewayError";
  }
}

/** gRPC status codes that the client acts on. */
export const CODES = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  FAILED_PRECONDITION: 9,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** The error in a gateway answer, as a {@linkcode GatewayError}. */
function asError(error: Json): GatewayError {
  const nested = typeof error.error === "object" ? error.error as Json : error;
  const code = Number(nested.grpc_code ?? nested.code ?? CODES.UNAVAILABLE);
  const message = String(nested.message ?? nested.error ?? "unknown error");
  return new GatewayError(code, message.replace(/\s+/g, " ").trim());
}

/** What helps in a fetch failure's message, without the URL Deno repeats. */
function describe(error: unknown): string {
  const cause = (error as Error)?.cause as Error | undefined;
  const message = cause?.message ?? (error as Error)?.message ?? String(error);
  return message.replace(/^error sending request for url \([^)]*\): /, "")
    .replace(/\s+/g, " ").trim();
}

/** How to reach the gateway. */
export interface GatewayOptions {
  /** Base URLs such as `http://127.0.0.1:2379`, tried in order on failure. */
  readonly endpoints: readonly string[];
  /** The user name for `/v3/auth/authenticate`; `""` for none. */
  readonly username: string;
  /** The password; never part of an error message. */
  readonly password: string | undefined;
  /** The bound on one call (for a stream: on its response headers). */
  readonly timeoutMs: number;
  /** A CA certificate, PEM. */
  readonly ca?: string;
  /** A client certificate chain, PEM. */
  readonly cert?: string;
  /** The client certificate's private key, PEM. */
  readonly key?: string;
}

/**
 * The gateway client. One `Deno.HttpClient` holds its connections, so that
 * `close()` ends them all.
 */
export class Gateway {
  readonly #client: Deno.HttpClient;
  #current = 0;
  /** The auth token; `null` when the server has auth disabled. */
  #token?: Promise<string | null>;

  /**
   * Makes the HTTP client; no connection is opened yet.
   *
   * @param options where and how to connect
   */
  constructor(private readonly options: GatewayOptions) {
    this.#client = Deno.createHttpClient({
      caCerts: options.ca === undefined ? undefined : [options.ca],
      cert: options.cert,
      key: options.key,
      http2: false,
    });
  }

  /** One unary call; fails over to the next endpoint when one is down. */
  async call(path: string, body: Json, signal: AbortSignal): Promise<Json> {
    return await this.#send(path, body, signal, true) as Json;
  }

  /**
   * A streaming call: yields each `result` message until the caller stops
   * (break out of the loop, or abort `signal`).
   */
  async *stream(
    path: string,
    body: Json,
    signal: AbortSignal,
  ): AsyncGenerator<Json> {
    const stop = new AbortController();
    const both = AbortSignal.any([signal, stop.signal]);
    const response = await this.#send(path, body, both, false) as Response;
    const reader = response.body!.pipeThrough(new TextDecoderStream())
      .getReader();
    try {
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the gateway ended the stream");
        buffered += value;
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line === "") continue;
          const message = JSON.parse(line) as Json;
          if (message.error) throw asError(message.error as Json);
          yield (message.result ?? {}) as Json;
        }
      }
    } finally {
      stop.abort();
      await reader.cancel().catch(() => {});
    }
  }

  /**
   * Tries the credentials: a fresh authentication with them, or, without a
   * user name, with none (which tells whether the server has auth on).
   */
  async auth(signal: AbortSignal): Promise<AuthState> {
    const { username, password } = this.options;
    const base = this.options.endpoints[this.#current];
    try {
      await this.#post(
        base,
        "/v3/auth/authenticate",
        { name: username, password: password ?? "" },
        {},
        signal,
        true,
      );
      return "authenticated";
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error;
      if (error.code === CODES.FAILED_PRECONDITION) return "disabled";
      if (username === "") return "required";
      throw error;
    }
  }

  /** `GET /version` on one endpoint, with the answer's `Date` header. */
  async ping(endpoint: string, signal: AbortSignal): Promise<Ping> {
    const { response, text } = await this.#fetch(endpoint, "/version", {
      method: "GET",
    }, signal) as { response: Response; text: string };
    return readPing(endpoint, response, text);
  }

  async #send(
    path: string,
    body: Json,
    signal: AbortSignal,
    unary: boolean,
  ): Promise<Json | Response> {
    const { endpoints } = this.options;
    let lastError: unknown;
    for (let tried = 0; tried < endpoints.length; tried++) {
      const index = (this.#current + tried) % endpoints.length;
      try {
        const result = await this.#authed(
          endpoints[index],
          path,
          body,
          signal,
          unary,
        );
        this.#current = index;
        return result;
      } catch (error) {
        signal.throwIfAborted();
        const failover = !(error instanceof GatewayError) ||
          error.code === CODES.UNAVAILABLE;
        if (!failover) throw error;
        lastError = error;
      }
    }
    throw lastError;
  }

  async #authed(
    base: string,
    path: string,
    body: Json,
    signal: AbortSignal,
    unary: boolean,
  ): Promise<Json | Response> {
    for (let fresh = false;; fresh = true) {
      const token = await this.#tokenFrom(base, signal);
      const headers: Record<string, string> = token === null
        ? {}
        : { authorization: token };
      try {
        return await this.#post(base, path, body, headers, signal, unary);
      } catch (error) {
        // Simple tokens expire when idle; a restarted server forgets them.
        const stale = error instanceof GatewayError &&
          (error.code === CODES.UNAUTHENTICATED ||
            /user name is empty/.test(error.message));
        if (!stale || fresh || this.options.username === "") throw error;
        this.#token = undefined;
      }
    }
  }

  #tokenFrom(base: string, signal: AbortSignal): Promise<string | null> {
    const { username, password } = this.options;
    if (username === "") return Promise.resolve(null);
    const pending = this.#token ??= this.#post(
      base,
      "/v3/auth/authenticate",
      { name: username, password: password ?? "" },
      {},
      signal,
      true,
    ).then(
      (answer) => String((answer as Json).token),
      (error) => {
        if (
          error instanceof GatewayError &&
          error.code === CODES.FAILED_PRECONDITION
        ) return null;
        throw error;
      },
    );
    pending.catch(() => {
      if (this.#token === pending) this.#token = undefined;
    });
    return pending;
  }

  async #post(
    base: string,
    path: string,
    body: Json,
    headers: Record<string, string>,
    signal: AbortSignal,
    unary: boolean,
  ): Promise<Json | Response> {
    const sent = await this.#fetch(
      base,
      path,
      {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      },
      signal,
      unary,
    );
    if (sent instanceof Response) return sent;
    const { response, text } = sent;
    let answer: Json;
    try {
      answer = (text.trim() === "" ? {} : JSON.parse(text)) as Json;
    } catch {
      throw new Error(`${base} is not an etcd v3 JSON gateway`);
    }
    if (!response.ok || answer.error) {
      throw asError(
        answer.error ? answer : { message: `HTTP ${response.status}` },
      );
    }
    return answer;
  }

  /**
   * One fetch bounded by the call timeout, body included; a stream (not
   * `unary`) that opened well resolves its response, bounded until its
   * headers only, and stays tied to `signal`.
   */
  async #fetch(
    base: string,
    path: string,
    init: RequestInit,
    signal: AbortSignal,
    unary = true,
  ): Promise<{ response: Response; text: string } | Response> {
    const bound = new AbortController();
    const timer = setTimeout(() => bound.abort(), this.options.timeoutMs);
    const onAbort = () => bound.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    let streaming = false;
    try {
      const response = await fetch(`${base}${path}`, {
        ...init,
        client: this.#client,
        signal: bound.signal,
      });
      if (!unary && response.ok) {
        streaming = true;
        return response;
      }
      return { response, text: await response.text() };
    } catch (error) {
      signal.throwIfAborted();
      if (bound.signal.aborted) {
        throw new Error(
          `${base} gave no answer within ${this.options.timeoutMs / 1000} s`,
        );
      }
      throw new Error(`${base} can't be reached: ${describe(error)}`);
    } finally {
      clearTimeout(timer);
      if (!streaming) signal.removeEventListener("abort", onAbort);
    }
  }

  /** Closes every connection of this client. */
  close(): void {
    this.#client.close();
  }
}
