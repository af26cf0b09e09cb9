/**
 * Sample statistics and number formats for the benchmark: medians and p90
 * by nearest rank (no interpolation, so every figure is a measured run).
 *
 * @module
 */

/** The median and 90th percentile of a set of samples. */
export interface Summary {
  readonly median: number;
  readonly p90: number;
  readonly count: number;
}

/** The `q` quantile (0–1) by nearest rank; NaN for no samples. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Median and p90 of `samples`. */
export function summarize(samples: readonly number[]): Summary {
  return {
    median: quantile(samples, 0.5),
    p90: quantile(samples, 0.9),
    count: samples.length,
  };
}

/** Milliseconds with one decimal: `12.3 ms`. */
export function ms(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(1)} ms` : "–";
}

/** `median / p90` in milliseconds, or a dash without samples. */
export function spread(summary: Summary | undefined): string {
  if (!summary || summary.count === 0) return "–";
  return `${ms(summary.median)} / ${ms(summary.p90)}`;
}

/** Mebibytes (GNU time's KiB / 1024) with one decimal: `52.3 MB`, the goals' unit. */
export function mb(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(1)} MB` : "–";
}
