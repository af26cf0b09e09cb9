/**
 * A small client for etcd's v3 JSON gateway (`POST /v3/...`) on plain
 * `fetch`: endpoint failover, user/password tokens, a bound on every call,
 * and newline-delimited JSON streams for watches.
 *
 * @module
 */

import {
  asError,
  describe,
  GatewayError,
  type Json,
  UNAVAILABLE,
} from "./errors.ts";

export { GatewayError, type Json };

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
  /** PEM texts for TLS. */
  readonly caCerts?: string[];
  /** A client certificate chain, PEM. */
  readonly cert?: string;
  /** The client certificate's private key, PEM. */
  readonly key?: string;
}

const BAD_TOKEN = 16;
const AUTH_DISABLED = 9;

/**
 * The gateway client. One `Deno.HttpClient` holds its connections, so that
 * `close()` ends them all.
 *
 * @example
 * ```ts ignore
 * import { Gateway } from "./client.ts";
 * const gateway = new Gateway({ endpoints: ["http://127.0.0.1:2379"], username: "", password: undefined, timeoutMs: 5_000 });
 * console.log(await gateway.call("/v3/kv/range", { key: btoa("a") }, AbortSignal.timeout(5_000)));
 * gateway.close();
 * ```
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
      caCerts: options.caCerts,
      cert: options.cert,
      key: options.key,
      http2: false,
    });
  }

  /** One unary call; fails over to the next endpoint when one is down. */
  async call(path: string, body: Json, signal: AbortSignal): Promise<Json> {
    const response = await this.#send(path, body, signal, true);
    return response as Json;
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
          error.code === UNAVAILABLE;
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
          (error.code === BAD_TOKEN ||
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
        if (error instanceof GatewayError && error.code === AUTH_DISABLED) {
          return null;
        }
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
    const bound = new AbortController();
    const timer = setTimeout(() => bound.abort(), this.options.timeoutMs);
    const onAbort = () => bound.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const response = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
        client: this.#client,
        signal: bound.signal,
      });
      if (!unary && response.ok) {
        clearTimeout(timer);
        return response;
      }
      const text = await response.text();
      const answer = (text.trim() === "" ? {} : JSON.parse(text)) as Json;
      if (!response.ok || answer.error) {
        throw asError(answer.error ? answer : { message: response.statusText });
      }
      return answer;
    } catch (error) {
      signal.throwIfAborted();
      if (error instanceof GatewayError) throw error;
      if (bound.signal.aborted) {
        throw new Error(
          `${base} gave no answer within ${this.options.timeoutMs / 1000} s`,
        );
      }
      throw new Error(`${base} can't be reached: ${describe(error)}`);
    } finally {
      clearTimeout(timer);
      if (unary) signal.removeEventListener("abort", onAbort);
    }
  }

  /** Closes every connection of this client. */
  close(): void {
    this.#client.close();
  }
}
