/**
 * The MySQL and MariaDB backend: a `GET_LOCK` named lock on one connection
 * per lease. The server drops the lock when the connection ends, so a dead
 * holder frees it at once; a row in `coolock_locks` carries what must outlive
 * the connection (the fencing counter and the guard-time end, by the server's
 * clock). Named locks are local to one server: a replica doesn't see them.
 *
 * @module
 */

import type { Connection } from "npm:mysql2@3.24.6/promise";
import {
  type Backend,
  BackendUnavailableError,
  type Claim,
  LockLostError,
  type LockRequest,
} from "../src/backend.ts";
import { abortableDelay, withTimeout } from "../src/timing.ts";
import { lockKey, type MysqlUri, parseMysqlUri } from "./mysql_uri.ts";

/** A wait in `GET_LOCK` ends by itself before the lifecycle's ~1 s bound. */
const WAIT_SLICE_S = 0.75;
/** The server ends a connection idle (unrenewed) for longer than the lease. */
const IDLE_SLACK_MS = 1_000;

const MINE = "IS_USED_LOCK(?) = CONNECTION_ID()";
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS coolock_locks (
  name VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY,
  fence BIGINT UNSIGNED NOT NULL, held_until DATETIME(6) NOT NULL,
  owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL)`;
const HELD_UNTIL = "UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND";
const STAMP = `UPDATE coolock_locks SET fence = LAST_INSERT_ID(fence + 1),
  held_until = ${HELD_UNTIL}, owner = ?
  WHERE name = ? AND held_until <= UTC_TIMESTAMP(6) AND ${MINE}`;
const FIRST_STAMP = `INSERT IGNORE INTO coolock_locks
  (name, fence, held_until, owner) SELECT ?, 1, ${HELD_UNTIL}, ? FROM DUAL
  WHERE ${MINE}`;
const EXPIRE_IDLE = "SET SESSION wait_timeout = CAST(? AS UNSIGNED)";

type Row = Record<string, unknown>;
type Result = Row[] & { affectedRows?: number; insertId?: number | string };

const micros = (ms: number) => Math.ceil(Math.max(0, ms) * 1000);
const idleSeconds = (ms: number) => Math.ceil((ms + IDLE_SLACK_MS) / 1000);

/** One connection, and so one server session; never reused once it ends. */
class Session {
  closed = false;
  holds = false;
  pending: Promise<unknown> = Promise.resolve();
  onLost = (_error: Error) => {};

  constructor(
    readonly conn: Connection,
    readonly uri: MysqlUri,
    private readonly onClose: () => void,
  ) {
    // An 'error' without a listener would crash the process.
    const gone = (error?: Error) => {
      if (this.closed) return;
      this.onLost(error ?? new Error("The database connection ended"));
      void this.close();
    };
    conn.on("error", gone);
    conn.on("end", () => gone());
  }

  /** Runs one bounded statement; a session that timed out is closed. */
  async run(
    sql: string,
    params: (string | number)[],
    signal?: AbortSignal,
    keepOnTimeout = false,
  ): Promise<Result> {
    if (this.closed) throw new Error("The database connection ended");
    // Text can't be escaped safely for every sql_mode (NO_BACKSLASH_ESCAPES),
    // so it goes as a prepared statement's parameter. Numbers and lock keys
    // can't break out of a literal, and the text protocol saves a round trip.
    const plain = params.every((p) => /^[\w.:-]*$/.test(String(p)));
    const work =
      (plain ? this.conn.query(sql, params) : this.conn.execute(sql, params))
        .then(([rows]) => rows as unknown as Result);
    work.catch(() => {});
    try {
      return await withTimeout(work, this.uri.timeoutMs, signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      // A slow server must not cost a lease its lock; a slow attempt may.
      const timedOut = error instanceof DOMException &&
        error.name === "TimeoutError";
      if (timedOut && !keepOnTimeout) void this.close();
      throw unavailable(this.uri, error);
    }
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.#ended = withTimeout(this.conn.end(), 1_000)
        .catch(() => this.conn.destroy())
        .finally(this.onClose);
    }
    return this.#ended;
  }

  #ended: Promise<void> = Promise.resolve();
}

function unavailable(uri: MysqlUri, error: unknown): BackendUnavailableError {
  return new BackendUnavailableError(
    uri.display,
    error instanceof DOMException && error.name === "TimeoutError"
      ? `no answer within ${uri.timeoutMs / 1000} s`
      : (error as Error).message,
    { cause: error },
  );
}

class MysqlClaim implements Claim {
  readonly #lost = new AbortController();
  readonly lost = this.#lost.signal;
  #released = false;

  constructor(
    readonly token: bigint,
    private readonly session: Session,
    private readonly request: LockRequest,
    private readonly key: string,
  ) {
    session.onLost = (error) => {
      if (!this.#released) this.#lost.abort(error);
    };
    if (session.closed) session.onLost(new Error("The connection ended"));
  }

  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    const { name, owner } = this.request;
    if (this.session.closed || this.lost.aborted) {
      throw new LockLostError(name, "the database connection ended");
    }
    const [row] = await this.session.run(
      `SELECT ${MINE} AS mine, (SELECT owner = ? FROM coolock_locks
        WHERE name = ?) AS owned`,
      [this.key, owner, name],
      signal,
      true,
    );
    if (Number(row?.mine) !== 1 || Number(row?.owned) !== 1) {
      throw new LockLostError(name, "the connection no longer holds the lock");
    }
    await this.session.run(
      EXPIRE_IDLE,
      [idleSeconds(expiresInMs)],
      signal,
      true,
    );
  }

  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const { name, owner } = this.request;
    try {
      if (this.session.closed) return;
      if (holdMs > 0) {
        await this.session.run(
          `UPDATE coolock_locks SET held_until = ${HELD_UNTIL}
            WHERE name = ? AND owner = ? AND ${MINE}`,
          [micros(holdMs), name, owner, this.key],
        );
      }
      await this.session.run("SELECT RELEASE_LOCK(?)", [this.key]);
    } finally {
      await this.session.close();
    }
  }
}

class MysqlBackend implements Backend {
  readonly scheme = "mysql";
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: 1_000,
    clock: "server",
  } as const;
  readonly displayUri: string;
  readonly #sessions = new Set<Session>();
  readonly #waiting = new Map<string, Session>();
  readonly #claims = new Map<Session, MysqlClaim>();

  constructor(private readonly uri: MysqlUri) {
    this.displayUri = uri.display;
  }

  /** Loads the client; each lease opens its own connection. */
  async connect(): Promise<void> {
    await import("npm:mysql2@3.24.6/promise");
  }

  async #open(): Promise<Session> {
    const { default: mysql } = await import("npm:mysql2@3.24.6/promise");
    const connecting = mysql.createConnection({
      ...this.uri.options,
      charset: "utf8mb4",
      supportBigNumbers: true,
      bigNumberStrings: true,
      enableKeepAlive: true,
      keepAliveInitialDelay: 5_000,
    });
    connecting.then((conn) => conn.on("error", () => {}), () => {});
    const conn = await withTimeout(connecting, this.uri.timeoutMs + 1_000)
      .catch((error) => {
        connecting.then((late) => late.destroy(), () => {});
        throw unavailable(this.uri, error);
      });
    const session = new Session(
      conn,
      this.uri,
      () => this.#sessions.delete(session) && this.#claims.delete(session),
    );
    this.#sessions.add(session);
    return session;
  }

  /** The owner's session kept between attempts while it waits. */
  async #sessionFor(request: LockRequest): Promise<Session> {
    const kept = this.#waiting.get(request.owner);
    if (kept && !kept.closed) return kept;
    const session = await this.#open();
    if (request.wait) {
      this.#waiting.set(request.owner, session);
      const drop = () => {
        if (this.#waiting.get(request.owner) !== session) return;
        this.#waiting.delete(request.owner);
        void session.close();
      };
      if (request.signal.aborted) drop();
      request.signal.addEventListener("abort", drop, { once: true });
    }
    return session;
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { name, owner, guardMs } = request;
    const key = await lockKey(name);
    const session = await this.#sessionFor(request);
    let claimed = false;
    try {
      await session.pending;
      if (!session.holds) {
        const [{ got }] = await session.run("SELECT GET_LOCK(?, 0) AS got", [
          key,
        ]);
        if (Number(got) !== 1) return undefined;
        session.holds = true;
      }
      const held = [micros(guardMs), owner, name, key];
      const stamped = await session.run(STAMP, held).catch(async (error) => {
        if (error?.cause?.errno !== 1146) throw error; // No such table.
        await session.run(CREATE_TABLE, []).catch(() => {});
        return session.run(STAMP, held);
      });
      let token = stamped.affectedRows === 1
        ? BigInt(stamped.insertId ?? 0)
        : 0n;
      if (token === 0n) {
        const first = await session.run(FIRST_STAMP, [
          name,
          micros(guardMs),
          owner,
          key,
        ]);
        if (first.affectedRows === 1) token = 1n;
      }
      if (token === 0n) {
        // Free, but inside the last holder's guard time.
        await session.run("SELECT RELEASE_LOCK(?)", [key]);
        session.holds = false;
        return undefined;
      }
      await session.run(EXPIRE_IDLE, [idleSeconds(request.expiresInMs)]);
      claimed = true;
      this.#waiting.delete(owner);
      const claim = new MysqlClaim(token, session, request, key);
      this.#claims.set(session, claim);
      return claim;
    } catch (error) {
      void session.close();
      throw error;
    } finally {
      if (!claimed && !request.wait) void session.close();
    }
  }

  async waitForChange(request: LockRequest, signal: AbortSignal) {
    const key = await lockKey(request.name);
    const session = await this.#sessionFor(request);
    await session.pending;
    if (session.holds || signal.aborted) return;
    const wait = (async () => {
      const [{ got }] = await session.run("SELECT GET_LOCK(?, ?) AS got", [
        key,
        WAIT_SLICE_S,
      ]);
      if (Number(got) !== 1) return;
      session.holds = true;
      const [row] = await session.run(
        `SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), held_until) AS us
          FROM coolock_locks WHERE name = ?`,
        [request.name],
      ).catch(() => []);
      if (Number(row?.us) > 0) {
        await session.run("SELECT RELEASE_LOCK(?)", [key]);
        session.holds = false;
        await abortableDelay(Number(row.us) / 1000, signal).catch(() => {});
      }
    })();
    session.pending = wait.catch(() => {});
    // The lifecycle's bound ends the wait; the statement finishes on its own.
    await withTimeout(
      wait,
      2_000 * WAIT_SLICE_S + session.uri.timeoutMs,
      signal,
    ).catch((error) => {
      if (!signal.aborted) throw error;
    });
  }

  async close(): Promise<void> {
    await Promise.allSettled(
      [...this.#claims.values()].map((claim) => claim.release(0)),
    );
    this.#claims.clear();
    await Promise.allSettled([...this.#sessions].map((s) => s.close()));
    this.#sessions.clear();
    this.#waiting.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The MySQL and MariaDB backend:
 * `mysql://user:password@host[:port]/database`, with `ssl-mode`
 * (`DISABLED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`), `ssl-ca` (or
 * `ca`), `ssl-cert` (or `cert`), `ssl-key` (or `key`) and `connect_timeout`
 * (seconds, default 5). It needs the right to create the table
 * `coolock_locks` (or an existing one) in the database.
 *
 * @param uri the server's URI
 *
 * @example
 * ```ts ignore
 * import { mysql } from "./mysql.ts";
 * import { withLock } from "../mod.ts";
 * await using backend = mysql("mysql://app:secret@db.internal/app");
 * await withLock({ backend, lock: "nightly-report" }, () => "done");
 * ```
 */
export function mysql(uri: string | URL): Backend {
  return new MysqlBackend(parseMysqlUri(String(uri)));
}
