/**
 * The memcached backend's connection to its servers: raw binary-protocol
 * requests, bounded, with compare-and-swap on a lock item while it holds
 * its owner.
 *
 * @module
 */

import { BackendUnavailableError } from "../../src/backend.ts";
import {
  Connection,
  Op,
  type Reply,
  type RequestBody,
  Status,
} from "./protocol.ts";
import type { Keys } from "./keys.ts";
import type { MemcachedTarget } from "./uri.ts";

const CAS_TRIES = 3;

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/**
 * The servers of one backend, connected on first use.
 *
 * @example
 * ```ts ignore
 * import { MemcachedStore } from "./client.ts";
 * import { parseMemcachedUri } from "./uri.ts";
 * const store = new MemcachedStore(parseMemcachedUri("memcached://127.0.0.1"));
 * await store.connect();
 * await store.close();
 * ```
 */
export class MemcachedStore {
  readonly #secret: string | undefined;
  #connection?: Promise<Connection>;
  #closed = false;

  /**
   * Keeps the target; nothing connects yet.
   *
   * @param target the checked URI
   */
  constructor(private readonly target: MemcachedTarget) {
    this.#secret = target.password || undefined;
  }

  #open(): Promise<Connection> {
    const { hosts, timeoutMs, username, password } = this.target;
    return Connection.open(hosts, { timeoutMs, username, password });
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Loads the client and makes the connections. */
  async connect(): Promise<void> {
    if (this.#closed) throw this.unavailable("the backend is closed");
    this.#connection ??= this.#open();
    await this.#connection;
  }

  /**
   * Compare-and-swap on the lock item while it holds `owner`: resolves false
   * when it is gone or another owner's. A CAS that changed under us while
   * the value stayed ours (a renewal crossing a release) is tried again.
   */
  async swap(
    keys: Keys,
    owner: string,
    write: { op: number; extras?: Uint8Array },
    signal?: AbortSignal,
  ): Promise<boolean> {
    for (let tries = 0; tries < CAS_TRIES; tries++) {
      const got = await this.send(keys, Op.get, keys.lock, {}, signal);
      if (got.status === Status.notFound) return false;
      this.expect(got, Status.ok);
      if (decode(got.value) !== owner) return false;
      const put = await this.send(keys, write.op, keys.lock, {
        extras: write.extras,
        value: write.op === Op.set ? owner : undefined,
        cas: got.cas,
      }, signal);
      if (put.status === Status.ok) return true;
      if (put.status === Status.notFound) return false;
      this.expect(put, Status.exists);
    }
    throw this.unavailable("the lock item kept changing under CAS");
  }

  /** Sends one request to the key's server. */
  async send(
    keys: Keys,
    op: number,
    key: string,
    body: RequestBody,
    signal?: AbortSignal,
  ): Promise<Reply> {
    if (this.#closed) throw this.unavailable("the backend is closed");
    this.#connection ??= this.#open();
    const connection = await this.#connection;
    try {
      return await connection.send(keys.route, op, key, body, signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw this.unavailable((error as Error).message, error);
    }
  }

  /** Throws `BackendUnavailableError` unless the reply has `status`. */
  expect(reply: Reply, status: number): void {
    if (reply.status !== status) {
      throw this.unavailable(
        `memcached answered with status 0x${reply.status.toString(16)}`,
      );
    }
  }

  /** A `BackendUnavailableError`, with the password scrubbed. */
  unavailable(why: string, cause?: unknown): BackendUnavailableError {
    const safe = this.#secret ? why.replaceAll(this.#secret, "***") : why;
    return new BackendUnavailableError(this.target.display, safe, { cause });
  }

  /** Ends every connection; later calls reject. */
  async close(): Promise<void> {
    this.#closed = true;
    const connection = this.#connection;
    this.#connection = undefined;
    await (await connection)?.close();
  }
}
