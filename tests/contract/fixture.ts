/**
 * What a backend's test file hands the generic contract suite
 * (tests/contract.ts): how to reach the live test server, and how to do to
 * a lock, out of band, what an operator, a bug or a network would.
 *
 * @module
 */

import type { Backend } from "../../src/backend.ts";
import type { TestServer } from "../helpers/servers/server.ts";

export interface ContractFixture {
  /** The backend's name in test names, such as `redis`. */
  readonly name: string;
  /** The URI of the live test server, as the CLI takes it. */
  readonly uri: string;
  /** The same backend reached through another port on 127.0.0.1 (a proxy). */
  uriAt(port: number): string;
  /** A URI that carries `secret` as its password (or token). */
  uriWithSecret(secret: string): string;
  /** A URI of this scheme whose server is down: nothing listens there. */
  readonly unreachableUri: string;
  /** Opens a backend on its own connection(s). */
  open(uri?: string): Backend;
  /** The TTL in seconds the suite uses: short, but no shorter than the backend allows. */
  readonly ttl: number;
  /** The server, for SIGSTOP and SIGKILL faults; absent for the file backend. */
  readonly server?: TestServer;
  /**
   * Removes the lock out of band (deletes the key, the node, the row, or
   * terminates the holder's session), so that another owner could take it.
   */
  remove(lock: string): Promise<void>;
  /** Environment for CLI processes that this backend needs. */
  readonly env?: Record<string, string>;
}
