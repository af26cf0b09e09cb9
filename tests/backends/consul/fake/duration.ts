/**
 * Go's `time.ParseDuration`, which Consul uses for `TTL`, `LockDelay` and
 * `wait`: `"10s"`, `"1.5m"`, `"15000ms"`, `"1h2m"`, or a bare `"0"`.
 *
 * @module
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  "μs": 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration into milliseconds, or `undefined` when Go would
 * reject it.
 *
 * @example
 * ```ts
 * import { parseGoDuration } from "./duration.ts";
 * console.log(parseGoDuration("1m30s")); // 90000
 * ```
 */
export function parseGoDuration(text: string): number | undefined {
  const match = /^([-+]?)(.*)$/.exec(text);
  const [, sign, rest] = match ?? ["", "", ""];
  if (rest === "0") return 0;
  if (rest === "") return undefined;
  let total = 0;
  const part = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  for (part.lastIndex = 0; part.lastIndex < rest.length;) {
    const found = part.exec(rest);
    if (!found) return undefined;
    total += Number(found[1]) * UNIT_MS[found[2]];
  }
  return sign === "-" ? -total : total;
}

/**
 * Formats milliseconds as Go prints a `time.Duration`, as Consul echoes it
 * in error messages: `"10s"`, `"1m0s"`, `"24h0m0s"`.
 *
 * @example
 * ```ts
 * import { formatGoDuration } from "./duration.ts";
 * console.log(formatGoDuration(86_400_000)); // 24h0m0s
 * ```
 */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1_000) return `${ms}ms`;
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const seconds = (ms % 60_000) / 1_000;
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}
