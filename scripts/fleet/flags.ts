/**
 * The fleet's flags: which backends, how long, how many nodes, how often,
 * the seed, and what to print. The default cadence keeps the whole fleet
 * under a launch budget: each coolock run costs 0.1-0.3 s of CPU (loading
 * the backend's client), and this is a 2-core host shared with others.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { BACKENDS } from "./clusters.ts";

/** The default cadence keeps the fleet under this many launches a second. */
export const LAUNCH_BUDGET_PER_S = 6;
export const USAGE = `Usage: deno task fleet [--short] [options]

Runs coolock on real clusters under a nemesis and checks the history.

  --short              every backend, a few faults, at most 3 minutes
  --backend NAME       a backend, repeatable or a comma list (default: all
                       of them: ${BACKENDS.join(", ")})
  --minutes M          length of the fault phase (default 10; --short fits
                       the whole run in 3 minutes)
  --nodes F            nodes per backend (default 5; --short 3)
  --interval-ms T      each node fires coolock every T ms (default: 500 ms,
                       or slower so the fleet launches at most
                       ${LAUNCH_BUDGET_PER_S} coolocks a second, about one core)
  --ttl S              lease TTL in seconds, raised to a backend's minimum
                       (default 3; Consul 10)
  --seed N             the fault schedule's seed (default: random, printed)
  --history FILE       keep the raw history (JSON lines) in FILE
  --check FILE         judge a kept history and run nothing
  --json               print the report as JSON on stdout
  --markdown           print the README's table too (with --json: in it)
  --keep               keep the run's directory (node logs, history)
  -h, --help           show this help

Exit status: 0 no overlap; 1 an overlap the README doesn't admit; 2 overlaps
only where the README states the limit; 64 bad flags; 69 a cluster failed.`;

/** The run's settings, from the flags. */
export interface FleetConfig {
  readonly backends: readonly string[];
  readonly short: boolean;
  /** The fault phase, or undefined for --short's budget. */
  readonly phaseMs?: number;
  readonly nodes: number;
  readonly intervalMs: number;
  readonly ttlS: number;
  readonly seed: number;
  readonly history?: string;
  /** Judge this history file instead of running. */
  readonly check?: string;
  readonly json: boolean;
  readonly markdown: boolean;
  readonly keep: boolean;
}

/** Bad flags: one line, exit 64. */
export class UsageError extends Error {}

function number(
  flag: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new UsageError(
      `--${flag} must be a number from ${min} to ${max}, not '${text}'`,
    );
  }
  return value;
}

/** Parses the flags; throws UsageError naming what is wrong. */
export function parseFlags(args: readonly string[]): FleetConfig | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        short: { type: "boolean" },
        backend: { type: "string", multiple: true },
        minutes: { type: "string" },
        nodes: { type: "string" },
        "interval-ms": { type: "string" },
        ttl: { type: "string" },
        seed: { type: "string" },
        history: { type: "string" },
        check: { type: "string" },
        json: { type: "boolean" },
        markdown: { type: "boolean" },
        keep: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new UsageError(
      error instanceof Error ? error.message : String(error),
    );
  }
  if (values.help) return "help";
  const short = values.short ?? false;
  const backends = (values.backend ?? [...BACKENDS])
    .flatMap((b) => b.split(","))
    .map((b) => b.trim())
    .filter((b) => b !== "");
  for (const b of backends) {
    if (!(BACKENDS as readonly string[]).includes(b)) {
      throw new UsageError(
        `--backend '${b}' is not one of ${BACKENDS.join(", ")}`,
      );
    }
  }
  if (backends.length === 0) throw new UsageError("--backend names none");
  if (short && values.minutes !== undefined) {
    throw new UsageError("--short sets the length itself: drop --minutes");
  }
  const minutes = number("minutes", values.minutes, 10, 0.25, 24 * 60);
  const seed = values.seed === undefined
    ? Math.floor(Math.random() * 2 ** 31)
    : number("seed", values.seed, 0, 0, 2 ** 32 - 1);
  if (!Number.isInteger(seed)) {
    throw new UsageError(`--seed must be a whole number, not '${values.seed}'`);
  }
  const unique = [...new Set(backends)];
  const nodes = number("nodes", values.nodes, short ? 3 : 5, 1, 20);
  // Each launch costs 0.1-0.3 s of CPU (loading the backend's client); a
  // 2-core host shared with others can't take many more.
  const budgeted = Math.max(
    500,
    Math.ceil((1_000 * nodes * unique.length) / LAUNCH_BUDGET_PER_S),
  );
  return {
    backends: unique,
    short,
    phaseMs: short ? undefined : Math.round(minutes * 60_000),
    nodes,
    intervalMs: number(
      "interval-ms",
      values["interval-ms"],
      budgeted,
      100,
      600_000,
    ),
    ttlS: number("ttl", values.ttl, 3, 1, 60),
    seed,
    history: values.history,
    check: values.check,
    json: values.json ?? false,
    markdown: values.markdown ?? false,
    keep: values.keep ?? false,
  };
}
