/**
 * The PostgreSQL backend: a session advisory lock, keyed by
 * `hashtextextended(name, 0)` (64 bits), on one connection per lease. The
 * server drops the lock when the session ends, so a dead holder frees it at
 * once; a row in `coolock_locks` carries what must outlive the session (the
 * fencing counter and the guard-time end, by the server's clock).
 *
 * @module
 */

import type postgresJs from "npm:postgres@3.4.9";
import {
  type Backend,
  BackendUnavailableError,
  type Claim,
  LockLostError,
  type LockRequest,
} from "../src/backend.ts";
import { abortableDelay, withTimeout } from "../src/timing.ts";
import { parsePostgresUri, type PostgresUri } from "./postgres_uri.ts";

type Sql = postgresJs.Sql;

/** A wait in `pg_advisory_lock` ends by itself before the lifecycle's ~1 s bound. */
const WAIT_SLICE_MS = 750;

const key = (sql: Sql, name: string) => sql`hashtextextended(${name}::text, 0)`;

// Proves, inside the statement, that this very session holds the lock: after
// a silent reconnect a query would otherwise run on a session without it.
const holds = (sql: Sql, name: string) =>
  sql`EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
    AND pid = pg_backend_pid() AND granted AND objsubid = 1
    AND ((classid::int8 << 32) | objid::int8) = ${key(sql, name)})`;

// The server ends a session idle (unrenewed) for longer than the lease, which
// frees the lock when the holder is partitioned away but its TCP peer lives
// (a proxy, a NAT). The slack lets the holder's own deadline fire first.
const IDLE_SLACK_MS = 1_000;
const expireIdle = (sql: Sql, ms: number) =>
  sql`CASE WHEN current_setting('server_version_num')::int >= 140000
    THEN set_config('idle_session_timeout',
      ${String(Math.ceil(ms + IDLE_SLACK_MS))}, false)
    END`;

const createTable = (sql: Sql) =>
  sql`CREATE TABLE IF NOT EXISTS coolock_locks (name text PRIMARY KEY,
    fence bigint NOT NULL, held_until timestamptz NOT NULL, owner text NOT NULL)`;

/** One connection, and so one server session; never reused once it closes. */
class Session {
  closed = false;
  holds = false;
  pending: Promise<unknown> = Promise.resolve();
  onLost = (_error: Error) => {};
  readonly sql: Sql;
  readonly ended: Promise<void>;
  #end!: () => void;

  constructor(make: (onclose: () => void) => Sql, readonly uri: PostgresUri) {
    this.ended = new Promise((resolve) => this.#end = resolve);
    this.sql = make(() => {
      if (this.closed) return;
      this.onLost(new Error("The database session ended"));
      void this.close();
    });
  }

  /** Runs one bounded call; a session that timed out is closed. */
  async run<T>(
    query: (sql: Sql) => Promise<T>,
    signal?: AbortSignal,
    keepOnTimeout = false,
  ): Promise<T> {
    if (this.closed) throw new Error("The database session ended");
    const work = query(this.sql);
    work.catch(() => {});
    try {
      return await withTimeout(work, this.uri.timeoutMs, signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      // A slow server must not cost a lease its lock; a slow attempt may.
      const timedOut = error instanceof DOMException &&
        error.name === "TimeoutError";
      if (timedOut && !keepOnTimeout) void this.close();
      throw new BackendUnavailableError(
        this.uri.display,
        timedOut
          ? `no answer within ${this.uri.timeoutMs / 1000} s`
          : (error as Error).message,
        { cause: error },
      );
    }
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.sql.end({ timeout: 0 }).catch(() => {}).finally(this.#end);
    }
    return this.ended;
  }
}

class PostgresClaim implements Claim {
  readonly #lost = new AbortController();
  readonly lost = this.#lost.signal;
  #released = false;

  constructor(
    readonly token: bigint,
    private readonly session: Session,
    private readonly request: LockRequest,
  ) {
    session.onLost = (error) => {
      if (!this.#released) this.#lost.abort(error);
    };
    if (session.closed) session.onLost(new Error("The database session ended"));
  }

  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    const { name, owner } = this.request;
    if (this.session.closed || this.lost.aborted) {
      throw new LockLostError(name, "the database session ended");
    }
    const rows = await this.session.run(
      (sql) =>
        sql`SELECT ${expireIdle(sql, expiresInMs)} FROM coolock_locks
          WHERE name = ${name} AND owner = ${owner} AND ${holds(sql, name)}`,
      signal,
      true,
    );
    if (rows.length === 0) {
      throw new LockLostError(name, "the session no longer holds the lock");
    }
  }

  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const { name, owner } = this.request;
    try {
      if (this.session.closed) return;
      if (holdMs > 0) {
        await this.session.run((sql) =>
          sql`UPDATE coolock_locks
            SET held_until = now() + ${String(holdMs)}::float8 * interval '1 ms'
            WHERE name = ${name} AND owner = ${owner} AND ${holds(sql, name)}`
        );
      }
      await this.session.run((sql) =>
        sql`SELECT pg_advisory_unlock(${key(sql, name)})`
      );
    } finally {
      await this.session.close();
    }
  }
}

class PostgresBackend implements Backend {
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: 1_000,
    clock: "server",
  } as const;
  readonly displayUri: string;
  readonly #sessions = new Set<Session>();
  readonly #waiting = new Map<string, Session>();
  readonly #claims = new Set<PostgresClaim>();
  #connect?: Promise<typeof postgresJs>;

  constructor(readonly scheme: string, private readonly uri: PostgresUri) {
    this.displayUri = uri.display;
  }

  /** Loads the client; each lease opens its own connection. */
  async connect(): Promise<void> {
    await this.#client();
  }

  #client(): Promise<typeof postgresJs> {
    return this.#connect ??= import("npm:postgres@3.4.9").then((m) =>
      m.default
    );
  }

  async #open(): Promise<Session> {
    const postgres = await this.#client();
    const session = new Session((onclose) =>
      postgres({
        ...this.uri.options,
        // postgres.js takes host and port lists; its types only say one.
        host: this.uri.options.host as unknown as string,
        port: this.uri.options.port as unknown as number,
        max: 1,
        idle_timeout: 0,
        max_lifetime: null,
        keep_alive: 5,
        fetch_types: false,
        onnotice: () => {},
        onclose,
        connection: {
          application_name: "coolock",
          // A partitioned holder's session (and lock) goes within ~25 s.
          tcp_keepalives_idle: 10,
          tcp_keepalives_interval: 5,
          tcp_keepalives_count: 3,
        },
      }), this.uri);
    this.#sessions.add(session);
    void session.ended.then(() => this.#sessions.delete(session));
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
        if (this.#waiting.get(request.owner) === session) {
          this.#waiting.delete(request.owner);
          void session.close();
        }
      };
      request.signal.addEventListener("abort", drop, { once: true });
      void session.ended.then(() => {
        request.signal.removeEventListener("abort", drop);
        if (this.#waiting.get(request.owner) === session) {
          this.#waiting.delete(request.owner);
        }
      });
    }
    return session;
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { name, owner, guardMs } = request;
    const session = await this.#sessionFor(request);
    let claimed = false;
    try {
      await session.pending;
      if (!session.holds) {
        const [{ got }] = await session.run((sql) =>
          sql`SELECT pg_try_advisory_lock(${key(sql, name)}) AS got`
        );
        if (!got) return undefined;
        session.holds = true;
      }
      const stamp = (sql: Sql) =>
        sql`INSERT INTO coolock_locks AS l (name, fence, held_until, owner)
          SELECT ${name}, 1, now() + ${
          String(guardMs)
        }::float8 * interval '1 ms',
            ${owner} WHERE ${holds(sql, name)}
          ON CONFLICT (name) DO UPDATE SET fence = l.fence + 1,
            held_until = excluded.held_until, owner = excluded.owner
            WHERE l.held_until <= now()
          RETURNING l.fence::text, ${expireIdle(sql, request.expiresInMs)}`;
      const rows = await session.run((sql) =>
        stamp(sql).catch(async (error) => {
          if (error?.code !== "42P01") throw error;
          await createTable(sql).catch(() => {}); // Racing creators: one wins.
          return stamp(sql);
        })
      );
      if (rows.length === 0) {
        // Free, but inside the last holder's guard time.
        await session.run((sql) =>
          sql`SELECT pg_advisory_unlock(${key(sql, name)})`
        );
        session.holds = false;
        return undefined;
      }
      claimed = true;
      this.#waiting.delete(owner);
      const claim = new PostgresClaim(BigInt(rows[0].fence), session, request);
      this.#claims.add(claim);
      void session.ended.then(() => this.#claims.delete(claim));
      return claim;
    } catch (error) {
      void session.close();
      throw error;
    } finally {
      if (!claimed && !request.wait) void session.close();
    }
  }

  async waitForChange(request: LockRequest, signal: AbortSignal) {
    const session = await this.#sessionFor(request);
    await session.pending;
    if (session.holds || signal.aborted) return;
    const name = request.name;
    const wait = (async () => {
      const got = await session.run((sql) =>
        sql`WITH t AS MATERIALIZED
            (SELECT set_config('lock_timeout', ${String(WAIT_SLICE_MS)}, true))
          SELECT pg_advisory_lock(${key(sql, name)}) FROM t`.then(
          () => true,
          (error) => {
            if (error?.code === "55P03") return false; // lock_timeout
            throw error;
          },
        )
      );
      if (!got) return;
      session.holds = true;
      const [row] = await session.run((sql) =>
        sql`SELECT ceil(extract(epoch FROM held_until - now()) * 1000)::float8
          AS ms FROM coolock_locks WHERE name = ${name}`
          .catch(() => [])
      );
      if (row?.ms > 0) {
        await session.run((sql) =>
          sql`SELECT pg_advisory_unlock(${key(sql, name)})`
        );
        session.holds = false;
        await abortableDelay(row.ms, signal).catch(() => {});
      }
    })();
    session.pending = wait.catch(() => {});
    // The lifecycle's bound ends the wait; the query finishes on its own.
    await withTimeout(wait, 2 * WAIT_SLICE_MS + session.uri.timeoutMs, signal)
      .catch((error) => {
        if (!signal.aborted) throw error;
      });
  }

  async close(): Promise<void> {
    await Promise.allSettled(
      [...this.#claims].map((claim) => claim.release(0)),
    );
    await Promise.allSettled([...this.#sessions].map((s) => s.close()));
    this.#waiting.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The PostgreSQL backend. The URI is libpq's:
 * `postgres[ql]://user:password@host[:port][/database]`, with `sslmode`
 * (`disable`, `prefer` (the default), `require`, `verify-ca`, `verify-full`),
 * `sslrootcert` (or `ca`), `sslcert` (or `cert`), `sslkey` (or `key`) and
 * `connect_timeout` (seconds, default 5). It needs the right to create the
 * table `coolock_locks` (or an existing one) in the search path.
 *
 * @param uri the server's URI
 *
 * @example
 * ```ts ignore
 * import { postgres } from "./postgres.ts";
 * import { withLock } from "../mod.ts";
 * await using backend = postgres("postgres://app:secret@db.internal/app");
 * await withLock({ backend, lock: "nightly-report" }, () => "done");
 * ```
 */
export function postgres(uri: string | URL): Backend {
  const parsed = parsePostgresUri(String(uri));
  return new PostgresBackend(
    String(uri).slice(0, String(uri).indexOf(":")).toLowerCase(),
    parsed,
  );
}
