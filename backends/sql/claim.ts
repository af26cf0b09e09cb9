/**
 * A slot that a SQL backend holds on one dedicated connection: renewed and
 * released against the slot's row, and lost at once when the connection
 * ends (the row still keeps others out until the lease it last renewed has
 * run out).
 *
 * @module
 */

import {
  type Claim,
  LockLostError,
  type LockRequest,
} from "../../src/backend.ts";
import type { SqlDialect } from "./dialect.ts";
import type { SqlSession } from "./session.ts";

/**
 * The claim of a {@linkcode SqlSession} that holds a slot's session lock.
 * The session is this claim's alone: release ends it.
 */
export class SqlClaim<C> implements Claim {
  readonly #lost = new AbortController();
  /** Aborts when the connection ends without being asked to. */
  readonly lost: AbortSignal = this.#lost.signal;
  #released = false;

  /** Takes over `session`, whose `slot` `request` won with `token`. */
  constructor(
    readonly token: bigint,
    readonly slot: number,
    private readonly session: SqlSession<C>,
    private readonly request: LockRequest,
    private readonly dialect: SqlDialect<C>,
  ) {
    session.onLost = (error) => {
      if (!this.#released) this.#lost.abort(error);
    };
    if (session.closed) session.onLost(session.endedError());
  }

  /** Extends the lease, only while this connection still holds the slot. */
  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    const { name } = this.request;
    const { noun } = this.dialect;
    if (this.session.closed || this.lost.aborted) {
      throw new LockLostError(name, `the database ${noun} ended`);
    }
    const run = this.session.runner(signal, true);
    if (!await this.dialect.renew(run, this.request, this.slot, expiresInMs)) {
      throw new LockLostError(
        name,
        `the ${noun} no longer holds the lock, or its row was taken`,
      );
    }
  }

  /** Ends the lease `holdMs` from now, gives the slot back, ends the connection. */
  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const run = this.session.runner();
    try {
      if (this.session.closed) return;
      await this.dialect.hold(run, this.request, this.slot, holdMs);
      await this.dialect.unlock(run, this.request.name, this.slot);
    } finally {
      await this.session.close();
    }
  }
}
