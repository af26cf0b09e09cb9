/**
 * What the SQL backends share: the Backend class over a dialect
 * (`dialect.ts`). Each lease holds one slot's session lock (PostgreSQL's
 * advisory lock, MySQL's `GET_LOCK`) on a connection of its own, and the
 * slot's row in `coolock_locks`/`coolock_slots` holds what must outlive the
 * connection: the lease end (`held_until`, by the server's clock, renewed
 * with the lease), the guard time and the fencing counter. A slot is free
 * only when both have gone, so a killed holder, a dropped session or a
 * restarted server frees nothing until the holder's last lease has run out,
 * which covers the watchdog's reaction and `--kill-after`.
 *
 * A waiter blocks on the server for one slot's session lock, a slice at a
 * time, and sleeps until a released slot's guard time (or a dead holder's
 * lease) ends, computed from the row.
 *
 * @module
 */

import type {
  Backend,
  BackendCapabilities,
  CheckResult,
  Claim,
  LockRequest,
  LockStatus,
  Removal,
} from "../../src/backend.ts";
import { LimitMismatchError } from "../../src/errors.ts";
import { Holdings } from "../../src/holdings.ts";
import { abortableDelay, withTimeout } from "../../src/timing.ts";
import { SqlClaim } from "./claim.ts";
import { lockStatuses, type SqlDialect } from "./dialect.ts";
import { SqlSession, unavailable } from "./session.ts";

/** A wait for the session lock ends by itself before the lifecycle's ~1 s bound. */
const WAIT_SLICE_MS = 750;

/** A backend on a {@linkcode SqlDialect}. */
export class SqlLockBackend<C> implements Backend {
  /** The same for both: a session lock plus a lease row, judged by the server. */
  readonly capabilities: BackendCapabilities = {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: 1_000,
    // Leases and guard time are `held_until` timestamps: any duration up to
    // the lifecycle's 366 days fits (the idle bounds are clamped to the
    // servers' maxima, which only frees a stuck session sooner; the row
    // still holds).
    maxTtlMs: 366 * 86_400_000,
    clock: "server",
    listsLocks: true,
    storesLimit: true,
  };
  /** The URI with its secrets redacted. */
  readonly displayUri: string;
  /** The Deno permissions the client needs. */
  readonly permissions: readonly Deno.PermissionDescriptor[];
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
    this.permissions = dialect.permissions;
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

  /** One attempt at every slot, on the owner's kept session or a new one. */
  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { dialect } = this;
    const session = await this.#sessionFor(request);
    const run = session.runner();
    const mismatch = (stored: number) =>
      new LimitMismatchError(request.name, request.limit, stored);
    let claimed = false;
    try {
      await session.pending;
      // A stamp of the slot this session holds: a claim, or the slot back.
      const stampHeld = async (): Promise<Claim | undefined> => {
        const slot = session.heldSlot!;
        const { token, limit } = await dialect.stamp(run, request, slot);
        if (token !== undefined) {
          claimed = true;
          return this.#claim(token, slot, session, request);
        }
        await dialect.unlock(run, request.name, slot);
        session.heldSlot = undefined;
        if (limit !== undefined && limit !== request.limit) {
          throw mismatch(limit);
        }
        return undefined;
      };
      const tried = new Set<number>();
      if (session.heldSlot !== undefined) {
        tried.add(session.heldSlot);
        const claim = await stampHeld();
        if (claim) return claim;
      }
      let live = new Set<number>();
      if (request.limit > 1) {
        const survey = await dialect.survey(run, request);
        if (survey.limit !== undefined && survey.limit !== request.limit) {
          throw mismatch(survey.limit);
        }
        live = new Set(survey.live);
      }
      for (let slot = 0; slot < request.limit; slot++) {
        if (tried.has(slot) || live.has(slot)) continue;
        const { got, limit } = await dialect.tryLock(run, request, slot);
        if (got) session.heldSlot = slot;
        if (limit !== undefined && limit !== request.limit) {
          if (got) {
            await dialect.unlock(run, request.name, slot);
            session.heldSlot = undefined;
          }
          throw mismatch(limit);
        }
        if (!got) continue;
        const claim = await stampHeld();
        if (claim) return claim;
      }
      return undefined;
    } catch (error) {
      void session.close();
      throw error;
    } finally {
      if (!claimed && !request.wait) void session.close();
    }
  }

  #claim(
    token: bigint,
    slot: number,
    session: SqlSession<C>,
    request: LockRequest,
  ): Claim {
    this.#waiting.delete(request.owner);
    const claim = new SqlClaim(token, slot, session, request, this.dialect);
    this.#claims.add(claim);
    void session.ended.then(() => this.#claims.delete(claim));
    return this.#holdings.track(claim, request);
  }

  /**
   * Waits on the server for one slot's session lock, a slice at a time;
   * once it is free, sleeps until the slot's row has run out too.
   */
  async waitForChange(request: LockRequest, signal: AbortSignal) {
    const { dialect } = this;
    const session = await this.#sessionFor(request);
    await session.pending;
    if (session.heldSlot !== undefined || signal.aborted) return;
    const run = session.runner();
    // Waiters spread over the slots; each is woken by a release of its own.
    const slot = Math.floor(Math.random() * request.limit);
    const wait = (async () => {
      if (!await dialect.lock(run, request.name, slot, WAIT_SLICE_MS)) return;
      session.heldSlot = slot;
      const ms = await dialect.leftMs(run, request.name, slot);
      if (ms > 0) {
        await dialect.unlock(run, request.name, slot);
        session.heldSlot = undefined;
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

  /** Runs `work` on a session of its own, closed afterwards. */
  async #once<T>(
    signal: AbortSignal,
    work: (session: SqlSession<C>) => Promise<T>,
  ): Promise<T> {
    const session = await this.#open();
    const close = () => void session.close();
    signal.addEventListener("abort", close, { once: true });
    try {
      return await work(session);
    } finally {
      signal.removeEventListener("abort", close);
      await session.close();
    }
  }

  /** Each slot's holder of `name`, or of every held lock, from the rows. */
  status(name: string | undefined, signal: AbortSignal): Promise<LockStatus[]> {
    return this.#once(signal, async (session) => {
      const rows = await this.dialect.status(session.runner(signal), name);
      return lockStatuses(rows, name);
    });
  }

  /**
   * Ends every lease and guard time of `name` and the sessions that hold
   * it; its rows and their fencing counter stay.
   */
  forceRelease(name: string, signal: AbortSignal): Promise<Removal[]> {
    return this.#once(
      signal,
      (session) => this.dialect.forceRelease(session.runner(signal), name),
    );
  }

  /** Reachable, credentials, then the dialect's own checks. */
  async check(signal: AbortSignal): Promise<CheckResult[]> {
    const { dialect } = this;
    const started = performance.now();
    let session: SqlSession<C>;
    let user: string;
    try {
      session = await this.#open();
    } catch (error) {
      return this.#refused(error, performance.now() - started);
    }
    try {
      const run = session.runner(signal);
      try {
        user = await dialect.whoami(run);
      } catch (error) {
        return this.#refused(error, performance.now() - started);
      }
      const ms = await dialect.ping(run);
      return [
        {
          name: "reachable",
          status: "ok",
          detail: `round trip ${ms.toFixed(1)} ms`,
          ms,
        },
        {
          name: "credentials",
          status: "ok",
          detail: `logged in as '${user}'`,
        },
        ...await dialect.check(run),
      ];
    } finally {
      await session.close();
    }
  }

  /** A refused login is a failed check; anything else: unreachable. */
  #refused(error: unknown, ms: number): CheckResult[] {
    const problem = this.dialect.credentialsProblem(error);
    if (problem === undefined) throw unavailable(this.dialect, error);
    return [
      {
        name: "reachable",
        status: "ok",
        detail: `the server answered in ${ms.toFixed(1)} ms`,
        ms,
      },
      { name: "credentials", status: "fail", detail: problem },
    ];
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
