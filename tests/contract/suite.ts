/**
 * The contract suite: one parameterized set of tests that every backend must
 * pass, unchanged, against its real server. `tests/contract/<backend>.test.ts`
 * builds the backend's fixture (`tests/backends/<family>/fixture.ts`) and
 * calls `contract(fixture)`. A test that needs what a backend lacks (a
 * server to pause, a fair queue, a stored limit) is registered as skipped,
 * with the reason in its name.
 *
 * Themes: the basics (`basics.ts`), the lifecycle and `close()` (`lifecycle.ts`),
 * the one promise under faults (`safety.ts`), the semaphore (`limit.ts`) and
 * the operator's calls (`operate.ts`).
 *
 * @module
 */

import { basics } from "./basics.ts";
import { registrar } from "./common.ts";
import type { ContractFixture } from "./fixture.ts";
import { lifecycle } from "./lifecycle.ts";
import { limit } from "./limit.ts";
import { operate } from "./operate.ts";
import { safety } from "./safety.ts";

/** The themes, by name, for running a part of the suite. */
const THEMES = { basics, lifecycle, safety, limit, operate } as const;

/**
 * Registers the contract tests for one backend. `COOLOCK_CONTRACT=safety,limit`
 * runs only those themes (for working on one part; CI runs them all).
 */
export function contract(
  fixture: ContractFixture | undefined,
  label = fixture?.name ?? "backend",
): void {
  const test = registrar(fixture, label);
  const only = Deno.env.get("COOLOCK_CONTRACT")?.split(",").map((s) =>
    s.trim()
  );
  for (const [name, register] of Object.entries(THEMES)) {
    if (only && !only.includes(name)) continue;
    register(test, label);
  }
}
