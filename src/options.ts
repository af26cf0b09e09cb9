/**
 * The library's options, checked once into milliseconds. Programmer mistakes
 * are `TypeError` or `RangeError`, as in the Deno standard library.
 *
 * Each rule is written here once, as a "problem" in words that follow the
 * value's subject ("must not be negative"), so that the CLI can check a flag
 * or a config key with the same rule and say where the value came from. The
 * errors `checkOptions` throws carry their problem (`problemOf`), so the CLI
 * can map a rule that involves the backend (its longest TTL) or two options
 * (TTL against kill-after) back to the flag, variable or file that set it.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { lockNameProblem, nodeNameProblem } from "./names.ts";

/** Where a lease reports what it does; the CLI passes its logger. */
export type LogSink = (
  level: "debug" | "info" | "warning" | "error",
  message: string,
) => void;

/**
 * Options of {@linkcode acquire} and `withLock`: the CLI's option names in
 * camelCase, with durations in seconds. The defaults are the CLI's.
 *
 * @example
 * ```ts
 * import { file, type LockOptions } from "../mod.ts";
 * const options: LockOptions = {
 *   backend: file(),
 *   lock: "nightly-backup",
 *   ttl: 30,
 *   guardTime: 0,
 *   waitTimeout: 10,
 * };
 * ```
 */
export interface LockOptions {
  /** The coordination backend. */
  readonly backend: Backend;
  /**
   * The lock name: 1 to 200 characters, without control characters or white
   * space at either end. Default `coolock`.
   */
  readonly lock?: string;
  /** Lease time in seconds, renewed every third of it. Default 30. */
  readonly ttl?: number;
  /** Seconds to wait for a held lock; 0 tries once. Default 0. */
  readonly waitTimeout?: number;
  /** Seconds the lock stays held from acquisition, at least. Default 30. */
  readonly guardTime?: number;
  /**
   * How many holders the lock admits at once (a counting semaphore); the
   * lease's `slot` says which one it got. Every node must use the same
   * limit for a lock name. Default 1.
   */
  readonly limit?: number;
  /** This node's name: 1 to 200 characters, no white space. Default: the hostname. */
  readonly node?: string;
  /** Cancels the wait for the lock. */
  readonly signal?: AbortSignal;
  /**
   * Seconds before the TTL runs out at which a lease without a confirmed
   * renewal counts as lost. Default: a tenth of the TTL, at least 0.25 s.
   */
  readonly safetyMargin?: number;
  /**
   * Seconds a supervisor needs to end its job once the lock is feared lost
   * (the CLI's `--kill-after`); added to the safety margin, so the job is gone
   * before the TTL could let another holder in. Default 0.
   */
  readonly killAfter?: number;
  /** Seconds that one backend call may take. Default 10. */
  readonly operationTimeout?: number;
  /** Receives the lease's log messages. Default: none. */
  readonly log?: LogSink;
  /**
   * Called with the lease's local lost-lock deadline, a `performance.now()`
   * time, when the lease starts and each time a confirmed renewal moves it.
   * A supervisor hands it to its watchdog (the CLI does).
   */
  readonly onDeadline?: (deadline: number) => void;
}

/** The options, checked, with every duration in milliseconds. */
export interface CheckedOptions {
  readonly backend: Backend;
  readonly lock: string;
  readonly ttlMs: number;
  readonly waitMs: number;
  readonly guardMs: number;
  readonly limit: number;
  readonly node: string;
  readonly signal: AbortSignal | undefined;
  readonly marginMs: number;
  readonly timeoutMs: number;
  readonly log: LogSink;
  readonly onDeadline?: (deadline: number) => void;
}

/** The longest duration any option takes: 366 days, in seconds. */
export const MAX_SECONDS = 366 * 86_400;

/** The largest `limit`. */
export const MAX_LIMIT = 1_000;

/** The default safety margin for a TTL: a tenth of it, at least 0.25 s. */
export function defaultMarginMs(ttlMs: number): number {
  return Math.max(250, ttlMs / 10);
}

/**
 * What is wrong with a duration of `value` seconds, in words that follow its
 * subject, or `undefined`. `min` is the shortest allowed; with `above` the
 * duration must be longer than `min`.
 */
export function durationProblem(
  value: number,
  min = 0,
  above = false,
): string | undefined {
  if (Number.isNaN(value)) return "must be a number of seconds";
  if (value < min || (above && value === min)) {
    if (min === 0 && !above) return "must not be negative";
    return `must be ${above ? "more than" : "at least"} ${min} seconds`;
  }
  if (value > MAX_SECONDS) {
    return `must be at most 366 days (${MAX_SECONDS} seconds)`;
  }
  return undefined;
}

/** What is wrong with a `limit`, or `undefined`. */
export function limitProblem(limit: number): string | undefined {
  return Number.isInteger(limit) && limit >= 1 && limit <= MAX_LIMIT
    ? undefined
    : `must be a whole number from 1 to ${MAX_LIMIT}`;
}

/**
 * What `checkOptions` found wrong: the options involved, the first one to
 * blame, and the problem. With one option, `problem` follows its subject
 * ("must not be negative"); with several it is a clause of its own.
 */
export interface OptionProblem {
  readonly options: readonly (keyof LockOptions)[];
  readonly problem: string;
}

const PROBLEM = Symbol("coolock.optionProblem");

function invalid(
  Kind: TypeErrorConstructor | RangeErrorConstructor,
  found: OptionProblem,
  value?: unknown,
): Error {
  const [first, ...others] = found.options;
  const message = others.length === 0
    ? `Option '${first}' ${found.problem}${
      value === undefined ? "" : `, not '${String(value)}'`
    }`
    : `Options ${
      found.options.map((name) => `'${name}'`).join(" and ")
    }: ${found.problem}`;
  return Object.assign(new Kind(message), { [PROBLEM]: found });
}

/** The problem behind an error that `checkOptions` threw, if it is one. */
export function problemOf(error: unknown): OptionProblem | undefined {
  return typeof error === "object" && error !== null && PROBLEM in error
    ? (error as { [PROBLEM]: OptionProblem })[PROBLEM]
    : undefined;
}

function seconds(
  name: keyof LockOptions,
  value: number | undefined,
  fallback: number,
  min = 0,
  above = false,
): number {
  if (value === undefined) return fallback * 1000;
  if (typeof value !== "number") {
    throw invalid(TypeError, {
      options: [name],
      problem: "must be a number of seconds",
    }, value);
  }
  const problem = durationProblem(value, min, above);
  if (problem) throw invalid(RangeError, { options: [name], problem }, value);
  return value * 1000;
}

function name(
  option: "lock" | "node",
  value: unknown,
  problemFor: (name: string) => string | undefined,
): string {
  if (typeof value !== "string") {
    throw invalid(TypeError, {
      options: [option],
      problem: `must be a string, not ${typeof value}`,
    });
  }
  const problem = problemFor(value);
  if (problem) {
    throw invalid(TypeError, { options: [option], problem }, value);
  }
  return value;
}

/** Reads the hostname, or `localhost` where the permission is missing. */
export function defaultNode(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

/** Formats seconds for a message: `3`, `1.75`. */
function secs(ms: number): string {
  return String(Math.round(ms) / 1000);
}

/**
 * Checks the options and converts durations to milliseconds. Throws a
 * `TypeError` or `RangeError` that names the option; `problemOf` reads it.
 */
export function checkOptions(options: LockOptions): CheckedOptions {
  const { backend } = options;
  if (
    typeof backend !== "object" || backend === null ||
    typeof backend.tryAcquire !== "function"
  ) {
    throw invalid(TypeError, {
      options: ["backend"],
      problem: "must be a Backend",
    });
  }
  const lock = name("lock", options.lock ?? "coolock", lockNameProblem);
  const node = name("node", options.node ?? defaultNode(), nodeNameProblem);
  const requestedTtlMs = seconds("ttl", options.ttl, 30, 0, true);
  // The lease runs with the backend's shortest TTL at least; every rule
  // below judges that TTL, the one the lease will really have.
  const ttlMs = Math.max(requestedTtlMs, backend.capabilities.minTtlMs);
  const killAfterMs = seconds("killAfter", options.killAfter, 0);
  const baseMarginMs = options.safetyMargin === undefined
    ? defaultMarginMs(ttlMs)
    : seconds("safetyMargin", options.safetyMargin, 0);
  const marginMs = baseMarginMs + killAfterMs;
  const roomMs = (ttlMs * 2) / 3;
  if (marginMs >= roomMs) {
    const keep = roomMs - baseMarginMs;
    throw invalid(
      RangeError,
      killAfterMs > 0
        ? {
          options: ["killAfter", "ttl"],
          problem: `a kill-after of ${
            secs(killAfterMs)
          } s leaves no time to renew a ${secs(ttlMs)} s TTL: ${
            keep > 0
              ? `keep kill-after below ${(keep / 1000).toFixed(2)} s, or`
              : "lower kill-after and"
          } raise the TTL`,
        }
        : {
          options: ["safetyMargin", "ttl"],
          problem: `a safety margin of ${
            secs(marginMs)
          } s leaves no time to renew a ${
            secs(ttlMs)
          } s TTL: keep it below two thirds of the TTL`,
        },
    );
  }
  const limit = options.limit ?? 1;
  const limitIssue = limitProblem(limit);
  if (limitIssue) {
    throw invalid(
      RangeError,
      { options: ["limit"], problem: limitIssue },
      limit,
    );
  }
  const guardMs = seconds("guardTime", options.guardTime, 30);
  const { maxTtlMs } = backend.capabilities;
  for (
    const [option, ms] of [["ttl", ttlMs], ["guardTime", guardMs]] as const
  ) {
    if (ms <= maxTtlMs) continue;
    throw invalid(RangeError, {
      options: [option],
      problem: `of ${
        secs(ms)
      } s is longer than the ${backend.scheme} backend can keep a lock (${
        secs(maxTtlMs)
      } s)`,
    });
  }
  return {
    backend,
    lock,
    ttlMs,
    limit,
    waitMs: seconds("waitTimeout", options.waitTimeout, 0),
    guardMs,
    node,
    signal: options.signal,
    marginMs,
    timeoutMs: seconds(
      "operationTimeout",
      options.operationTimeout,
      10,
      0,
      true,
    ),
    log: options.log ?? (() => {}),
    onDeadline: options.onDeadline,
  };
}
