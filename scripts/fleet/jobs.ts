/**
 * What ran when, from the history: the jobs (each a start line and its end,
 * or the span in which the monitor saw it go), the overlaps among them, the
 * tokens out of order, and the stretches with no holder while nodes tried.
 * checker.ts tallies these per backend and fault.
 *
 * @module
 */

import type {
  EndEvent,
  GoneEvent,
  HistoryEvent,
  StartEvent,
} from "./history.ts";

/** One job as the checker reconstructs it. */
export interface Job {
  readonly backend: string;
  readonly node: string;
  readonly tick: string;
  readonly pid: number;
  readonly token: string;
  readonly slot: string;
  readonly start: number;
  /** Surely running until here. */
  readonly endLow: number;
  /** Surely gone by here (`Infinity` if the history never says). */
  readonly endHigh: number;
  /** How it ended: its own end line, SIGTERM, seen gone, or unknown. */
  readonly how: "end" | "term" | "gone" | "open";
}

/** Two jobs of one lock that ran at once. */
export interface Overlap {
  readonly first: Job;
  readonly second: Job;
  /** The fault in whose window the second job started. */
  readonly fault: string;
  /** How long both surely ran together. */
  readonly ms: number;
  /** Whether the README documents this backend losing locks under this fault. */
  readonly known: boolean;
}

/** A job whose token was not above every token before it. */
export interface Disorder {
  readonly job: Job;
  /** The highest token handed out before, and to whom. */
  readonly previous: Job;
  readonly fault: string;
  readonly known: boolean;
}

const jobKey = (b: string, tick: string, pid: number) =>
  `${b}\0${tick}\0${pid}`;

/** Rebuilds the jobs of the history, per backend, in start order. */
export function jobsOf(events: readonly HistoryEvent[]): Map<string, Job[]> {
  const starts = new Map<string, StartEvent>();
  const ends = new Map<string, EndEvent>();
  const gones = new Map<string, GoneEvent>();
  for (const event of events) {
    if (event.ev === "start") {
      starts.set(jobKey(event.b, event.tick, event.pid), event);
    } else if (event.ev === "end") {
      ends.set(jobKey(event.b, event.tick, event.pid), event);
    } else if (event.ev === "gone") {
      gones.set(jobKey(event.b, event.tick, event.pid), event);
    }
  }
  const jobs = new Map<string, Job[]>();
  for (const [key, start] of starts) {
    const end = ends.get(key);
    const gone = gones.get(key);
    let endLow = start.ms, endHigh = Infinity;
    let how: Job["how"] = "open";
    if (end) {
      endLow = endHigh = Math.max(end.ms, start.ms);
      how = end.sig ? "term" : "end";
    } else if (gone) {
      endLow = Math.max(gone.seen, start.ms);
      endHigh = Math.max(gone.ms, endLow);
      how = "gone";
    }
    const list = jobs.get(start.b) ?? [];
    list.push({
      backend: start.b,
      node: start.node,
      tick: start.tick,
      pid: start.pid,
      token: String(start.token ?? ""),
      slot: String(start.slot ?? ""),
      start: start.ms,
      endLow,
      endHigh,
      how,
    });
    jobs.set(start.b, list);
  }
  for (const list of jobs.values()) {
    list.sort((a, b) => a.start - b.start || a.endLow - b.endLow);
  }
  return jobs;
}

function parseToken(token: string): bigint | undefined {
  return /^\d+$/.test(token) ? BigInt(token) : undefined;
}

/**
 * Every pair of jobs that surely ran at once (a mutex: anyone running; a
 * semaphore: the same slot, or `limit` others), and those that may have.
 */
export function overlapsOf(
  jobs: readonly Job[],
  limit: number,
  faultAt: (ms: number) => string,
  known: ReadonlySet<string>,
): { sure: Overlap[]; possible: Overlap[] } {
  const sure: Overlap[] = [];
  const possible: Overlap[] = [];
  let active: Job[] = [];
  for (const job of jobs) {
    active = active.filter((other) => other.endHigh > job.start);
    const running = active.filter((other) => other.endLow > job.start);
    const unknown = active.filter((other) => other.endLow <= job.start);
    // A mutex conflicts with anyone running; a semaphore with its own slot,
    // or once `limit` others run.
    const conflicts = limit <= 1 || running.length >= limit
      ? running
      : running.filter((other) => other.slot === job.slot);
    const fault = faultAt(job.start);
    for (const first of conflicts) {
      sure.push({
        first,
        second: job,
        fault,
        ms: Math.min(first.endLow, job.endLow) - job.start,
        known: known.has(fault),
      });
    }
    const maybe = limit <= 1
      ? unknown
      : unknown.filter((other) => other.slot === job.slot);
    for (const first of maybe) {
      possible.push({
        first,
        second: job,
        fault,
        ms: 0,
        known: known.has(fault),
      });
    }
    active.push(job);
  }
  return { sure, possible };
}

/** Jobs whose token is not above every token before them; jobs without one. */
export function disordersOf(
  jobs: readonly Job[],
  faultAt: (ms: number) => string,
  known: ReadonlySet<string>,
): { disorders: Disorder[]; missing: Job[] } {
  const disorders: Disorder[] = [];
  const missing: Job[] = [];
  let highest: { token: bigint; job: Job } | undefined;
  for (const job of jobs) {
    const token = parseToken(job.token);
    if (token === undefined) {
      missing.push(job);
      continue;
    }
    if (highest && token <= highest.token) {
      const fault = faultAt(job.start);
      disorders.push({
        job,
        previous: highest.job,
        fault,
        known: known.has(fault),
      });
    }
    if (!highest || token > highest.token) highest = { token, job };
  }
  return { disorders, missing };
}

/**
 * The stretches with no job running, and within each the span from the
 * first try (`[launch, exit or job start]` of a tick) to the end of the
 * last: `[from, to]` pairs.
 */
export function unavailability(
  jobs: readonly Job[],
  tries: readonly (readonly [number, number])[],
  begin: number,
  finish: number,
): [number, number][] {
  // Running intervals, merged.
  const held: [number, number][] = [];
  for (const job of jobs) {
    const end = Number.isFinite(job.endHigh) ? job.endHigh : finish;
    const last = held[held.length - 1];
    if (last && job.start <= last[1]) last[1] = Math.max(last[1], end);
    else held.push([job.start, end]);
  }
  const gaps: [number, number][] = [];
  let from = begin;
  for (const [start, end] of held) {
    if (start > from) gaps.push([from, start]);
    from = Math.max(from, end);
  }
  if (finish > from) gaps.push([from, finish]);
  const sorted = [...tries].sort((a, b) => a[0] - b[0]);
  const spans: [number, number][] = [];
  for (const [g0, g1] of gaps) {
    let first = Infinity, last = -Infinity;
    for (const [t0, t1] of sorted) {
      if (t0 >= g1) break;
      if (t1 <= g0) continue;
      first = Math.min(first, Math.max(t0, g0));
      last = Math.max(last, Math.min(t1, g1));
    }
    if (last > first) spans.push([first, last]);
  }
  return spans;
}
