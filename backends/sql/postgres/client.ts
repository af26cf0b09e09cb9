/**
 * The one place that names the PostgreSQL client, postgres.js, and its
 * version: loaded on first use, so that importing the backend costs nothing
 * until a lock is taken. One `postgres()` instance with `max: 1` is one
 * server session.
 *
 * postgres.js reconnects silently after a dropped connection, so every
 * statement that matters proves inside itself that its session holds the
 * advisory lock (see `holds` in `mod.ts`); `onclose` tells the session it
 * ended. postgres.js reads a few `PG*` variables; they are listed in
 * {@linkcode postgresEnv} for `Backend.permissions`, and every option it
 * would otherwise read from the environment is passed explicitly.
 *
 * @module
 */

import type postgresJs from "npm:postgres@3.4.9";
import { importNpm } from "../../../src/npm.ts";

const SPECIFIER = "npm:postgres@3.4.9";
import type { SqlLink } from "../session.ts";
import type { PostgresTarget } from "./uri.ts";

/** A postgres.js connection (one session, with `max: 1`). */
export type Sql = postgresJs.Sql;

let loading: Promise<typeof postgresJs> | undefined;

/** Loads postgres.js, once. */
export function loadPostgres(): Promise<typeof postgresJs> {
  return loading ??= importNpm<
    { default: typeof import("npm:postgres@3.4.9") }
  >(SPECIFIER)
    .then((m) => m.default);
}

/**
 * The environment variables postgres.js reads for a target: always
 * `PGAPPNAME` and `PGTARGETSESSIONATTRS`, and the ones that stand in for
 * what the URI leaves out (`PGUSER`, `PGDATABASE`, `PGPASSWORD`).
 */
export function postgresEnv(target: PostgresTarget): string[] {
  const { options } = target;
  return [
    "PGAPPNAME",
    "PGTARGETSESSIONATTRS",
    ...(options.user === undefined ? ["PGUSERNAME", "PGUSER"] : []),
    ...(options.database === undefined ? ["PGDATABASE"] : []),
    ...(options.pass === undefined ? ["PGPASSWORD"] : []),
  ];
}

/**
 * The system information postgres.js reads: the OS user's name, as libpq
 * does, when neither the URI nor `PGUSER` names a user.
 */
export function postgresSys(
  target: PostgresTarget,
): Deno.SysPermissionDescriptor["kind"][] {
  return target.options.user === undefined ? ["uid", "gid", "username"] : [];
}

/** The SQLSTATE of a postgres.js error, also when wrapped as a `cause`. */
export function sqlState(error: unknown): string | undefined {
  for (let e = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** Opens one session; `gone` is told when it ends by itself. */
export async function openPostgres(
  target: PostgresTarget,
  gone: () => void,
): Promise<SqlLink<Sql>> {
  const postgres = await loadPostgres();
  const sql = postgres(
    {
      ...target.options,
      // postgres.js takes host and port lists; its types only say one.
      host: target.options.host as unknown as string,
      port: target.options.port as unknown as number,
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      keep_alive: 5,
      fetch_types: false,
      // Passed so that postgres.js reads no PG* variable for them.
      sslnegotiation: null,
      prepare: true,
      debug: false,
      max_pipeline: 100,
      backoff: (retries: number) =>
        (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 20),
      publications: "alltables",
      target_session_attrs: null,
      onnotice: () => {},
      onclose: () => gone(),
      connection: {
        application_name: "coolock",
        // A partitioned holder's session (and lock) goes within ~25 s.
        tcp_keepalives_idle: 10,
        tcp_keepalives_interval: 5,
        tcp_keepalives_count: 3,
      },
    } as unknown as Parameters<typeof postgres>[1],
  );
  return {
    client: sql,
    end: () => sql.end({ timeout: 0 }).catch(() => {}),
  };
}
