/**
 * The tests the SQL backends (PostgreSQL, MySQL) share beyond the contract
 * suite: what a session lock plus a lease row must do. Each test file hands
 * over a {@linkcode SqlAdapter} that does, out of band, what only its own
 * server and client know how to do.
 *
 * @module
 */

import type { SqlAdapter } from "./adapter.ts";
import { connectTests } from "./connect.ts";
import { faultTests } from "./faults.ts";
import { interopTests } from "./interop.ts";
import { lockTests } from "./locks.ts";

export type { SqlAdapter } from "./adapter.ts";

/** Registers the shared SQL tests for one backend. */
export function sqlSuite(adapter: SqlAdapter): void {
  connectTests(adapter);
  lockTests(adapter);
  faultTests(adapter);
  interopTests(adapter);
}
