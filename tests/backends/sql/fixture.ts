/**
 * The SQL family's contract fixtures (PostgreSQL 15, MariaDB 10.11) and the
 * out-of-band work the SQL tests do on each server as a DBA would: end the
 * session that holds a lock, look at the rows. Lock keys are computed here
 * independently of the backend, as the previous release computed them, so
 * the tests also pin the key layout that old and new coolocks share.
 *
 * @module
 */

import { mysql } from "../../../backends/sql/mysql/mod.ts";
import { loadMysql } from "../../../backends/sql/mysql/client.ts";
import { postgres } from "../../../backends/sql/postgres/mod.ts";
import {
  loadPostgres,
  type Sql,
} from "../../../backends/sql/postgres/client.ts";
import type { ContractFixture } from "../../contract/fixture.ts";
import {
  MARIADB_DATABASE,
  MARIADB_PASSWORD,
  MARIADB_USER,
  mariadbServer,
} from "../../helpers/servers/mariadb.ts";
import {
  POSTGRES_DATABASE,
  POSTGRES_PASSWORD,
  POSTGRES_USER,
  postgresServer,
  wholeServer,
} from "../../helpers/servers/postgres.ts";
import {
  freePort,
  sharedServer,
  type TestServer,
} from "../../helpers/servers/server.ts";

/** How many slots the out-of-band helpers look at. */
const SLOTS = 8;

/** The SQL servers' test setups, with their out-of-band helpers. */
export interface SqlFixture extends ContractFixture {
  readonly server: TestServer;
  uriWithSecret(secret: string): string;
  /** Ends the sessions that hold `lock`'s slots; resolves how many. */
  killHolder(lock: string): Promise<number>;
  /** Runs one statement out of band; `?` placeholders on MySQL, `$1` on PostgreSQL. */
  admin(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
}

// ---------------------------------------------------------------- PostgreSQL

/** The PostgreSQL fixture, or undefined where the server can't run here. */
export async function postgresFixture(): Promise<SqlFixture | undefined> {
  const shared = await sharedServer(postgresServer);
  if (!shared) return undefined;
  const server = wholeServer(shared);
  const uriAt = (port: number, password = POSTGRES_PASSWORD) =>
    `postgres://${POSTGRES_USER}:${
      encodeURIComponent(password)
    }@127.0.0.1:${port}/${POSTGRES_DATABASE}`;
  const postgresJs = await loadPostgres();
  const connect = (): Sql =>
    postgresJs({
      host: "127.0.0.1",
      port: server.port,
      user: POSTGRES_USER,
      pass: POSTGRES_PASSWORD,
      database: POSTGRES_DATABASE,
      max: 1,
      onnotice: () => {},
    });
  const admin = async (text: string, params: unknown[] = []) => {
    const sql = connect();
    try {
      return [...await sql.unsafe(text, params as never[])];
    } finally {
      await sql.end({ timeout: 1 });
    }
  };
  // The previous release's key for slot 0; a seed per slot for the others.
  const killHolder = async (lock: string) => {
    const rows = await admin(
      `SELECT pg_terminate_backend(pid, 2000) FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND objsubid = 1
          AND ((classid::int8 << 32) | objid::int8) IN
            (SELECT hashtextextended($1, s) FROM generate_series(0, $2) s)`,
      [lock, SLOTS - 1],
    );
    return rows.length;
  };
  return {
    name: "postgres",
    uri: uriAt(server.port),
    uriAt: (port) => uriAt(port),
    uriWithSecret: (secret) => uriAt(server.port, secret),
    unreachableUri: uriAt(freePort()),
    open: (uri) => postgres(uri ?? uriAt(server.port)),
    ttl: 2,
    // A SIGKILLed holder's row runs out within the TTL; a stopped one's
    // session goes by idle_session_timeout, a second later.
    freeWithinMs: 2_000 + 1_500,
    entry: { module: "backends/sql/postgres/mod.ts", factory: "postgres" },
    faults: {
      pause: true,
      partition: true,
      restart: "keeps",
      dropSession: async (lock) => {
        await killHolder(lock);
      },
    },
    server,
    remove: async (lock) => {
      await admin(
        `UPDATE coolock_locks SET held_until = 'epoch', owner = ''
          WHERE name = $1`,
        [lock],
      );
      await killHolder(lock);
    },
    killHolder,
    admin,
  };
}

// --------------------------------------------------------------------- MySQL

/**
 * The `GET_LOCK` name of a slot, as the previous release made slot 0's: a
 * readable prefix and 160 bits of SHA-256 of the name.
 */
export async function mysqlKey(name: string, slot = 0): Promise<string> {
  const input = slot === 0 ? name : `${name}\u0000${slot}`;
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(input)),
  );
  const hex = Array.from(
    digest.subarray(0, 20),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return `coolock:${name.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 15)}:${hex}`;
}

/** The MySQL fixture on MariaDB, or undefined where it can't run here. */
export async function mysqlFixture(): Promise<SqlFixture | undefined> {
  const server = await sharedServer(mariadbServer);
  if (!server) return undefined;
  const uriAt = (port: number, password = MARIADB_PASSWORD) =>
    `mysql://${MARIADB_USER}:${
      encodeURIComponent(password)
    }@127.0.0.1:${port}/${MARIADB_DATABASE}`;
  const { default: mysql2 } = await loadMysql();
  const admin = async (sql: string, params: unknown[] = []) => {
    const conn = await mysql2.createConnection({
      host: "127.0.0.1",
      port: server.port,
      user: MARIADB_USER,
      password: MARIADB_PASSWORD,
      database: MARIADB_DATABASE,
      dateStrings: true,
    });
    conn.on("error", () => {});
    try {
      const [rows] = await conn.query(sql, params);
      return rows as Record<string, unknown>[];
    } finally {
      await conn.end();
    }
  };
  const killHolder = async (lock: string) => {
    let killed = 0;
    for (let slot = 0; slot < SLOTS; slot++) {
      const [{ id }] = await admin("SELECT IS_USED_LOCK(?) AS id", [
        await mysqlKey(lock, slot),
      ]);
      if (id === null) continue;
      await admin("KILL ?", [Number(id)]).catch(() => {});
      killed++;
    }
    return killed;
  };
  return {
    name: "mysql",
    uri: uriAt(server.port),
    uriAt: (port) => uriAt(port),
    uriWithSecret: (secret) => uriAt(server.port, secret),
    unreachableUri: uriAt(freePort()),
    open: (uri) => mysql(uri ?? uriAt(server.port)),
    // mysql2 takes ~120 ms to load (ten times that with 20 processes on 2
    // cores), and the first deadline counts from before the load.
    ttl: 3,
    // A SIGKILLed holder's row runs out within the TTL; a stopped one's
    // connection goes by wait_timeout, in whole seconds, one or two later.
    freeWithinMs: 3_000 + 2_000,
    entry: { module: "backends/sql/mysql/mod.ts", factory: "mysql" },
    faults: {
      pause: true,
      partition: true,
      restart: "keeps",
      dropSession: async (lock) => {
        await killHolder(lock);
      },
    },
    server,
    remove: async (lock) => {
      await admin(
        `UPDATE coolock_locks SET held_until = '1970-01-01', owner = ''
          WHERE name = ?`,
        [lock],
      );
      await killHolder(lock);
    },
    killHolder,
    admin,
  };
}
