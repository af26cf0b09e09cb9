/**
 * What differs between the SQL backends, as the shared core
 * (`backends/sql/mod.ts`) calls it: the client, the session lock of one slot
 * (PostgreSQL's advisory lock, MySQL's `GET_LOCK` name) and the statements on
 * the two tables that outlive every session:
 *
 * - `coolock_locks`, one row per lock name: the fencing counter `fence` that
 *   every slot shares, slot 0's lease (`held_until`, `owner`, `node`,
 *   `since`, `token`, `guard_until`) and the stored limit (`lim`, binding
 *   until `lim_until`). Its first four columns are the previous release's
 *   table, unchanged, so both releases exclude each other on slot 0.
 * - `coolock_slots`, one row per slot ≥ 1 of a semaphore: that slot's lease.
 *
 * A slot is taken only by the session that holds its session lock **and**
 * once its row's `held_until` has passed by the server's clock: a dropped
 * session alone frees nothing until the lease the holder last renewed has
 * run out. Every statement that writes a slot's row proves, inside the
 * statement, that this very session holds that slot's session lock.
 *
 * How the rows read as `status` ({@linkcode lockStatuses}): a slot whose
 * session lock a server session holds is `held` (its lease runs until
 * `held_until`); a slot with no such session whose `held_until` is still
 * ahead is `guard` (released with guard time, or its holder died and its
 * last lease still runs); any other slot is free.
 *
 * @module
 */

import type {
  CheckResult,
  HolderStatus,
  LockRequest,
  LockStatus,
  Removal,
} from "../../src/backend.ts";
import type { SqlLink, SqlRun, SqlTarget } from "./session.ts";

/** What a stamp of a slot's row said. */
export interface SqlStamp {
  /** The new fencing token; absent when the row is still held. */
  readonly token?: bigint;
  /** The limit stored with the lock while it binds (some lease under it lives). */
  readonly limit?: number;
}

/** What the rows say about a lock before any session lock is tried. */
export interface SqlSurvey {
  /** The slots whose rows are still held (lease or guard time). */
  readonly live: readonly number[];
  /** The limit stored with the lock while it binds. */
  readonly limit?: number;
}

/** One slot's row, as `status` and `forceRelease` read it. */
export interface SqlSlotRow {
  readonly name: string;
  readonly slot: number;
  readonly token?: bigint;
  readonly owner?: string;
  readonly node?: string;
  /** Acquisition time, by the server's clock. */
  readonly since?: Date;
  /** `held_until − now()` by the server's clock, in ms. */
  readonly leftMs: number;
  /** `guard_until − now()` by the server's clock, in ms. */
  readonly guardLeftMs?: number;
  /** The server session that holds the slot's session lock, if any. */
  readonly session?: string;
  /** The lock's fencing counter. */
  readonly fence?: bigint;
  /** The limit stored with the lock while it binds. */
  readonly limit?: number;
}

/** A dialect: the statements of one SQL server, on its client `C`. */
export interface SqlDialect<C> extends SqlTarget {
  /** The Deno permissions the client needs. */
  readonly permissions: readonly Deno.PermissionDescriptor[];
  /** Loads the client library. */
  load(): Promise<unknown>;
  /** Opens a connection; `gone` is told when it ends by itself. */
  open(gone: (error?: Error) => void): Promise<SqlLink<C>>;
  /** Which slots' rows are live, and the binding limit (for limit > 1). */
  survey(run: SqlRun<C>, request: LockRequest): Promise<SqlSurvey>;
  /**
   * Takes `slot`'s session lock at once, unless its row is still live; also
   * reads the binding limit.
   */
  tryLock(
    run: SqlRun<C>,
    request: LockRequest,
    slot: number,
  ): Promise<{ got: boolean; limit?: number }>;
  /** Waits up to `waitMs` for `slot`'s session lock; false when it stays held. */
  lock(
    run: SqlRun<C>,
    name: string,
    slot: number,
    waitMs: number,
  ): Promise<boolean>;
  /** Gives `slot`'s session lock back. */
  unlock(run: SqlRun<C>, name: string, slot: number): Promise<void>;
  /**
   * Stamps `slot`'s row for this session, which holds its session lock: the
   * next fencing token, a lease of `max(expiresInMs, guardMs)`, the limit.
   * Refused while the row is live or another limit binds. Also makes the
   * server end the session once it idles past the lease.
   */
  stamp(run: SqlRun<C>, request: LockRequest, slot: number): Promise<SqlStamp>;
  /** Extends the row's lease to `expiresInMs` from now; false when lost. */
  renew(
    run: SqlRun<C>,
    request: LockRequest,
    slot: number,
    expiresInMs: number,
  ): Promise<boolean>;
  /** Sets the row's lease to end `holdMs` from now (guard time, or now). */
  hold(
    run: SqlRun<C>,
    request: LockRequest,
    slot: number,
    holdMs: number,
  ): Promise<void>;
  /** `held_until − now()` of the slot's row, in ms (0 or less: free). */
  leftMs(run: SqlRun<C>, name: string, slot: number): Promise<number>;
  /** Every slot's row of `name`, or of every lock when `name` is undefined. */
  status(run: SqlRun<C>, name: string | undefined): Promise<SqlSlotRow[]>;
  /**
   * Ends every lease and guard of `name` (the rows stay, with their fencing
   * counter) and ends the sessions that hold its session locks.
   */
  forceRelease(run: SqlRun<C>, name: string): Promise<Removal[]>;
  /** Round trip of one trivial statement, in ms. */
  ping(run: SqlRun<C>): Promise<number>;
  /** The user coolock is logged in as, for `check`. */
  whoami(run: SqlRun<C>): Promise<string>;
  /** The credentials problem an error shows, if it is one. */
  credentialsProblem(error: unknown): string | undefined;
  /** The dialect's checks: version, clock, permissions and its own. */
  check(run: SqlRun<C>): Promise<CheckResult[]>;
}

const positive = (ms: number | undefined) =>
  ms !== undefined && ms > 0 ? Math.ceil(ms) : undefined;

/** The holder a row shows, or undefined when its slot is free. */
function holderOf(row: SqlSlotRow): HolderStatus | undefined {
  const held = row.session !== undefined;
  if (!held && !(row.leftMs > 0)) return undefined;
  const known = {
    slot: row.slot,
    ...(row.node ? { node: row.node } : {}),
    ...(row.owner ? { owner: row.owner } : {}),
    ...(row.since ? { since: row.since } : {}),
    ...(row.token !== undefined ? { token: row.token } : {}),
  };
  if (held) {
    const leaseLeftMs = positive(row.leftMs);
    const guardLeftMs = positive(row.guardLeftMs);
    return {
      ...known,
      state: "held",
      ...(leaseLeftMs ? { leaseLeftMs } : {}),
      ...(guardLeftMs ? { guardLeftMs } : {}),
    };
  }
  return { ...known, state: "guard", guardLeftMs: Math.ceil(row.leftMs) };
}

/**
 * The statuses the rows show: one for `name` (free when it has no row), or,
 * without a name, one for each lock with a holder.
 */
export function lockStatuses(
  rows: readonly SqlSlotRow[],
  name: string | undefined,
): LockStatus[] {
  const byName = new Map<string, SqlSlotRow[]>();
  if (name !== undefined) byName.set(name, []);
  for (const row of rows) {
    const list = byName.get(row.name) ?? [];
    list.push(row);
    byName.set(row.name, list);
  }
  const statuses: LockStatus[] = [];
  for (const [lock, slots] of byName) {
    const holders = slots.map(holderOf).filter((h) => h !== undefined)
      .sort((a, b) => a.slot - b.slot);
    if (name === undefined && holders.length === 0) continue;
    const limit = slots.find((row) => row.limit !== undefined)?.limit;
    const lastToken = slots.find((row) => row.fence !== undefined)?.fence;
    statuses.push({
      name: lock,
      holders,
      ...(limit !== undefined ? { limit } : {}),
      ...(lastToken !== undefined ? { lastToken } : {}),
    });
  }
  return statuses.sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0
  );
}
