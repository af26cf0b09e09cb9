/**
 * A lock that a SQL backend holds on one dedicated connection: lost when the
 * connection ends, renewed and released against its `coolock_locks` row.
 *
 * @module
 */

import {
  type Claim,
  LockLostError,
  type LockRequest,
} from "../../src/backend.ts";
import type { SqlDialect } from "./mod.ts";
import type { SqlRun, SqlSession } from "./session.ts";

/**
 * The claim of a {@linkcode SqlSession} that holds the session lock. The
 * session is this claim's alone: release ends it.
 *
 * @example
 * ```ts ignore
 * import { SqlClaim } from "./claim.ts";
 * const claim = new SqlClaim(token, session, request, dialect);
 * await claim.release(0);
 * ```
 */
export class SqlClaim<C> implements Claim {
  /** Slots other than 0 come with the semaphore (issue 16). */
  readonly slot = 0;
  readonly #lost = new AbortController();
  /** Aborts when the connection ends without being asked to. */
  readonly lost: AbortSignal = this.#lost.signal;
  #released = false;

  /** Takes over `session`, whose lock `request` won with `token`. */
  constructor(
    readonly token: bigint,
    private readonly session: SqlSession<C>,
    private readonly request: LockRequest,
    private readonly dialect: SqlDialect<C>,
  ) {
    session.onLost = (error) => {
      if (!this.#released) this.#lost.abort(error);
    };
    if (session.closed) session.onLost(session.endedError());
  }

  /** Extends the lock, only while this connection still holds it. */
  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    const { name } = this.request;
    const { noun } = this.dialect;
    if (this.session.closed || this.lost.aborted) {
      throw new LockLostError(name, `the database ${noun} ended`);
    }
    const run: SqlRun<C> = (query) => this.session.run(query, signal, true);
    if (!await this.dialect.renew(run, this.request, expiresInMs)) {
      throw new LockLostError(name, `the ${noun} no longer holds the lock`);
    }
  }

  /** Keeps the row for `holdMs`, gives the lock back, ends the connection. */
  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const run: SqlRun<C> = (query) => this.session.run(query);
    try {
      if (this.session.closed) return;
      if (holdMs > 0) await this.dialect.hold(run, this.request, holdMs);
      await this.dialect.unlock(run, this.request.name);
    } finally {
      await this.session.close();
    }
  }
}
