/**
 * What the SQL backends share: a session lock (PostgreSQL's advisory lock,
 * MySQL's `GET_LOCK`) on one dedicated connection per lease, which the server
 * drops when the connection ends, plus a row in `coolock_locks` for what must
 * outlive the connection (the fencing counter and the guard-time end, by the
 * server's clock). A backend supplies its dialect as a {@linkcode SqlDialect}.
 *
 * @module
 */

import type {
  Backend,
  BackendCapabilities,
  Claim,
  LockRequest,
} from "../../src/backend.ts";
import { abortableDelay, withTimeout } from "../../src/timing.ts";
import { Holdings } from "../../src/holdings.ts";
import { SqlClaim } from "./claim.ts";
import {
  type SqlLink,
  type SqlRun,
  SqlSession,
  type SqlTarget,
} from "./session.ts";

/** A wait for the session lock ends by itself before the lifecycle's ~1 s bound. */
const WAIT_SLICE_MS = 750;

/**
 * What differs between the SQL backends: the client, the session lock's
 * statements and the `coolock_locks` dialect. Each method gets a `run` that
 * bounds every query in time.
 *
 * @example A dialect's shape
 * ```ts
 * import type { SqlDialect } from "./mod.ts";
 * type Dialect = SqlDialect<{ query(sql: string): Promise<unknown[]> }>;
 * ```
 */
export interface SqlDialect<C> extends SqlTarget {
  /** Loads the client library. */
  load(): Promise<unknown>;
  /** Opens a connection; `gone` is told when it ends by itself. */
  open(gone: (error?: Error) => void): Promise<SqlLink<C>>;
  /** Takes the session lock, waiting up to `waitMs`; false when held. */
  lock(run: SqlRun<C>, name: string, waitMs: number): Promise<boolean>;
  /** Gives the session lock back. */
  unlock(run: SqlRun<C>, name: string): Promise<void>;
  /**
   * Stamps the row for a new holder of the session lock: the next fencing
   * token, or `undefined` inside the last holder's guard time. Also makes the
   * server end the connection when it stays idle past the lease.
   */
  stamp(run: SqlRun<C>, request: LockRequest): Promise<bigint | undefined>;
  /** Extends the idle bound; false when this connection lost the lock. */
  renew(
    run: SqlRun<C>,
    request: LockRequest,
    expiresInMs: number,
  ): Promise<boolean>;
  /** Keeps the row held for `holdMs` more, by the server's clock. */
  hold(run: SqlRun<C>, request: LockRequest, holdMs: number): Promise<void>;
  /** How long the row's guard time still runs, in ms (0 or less: over). */
  guardLeftMs(run: SqlRun<C>, name: string): Promise<number>;
}

/**
 * A backend on a {@linkcode SqlDialect}.
 *
 * @example
 * ```ts ignore
 * import { SqlLockBackend } from "./mod.ts";
 * const backend = new SqlLockBackend("mysql", dialect);
 * ```
 */
export class SqlLockBackend<C> implements Backend {
  /** The same for both: a session lock judged by the server. */
  readonly capabilities: BackendCapabilities = {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: 1_000,
    clock: "server",
    maxTtlMs: 366 * 86_400_000,
    listsLocks: false,
    storesLimit: false,
  };
  /** The URI with its secrets redacted. */
  readonly displayUri: string;
  readonly #sessions = new Set<SqlSession<C>>();
  readonly #waiting = new Map<string, SqlSession<C>>();
  readonly #claims = new Set<SqlClaim<C>>();
  readonly #holdings = new Holdings();

  /** A backend for `scheme` that speaks `dialect`. */
  constructor(
    readonly scheme: string,
    private readonly dialect: SqlDialect<C>,
  ) {
    this.displayUri = dialect.display;
  }

  /** Loads the client; each lease opens its own connection. */
  async connect(): Promise<void> {
    await this.dialect.load();
  }

  async #open(): Promise<SqlSession<C>> {
    let gone = (_error?: Error) => {};
    const link = await this.dialect.open((error) => gone(error));
    const session = new SqlSession(link, this.dialect);
    gone = (error) => session.gone(error);
    this.#sessions.add(session);
    void session.ended.then(() => this.#sessions.delete(session));
    return session;
  }

  /** The owner's session kept between attempts while it waits. */
  async #sessionFor(request: LockRequest): Promise<SqlSession<C>> {
    const kept = this.#waiting.get(request.owner);
    if (kept && !kept.closed) return kept;
    const session = await this.#open();
    if (request.wait) {
      this.#waiting.set(request.owner, session);
      const forget = () => {
        if (this.#waiting.get(request.owner) !== session) return false;
        this.#waiting.delete(request.owner);
        return true;
      };
      const drop = () => {
        if (forget()) void session.close();
      };
      if (request.signal.aborted) drop();
      request.signal.addEventListener("abort", drop, { once: true });
      void session.ended.then(() => {
        request.signal.removeEventListener("abort", drop);
        forget();
      });
    }
    return session;
  }

  /** One attempt, on the owner's kept session or a new one. */
  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { dialect } = this;
    const session = await this.#sessionFor(request);
    const run: SqlRun<C> = (query) => session.run(query);
    let claimed = false;
    try {
      await session.pending;
      if (!session.holds) {
        if (!await dialect.lock(run, request.name, 0)) return undefined;
        session.holds = true;
      }
      const token = await dialect.stamp(run, request);
      if (token === undefined) {
        // Free, but inside the last holder's guard time.
        await dialect.unlock(run, request.name);
        session.holds = false;
        return undefined;
      }
      claimed = true;
      this.#waiting.delete(request.owner);
      const claim = new SqlClaim(token, session, request, dialect);
      this.#claims.add(claim);
      void session.ended.then(() => this.#claims.delete(claim));
      return this.#holdings.track(claim, request);
    } catch (error) {
      void session.close();
      throw error;
    } finally {
      if (!claimed && !request.wait) void session.close();
    }
  }

  /** Waits on the server for the session lock, a slice at a time. */
  async waitForChange(request: LockRequest, signal: AbortSignal) {
    const { dialect } = this;
    const session = await this.#sessionFor(request);
    await session.pending;
    if (session.holds || signal.aborted) return;
    const run: SqlRun<C> = (query) => session.run(query);
    const wait = (async () => {
      if (!await dialect.lock(run, request.name, WAIT_SLICE_MS)) return;
      session.holds = true;
      const ms = await dialect.guardLeftMs(run, request.name);
      if (ms > 0) {
        await dialect.unlock(run, request.name);
        session.holds = false;
        await abortableDelay(ms, signal).catch(() => {});
      }
    })();
    session.pending = wait.catch(() => {});
    // The lifecycle's bound ends the wait; the statement finishes on its own.
    await withTimeout(wait, 2 * WAIT_SLICE_MS + dialect.timeoutMs, signal)
      .catch((error) => {
        if (!signal.aborted) throw error;
      });
  }

  /** Releases every claim still held, then ends every connection. */
  async close(): Promise<void> {
    await this.#holdings.releaseAll();
    await Promise.allSettled(
      [...this.#claims].map((claim) => claim.release(0)),
    );
    this.#claims.clear();
    await Promise.allSettled([...this.#sessions].map((s) => s.close()));
    this.#sessions.clear();
    this.#waiting.clear();
  }

  /** Calls {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
