/**
 * The library's options, checked once into milliseconds. Programmer mistakes
 * are `TypeError` or `RangeError`, as in the Deno standard library.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { checkLockName } from "./names.ts";

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
 * import type { LockOptions } from "./options.ts";
 * import { file } from "../mod.ts";
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
  /** The lock name. Default `coolock`. */
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
  /** This node's name. Default: the hostname. */
  readonly node?: string;
  /** Cancels the wait for the lock. */
  readonly signal?: AbortSignal;
  /**
   * Seconds before the TTL runs out at which a lease without a confirmed
   * renewal counts as lost. Default: a tenth of the TTL, at least 0.25 s.
   */
  readonly safetyMargin?: number;
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

function seconds(
  name: string,
  value: number | undefined,
  fallback: number,
  min = 0,
): number {
  if (value === undefined) return fallback * 1000;
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new TypeError(`Option '${name}' must be a number of seconds`);
  }
  if (value < min || !Number.isFinite(value) || value > MAX_SECONDS) {
    throw new RangeError(
      `Option '${name}' must be a number of seconds from ${min} to ${MAX_SECONDS} (366 days), not '${value}'`,
    );
  }
  return value * 1000;
}

/** Reads the hostname, or `localhost` where the permission is missing. */
export function defaultNode(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

/**
 * Checks the options and converts durations to milliseconds.
 *
 * @example
 * ```ts
 * import { checkOptions } from "./options.ts";
 * import { file } from "../mod.ts";
 * console.log(checkOptions({ backend: file(), ttl: 3 }).ttlMs); // 3000
 * ```
 */
export function checkOptions(options: LockOptions): CheckedOptions {
  const { backend } = options;
  if (
    typeof backend !== "object" || backend === null ||
    typeof backend.tryAcquire !== "function"
  ) {
    throw new TypeError("Option 'backend' must be a Backend");
  }
  const lock = options.lock ?? "coolock";
  checkLockName(lock);
  const node = options.node ?? defaultNode();
  if (typeof node !== "string" || node === "" || /\s/.test(node)) {
    throw new TypeError(
      `Option 'node' must be a non-empty name without spaces, not '${node}'`,
    );
  }
  const requestedTtlMs = seconds("ttl", options.ttl, 30, 0.001);
  const ttlMs = Math.max(requestedTtlMs, backend.capabilities.minTtlMs);
  const marginMs = options.safetyMargin === undefined
    ? Math.max(250, ttlMs / 10)
    : seconds("safetyMargin", options.safetyMargin, 0);
  if (marginMs >= (ttlMs * 2) / 3) {
    throw new RangeError(
      `Option 'safetyMargin' of ${
        marginMs / 1000
      } s leaves no time to renew a ${
        ttlMs / 1000
      } s TTL: keep it below two thirds of the TTL`,
    );
  }
  const limit = options.limit ?? 1;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new RangeError(
      `Option 'limit' must be a whole number from 1 to ${MAX_LIMIT}, not '${limit}'`,
    );
  }
  const guardMs = seconds("guardTime", options.guardTime, 30);
  const { maxTtlMs } = backend.capabilities;
  if (Math.max(ttlMs, guardMs) > maxTtlMs) {
    throw new RangeError(
      `Option '${ttlMs >= guardMs ? "ttl" : "guardTime"}' of ${
        Math.max(ttlMs, guardMs) / 1000
      } s is longer than the ${backend.scheme} backend can keep a lock (${
        maxTtlMs / 1000
      } s)`,
    );
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
    timeoutMs: seconds("operationTimeout", options.operationTimeout, 10, 0.001),
    log: options.log ?? (() => {}),
    onDeadline: options.onDeadline,
  };
}
