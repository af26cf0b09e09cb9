/**
 * One database connection, and so one server session, as the SQL backends
 * (PostgreSQL, MySQL) use it: every call bounded in time, and an end noticed
 * whether the client asked for it or not. The client library stays with the
 * backend, behind {@linkcode SqlLink}.
 *
 * @module
 */

import { BackendUnavailableError } from "../../src/backend.ts";
import { withTimeout } from "../../src/timing.ts";

/**
 * A connection that a backend opened with its own client.
 *
 * @example
 * ```ts
 * import type { SqlLink } from "./session.ts";
 * const link: SqlLink<string> = {
 *   client: "a client",
 *   end: () => Promise.resolve(),
 * };
 * ```
 */
export interface SqlLink<C> {
  /** The client's connection object, handed to every query. */
  readonly client: C;
  /** Ends the connection; never rejects. */
  end(): Promise<void>;
}

/**
 * Where a session's calls go and how long they may take.
 *
 * @example
 * ```ts
 * import type { SqlTarget } from "./session.ts";
 * const target: SqlTarget = {
 *   display: "postgres://app:***@db/app",
 *   timeoutMs: 5_000,
 *   noun: "session",
 * };
 * ```
 */
export interface SqlTarget {
  /** The URI with its secrets redacted, for errors. */
  readonly display: string;
  /** How long one call may take, in milliseconds. */
  readonly timeoutMs: number;
  /** What the server calls a connection, for messages. */
  readonly noun: "session" | "connection";
}

/**
 * Runs one query on a session's client, bounded in time.
 *
 * @example
 * ```ts
 * import type { SqlRun } from "./session.ts";
 * const count = (run: SqlRun<{ ping(): Promise<number> }>) =>
 *   run((client) => client.ping());
 * ```
 */
export type SqlRun<C> = <T>(query: (client: C) => Promise<T>) => Promise<T>;

/**
 * The error for a call that failed or got no answer in time, without
 * credentials.
 *
 * @example
 * ```ts
 * import { unavailable } from "./session.ts";
 * const target = { display: "mysql://db/x", timeoutMs: 5_000 };
 * console.log(unavailable(target, new Error("refused")).message.includes("refused")); // true
 * ```
 */
export function unavailable(
  target: Pick<SqlTarget, "display" | "timeoutMs">,
  error: unknown,
): BackendUnavailableError {
  return new BackendUnavailableError(
    target.display,
    error instanceof DOMException && error.name === "TimeoutError"
      ? `no answer within ${target.timeoutMs / 1000} s`
      : (error as Error).message,
    { cause: error },
  );
}

/**
 * One connection; never reused once it ends.
 *
 * @example
 * ```ts
 * import { SqlSession } from "./session.ts";
 * const session = new SqlSession(
 *   { client: 41, end: () => Promise.resolve() },
 *   { display: "mysql://db/x", timeoutMs: 1_000, noun: "connection" },
 * );
 * console.log(await session.run((n) => Promise.resolve(n + 1))); // 42
 * await session.close();
 * ```
 */
export class SqlSession<C> {
  /** True from the moment the session starts to close. */
  closed = false;
  /** True while this session holds the lock on the server. */
  holds = false;
  /** The wait-mode statement still running on this session, if any. */
  pending: Promise<unknown> = Promise.resolve();
  /** Called once when the connection ends without being asked to. */
  onLost: (error: Error) => void = () => {};
  /** Resolves once the connection has ended. */
  readonly ended: Promise<void>;
  #end!: () => void;

  /** Wraps an open connection. */
  constructor(readonly link: SqlLink<C>, readonly target: SqlTarget) {
    this.ended = new Promise((resolve) => this.#end = resolve);
  }

  /** A new error that says the connection ended. */
  endedError(): Error {
    return new Error(`The database ${this.target.noun} ended`);
  }

  /** For the backend's client: the connection ended by itself. */
  gone(error?: Error): void {
    if (this.closed) return;
    this.onLost(error ?? this.endedError());
    void this.close();
  }

  /**
   * Runs one bounded call; a session that timed out is closed, unless
   * `keepOnTimeout` (a slow server must not cost a lease its lock; a slow
   * attempt may).
   */
  async run<T>(
    query: (client: C) => Promise<T>,
    signal?: AbortSignal,
    keepOnTimeout = false,
  ): Promise<T> {
    if (this.closed) throw this.endedError();
    const work = query(this.link.client);
    work.catch(() => {});
    try {
      return await withTimeout(work, this.target.timeoutMs, signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const timedOut = error instanceof DOMException &&
        error.name === "TimeoutError";
      if (timedOut && !keepOnTimeout) void this.close();
      throw unavailable(this.target, error);
    }
  }

  /** Ends the connection; resolves once it has ended. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.link.end().finally(this.#end);
    }
    return this.ended;
  }
}
