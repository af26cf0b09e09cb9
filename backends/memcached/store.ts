/**
 * The memcached backend's calls, bounded and in the user's terms: every
 * failure is a `BackendUnavailableError` with the password scrubbed, and
 * `swap` is the compare-and-swap on a slot item while it holds this exact
 * value. Also what the server says about itself (`serverState`): its clock
 * and which process it is, for the restart rule (mod.ts).
 *
 * @module
 */

import { BackendUnavailableError } from "../../src/backend.ts";
import { Connection, type ConnectionEvents } from "./client.ts";
import { Op, type Reply, type RequestBody, Status, text } from "./protocol.ts";
import type { MemcachedTarget } from "./uri.ts";

const CAS_TRIES = 3;

/** What `stats` says about one server process. */
export interface ServerState {
  /** Which process: its pid and start time. Changes at every start. */
  readonly bootId: string;
  /** Seconds it has certainly been up (memcached says up to 3 more). */
  readonly settledS: number;
  /** Its clock, Unix seconds (whole seconds). */
  readonly timeS: number;
}

/** The servers of one backend, connected on first use. */
export class MemcachedStore {
  readonly #secret: string | undefined;
  #connection?: Promise<Connection>;
  #closed = false;

  /**
   * Keeps the target; nothing connects yet.
   *
   * @param target the checked URI
   * @param events where dropped sockets are reported
   */
  constructor(
    readonly target: MemcachedTarget,
    private readonly events: ConnectionEvents,
  ) {
    this.#secret = target.password || undefined;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Loads the client; sockets open on first use. */
  connection(): Promise<Connection> {
    if (this.#closed) {
      return Promise.reject(this.unavailable("the backend is closed"));
    }
    const { hosts, timeoutMs, username, password } = this.target;
    this.#connection ??= Connection.open(hosts, {
      timeoutMs,
      username,
      password,
    }, this.events);
    return this.#connection;
  }

  /** Loads the client and reaches the first server. */
  async connect(): Promise<void> {
    const connection = await this.connection();
    await this.#bounded(() => connection.version(0));
  }

  async #bounded<T>(call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw this.unavailable((error as Error).message ?? String(error), error);
    }
  }

  /** Sends one request to the route's server. */
  async send(
    route: string,
    op: number,
    key: string,
    body: RequestBody = {},
    signal?: AbortSignal,
  ): Promise<Reply> {
    const connection = await this.connection();
    return this.#bounded(
      () => connection.send(route, op, key, body, signal),
      signal,
    );
  }

  /** The `stats` of the route's server, or of `stats <group>`. */
  async stats(
    route: string,
    group = "",
    signal?: AbortSignal,
  ): Promise<Record<string, string>> {
    const connection = await this.connection();
    return this.#bounded(
      () => connection.stats(connection.indexOf(route), group, signal),
      signal,
    );
  }

  /**
   * The clock and identity of the route's server process. memcached starts
   * its uptime at 2 s and counts whole seconds of a clock that ticks once a
   * second, so it may say up to 3 s more than it has been up.
   */
  async serverState(route: string, signal?: AbortSignal): Promise<ServerState> {
    return stateOf(await this.stats(route, "", signal));
  }

  /**
   * Compare-and-swap on a slot item while its value is ours (`ours`):
   * resolves false when it is gone or holds another value. A CAS that
   * changed under us while the value stayed ours (a renewal crossing a
   * release) is tried again.
   */
  async swap(
    route: string,
    key: string,
    ours: (value: string) => boolean,
    write: { op: number; extras?: Uint8Array; value?: string },
    signal?: AbortSignal,
  ): Promise<boolean> {
    for (let tries = 0; tries < CAS_TRIES; tries++) {
      const got = await this.send(route, Op.get, key, {}, signal);
      if (got.status === Status.notFound) return false;
      this.expect(got, Status.ok);
      if (!ours(text(got.value))) return false;
      const put = await this.send(route, write.op, key, {
        extras: write.extras,
        value: write.value,
        cas: got.cas,
      }, signal);
      if (put.status === Status.ok) return true;
      if (put.status === Status.notFound) return false;
      this.expect(put, Status.exists);
    }
    throw this.unavailable("the lock item kept changing under CAS");
  }

  /** Throws `BackendUnavailableError` unless the reply has `status`. */
  expect(reply: Reply, ...statuses: number[]): void {
    if (!statuses.includes(reply.status)) {
      throw this.unavailable(
        `memcached answered with status 0x${reply.status.toString(16)}`,
      );
    }
  }

  /** A `BackendUnavailableError`, with the password scrubbed. */
  unavailable(why: string, cause?: unknown): BackendUnavailableError {
    let safe = why.split("\n")[0];
    if (this.#secret) safe = safe.replaceAll(this.#secret, "***");
    return new BackendUnavailableError(this.target.display, safe, { cause });
  }

  /** Ends every socket; later calls reject. */
  async close(): Promise<void> {
    this.#closed = true;
    const connection = this.#connection;
    this.#connection = undefined;
    await (await connection?.catch(() => undefined))?.close();
  }
}

/**
 * The server's clock now, Unix ms, from its `stats` `time`: whole seconds
 * of a clock that memcached moves once a second, so it lags the wall clock
 * by 0.5 to 1.6 s (measured here): one second more is the middle.
 */
export function serverMsOf(state: ServerState): number {
  return state.timeS * 1000 + 1000;
}

/** Reads a server's identity and clock from its `stats`. */
export function stateOf(stats: Record<string, string>): ServerState {
  const uptime = Number(stats.uptime);
  const time = Number(stats.time);
  return {
    bootId: `${stats.pid}@${time - uptime}`,
    settledS: Math.max(0, uptime - 3),
    timeS: time,
  };
}
