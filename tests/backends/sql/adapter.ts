/**
 * How the shared SQL tests reach one backend and its server: a
 * {@linkcode SqlAdapter}, and the helpers every one of them uses.
 *
 * @module
 */

import type { Backend, LockRequest } from "../../../src/backend.ts";
import type { ContractFixture } from "../../contract/fixture.ts";
import type { TestCertificates } from "../../helpers/certs.ts";
import type { ServerRecipe } from "../../helpers/servers/server.ts";

/** What the shared SQL tests need to know of one backend and its server. */
export interface SqlAdapter {
  /** The factory's name (`postgres`, `mysql`), also the test-name prefix. */
  readonly name: string;
  /** The backend module, which exports the factory under `name`. */
  readonly module: URL;
  /** The factory. */
  open(uri: string): Backend;
  /** What the server calls a connection, for test names. */
  readonly noun: "session" | "connection";
  /** A URI of this scheme on a host that doesn't exist. */
  readonly offlineUri: string;
  /** URIs the factory must refuse, and what its message must say. */
  readonly badUris: readonly (readonly [string, RegExp])[];
  /** The live server; `undefined` when it can't run here. */
  readonly fixture: ContractFixture | undefined;
  /** Ends the connection that holds `lock`, as an operator would: how many. */
  killHolder(lock: string): Promise<number>;
  /** Makes another owner the owner of `lock`'s row. */
  stealRow(lock: string): Promise<void>;
  /** How many of `names` have a row. */
  rows(names: readonly string[]): Promise<number>;
  /** How many tables named `coolock_locks` there are. */
  tables(): Promise<number>;
  /** How many connections the test user has open, besides the asking one. */
  sessions(): Promise<number>;
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

/** The code of a process that takes `name` and then waits to be killed. */
export function holderCode(adapter: SqlAdapter, name: string): string {
  return `import { ${adapter.name} } from ${
    JSON.stringify(adapter.module.href)
  };
    const claim = await ${adapter.name}(${
    JSON.stringify(adapter.fixture!.uri)
  }).tryAcquire({
      name: ${JSON.stringify(name)}, owner: "child", node: "child",
      expiresInMs: 60000, guardMs: 0, wait: false,
      signal: new AbortController().signal });
    console.log(claim ? "held" : "missed");
    setInterval(() => {}, 1000);`;
}
