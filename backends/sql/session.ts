/**
 * One database connection, and so one server session, as the SQL backends
 * (PostgreSQL, MySQL) use it: every call bounded in time, and an end noticed
 * whether the client asked for it or not. A session holds at most one slot's
 * session lock (`heldSlot`); the client library stays with the dialect,
 * behind {@linkcode SqlLink}.
 *
 * @module
 */

import { BackendUnavailableError } from "../../src/backend.ts";
import { withTimeout } from "../../src/timing.ts";

/** A connection that a dialect opened with its own client. */
export interface SqlLink<C> {
  /** The client's connection object, handed to every query. */
  readonly client: C;
  /** Ends the connection; never rejects. */
  end(): Promise<void>;
}

/** Where a session's calls go and how long they may take. */
export interface SqlTarget {
  /** The URI with its secrets redacted, for errors. */
  readonly display: string;
  /** How long one call may take, in milliseconds. */
  readonly timeoutMs: number;
  /** What the server calls a connection, for messages. */
  readonly noun: "session" | "connection";
}

/** Runs one query on a session's client, bounded in time. */
export type SqlRun<C> = <T>(query: (client: C) => Promise<T>) => Promise<T>;

/** A client's message on one line, as every coolock message is. */
export function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\n\s*/g, " ").trim();
}

/**
 * The error for a call that failed or got no answer in time, without
 * credentials (the client's messages name the user, never the password).
 */
export function unavailable(
  target: Pick<SqlTarget, "display" | "timeoutMs">,
  error: unknown,
): BackendUnavailableError {
  if (error instanceof BackendUnavailableError) return error;
  return new BackendUnavailableError(
    target.display,
    error instanceof DOMException && error.name === "TimeoutError"
      ? `no answer within ${target.timeoutMs / 1000} s`
      : oneLine(error),
    { cause: error },
  );
}

/** One connection; never reused once it ends. */
export class SqlSession<C> {
  /** True from the moment the session starts to close. */
  closed = false;
  /** The slot whose session lock this session holds, if any. */
  heldSlot: number | undefined;
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

  /** For the dialect's client: the connection ended by itself. */
  gone(error?: Error): void {
    if (this.closed) return;
    this.onLost(error ?? this.endedError());
    void this.close();
  }

  /** This session's `run`, with the same options for every call. */
  runner(signal?: AbortSignal, keepOnTimeout = false): SqlRun<C> {
    return (query) => this.run(query, signal, keepOnTimeout);
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
