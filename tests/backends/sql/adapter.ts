/**
 * How the shared SQL tests reach one backend and its server: a
 * {@linkcode SqlAdapter}, and the helpers every one of them uses.
 *
 * @module
 */

import type { Backend, LockRequest } from "../../../src/backend.ts";
import type { TestCertificates } from "../../helpers/certs.ts";
import type { ServerRecipe } from "../../helpers/servers/server.ts";
import type { SqlFixture } from "./fixture.ts";

/** A coolock of the previous release, as its statements ran, on a connection of its own. */
export interface PreviousRelease {
  /** Its attempt: the session lock, then its stamp; the token, or undefined. */
  take(lock: string, guardMs?: number): Promise<bigint | undefined>;
  /** Ends its connection, and so its session lock. */
  close(): Promise<void>;
}

/** What the shared SQL tests need to know of one backend and its server. */
export interface SqlAdapter {
  /** The factory's name (`postgres`, `mysql`), also the test-name prefix. */
  readonly name: string;
  /** The factory. */
  open(uri: string): Backend;
  /** What the server calls a connection, for test names. */
  readonly noun: "session" | "connection";
  /** URIs the factory must refuse, and what its message must say. */
  readonly badUris: readonly (readonly [string, RegExp])[];
  /** The live server; `undefined` when it can't run here. */
  readonly fixture: SqlFixture | undefined;
  /** `held_until − now()` of a slot's row, in ms, by the server's clock. */
  leftMs(lock: string, slot?: number): Promise<number | undefined>;
  /** The row of slot 0, as stored (fence, owner, lim, …). */
  row(lock: string): Promise<Record<string, unknown> | undefined>;
  /** Makes another owner the owner of `lock`'s row. */
  stealRow(lock: string): Promise<void>;
  /** How many of `names` have a row. */
  rows(names: readonly string[]): Promise<number>;
  /** How many tables named `coolock_locks` there are. */
  tables(): Promise<number>;
  /** How many connections the test user has open, besides the asking one. */
  sessions(): Promise<number>;
  /** A coolock of the previous release on `uri`'s database. */
  previous(database?: "main" | "other"): Promise<PreviousRelease>;
  /** A second database, where a test makes the tables by hand. */
  readonly other: {
    readonly uri: string;
    /** Drops both tables there, then makes the previous release's table with a row. */
    makeOldTable(lock: string, fence: number): Promise<void>;
    /** The columns of `coolock_locks` there. */
    columns(): Promise<string[]>;
  };
  /** A URI without credentials, and the environment that supplies them. */
  readonly envLogin?: {
    readonly uri: string;
    readonly env: Record<string, string>;
  };
  /** A URI of a user who may log in but not write the tables. */
  readonly powerlessUri: string;
  /** How to run the same server over TLS, and what it must accept. */
  readonly tls: {
    server(certs: TestCertificates): ServerRecipe;
    /** The TLS server's URI, without a query. */
    uriAt(port: number): string;
    /** Queries after `uriAt(port)?` that must get a lock. */
    accepted(certs: TestCertificates): string[];
    /** Whole URIs that must fail with `BackendUnavailableError`. */
    refused(base: string, certs: TestCertificates): string[];
    /** True when the connection that holds `lock` is encrypted. */
    encrypted?(port: number, lock: string): Promise<boolean>;
  };
}

let counter = 0;

/** A request for `name` by a new owner, for one direct backend call. */
export function request(
  name: string,
  extra: Partial<LockRequest> = {},
): LockRequest {
  return {
    name,
    owner: `test:${Deno.pid}:${++counter}`,
    node: "test",
    limit: 1,
    expiresInMs: 4_000,
    guardMs: 0,
    wait: false,
    signal: new AbortController().signal,
    ...extra,
  };
}

/** A fresh lock name. */
export const fresh = (tag: string): string =>
  `${tag}-${crypto.randomUUID().slice(0, 13)}`;

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `body` with `count` backends of its own, closed afterwards. */
export async function withBackends(
  adapter: SqlAdapter,
  count: number,
  body: (...backends: Backend[]) => Promise<void>,
): Promise<void> {
  const backends = Array.from({ length: count }, () => adapter.fixture!.open());
  try {
    await body(...backends);
  } finally {
    await Promise.all(backends.map((backend) => backend.close()));
  }
}

/** Registers a test that needs the live server. */
export function serverTest(
  adapter: SqlAdapter,
  name: string,
  fn: () => Promise<void>,
): void {
  Deno.test({
    name: `${adapter.name}: ${name}`,
    ignore: adapter.fixture === undefined,
    sanitizeOps: false,
    sanitizeResources: false,
    fn,
  });
}
