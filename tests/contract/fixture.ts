/**
 * What a backend's test setup hands the generic contract suite
 * (tests/contract/suite.ts): how to reach the live test server, what can be
 * done to it, and how to do to a lock, out of band, what an operator, a bug
 * or a network would. Each family builds its fixture in
 * `tests/backends/<family>/fixture.ts`; `tests/contract/<backend>.test.ts`
 * runs the suite on it.
 *
 * @module
 */

import type { Backend } from "../../src/backend.ts";
import type { TestServer } from "../helpers/servers/server.ts";

/** Faults that the backend's setup lets the suite inject. */
export interface Faults {
  /** `server.pause()`/`resume()` (SIGSTOP): a hung server. */
  readonly pause: boolean;
  /** A TCP proxy in front of `server.port` can cut the holder off. */
  readonly partition: boolean;
  /**
   * `server.kill()` then `server.restart()`: `"keeps"` when locks survive
   * (persistent state: etcd, ZooKeeper, the SQL rows), `"loses"` when the
   * restarted server is empty (Redis without persistence, memcached), and
   * absent when the setup can't restart the server.
   */
  readonly restart?: "keeps" | "loses";
  /**
   * Ends the server-side session or connection that holds `lock`
   * (`pg_terminate_backend`, MySQL `KILL`, a ZooKeeper session expiry, a
   * Consul session destroy), as a DBA or a network would. Absent where the
   * backend has no such session (Redis, memcached, etcd leases, file).
   */
  dropSession?(lock: string): Promise<void>;
}

/** A backend's live test setup, for the contract suite. */
export interface ContractFixture {
  /** The backend's name in test names, such as `redis`. */
  readonly name: string;
  /** The URI of the live test server, as the CLI takes it. */
  readonly uri: string;
  /** The same backend reached through another port on 127.0.0.1 (a proxy). */
  uriAt(port: number): string;
  /**
   * A URI that carries `secret` as its password (or token); absent for a
   * backend that takes no credentials (file).
   */
  uriWithSecret?(secret: string): string;
  /** A URI of this scheme whose server is down: nothing listens there. */
  readonly unreachableUri: string;
  /** Opens a backend on its own connection(s). */
  open(uri?: string): Backend;
  /**
   * The module that exports the backend's factory, relative to the repo
   * root (`backends/redis/mod.ts`), and the factory's name (`redis`), for
   * tests that import it in a fresh process.
   */
  readonly entry: { readonly module: string; readonly factory: string };
  /** The TTL in seconds the suite uses: short, but no shorter than the backend allows. */
  readonly ttl: number;
  /**
   * How long after its holder died (its job already gone) a lock is free
   * again at the latest, in ms: TTL + 1 s on most backends; Consul's is
   * 2 × TTL + 1 s plus lock-delay; the file backend's is 1 s.
   */
  readonly freeWithinMs: number;
  /** The server, for faults; absent for the file backend. */
  readonly server?: TestServer;
  /** What the suite may do to the server. */
  readonly faults: Faults;
  /**
   * Removes the lock out of band (deletes the key, the node, the row), so
   * that another owner could take it.
   */
  remove(lock: string): Promise<void>;
  /** Environment for CLI processes that this backend needs. */
  readonly env?: Record<string, string>;
}
