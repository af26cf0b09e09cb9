/**
 * The checker: a pure function over the history (history.ts) that judges each
 * backend's run, Jepsen-style, by what the jobs did, never by what coolock
 * logged.
 *
 * - A job runs from its `start` line until its `end` line; a job that wrote
 *   none (SIGKILLed) ran at least until the harness last saw its process
 *   (`gone.seen`) and at most until it saw it gone (`gone.ms`).
 * - **Overlap**: a job starts while another job of the same lock surely still
 *   runs (with `--limit N`: while N others do, or one with its slot). One
 *   that starts in the other's unknown window is a *possible* overlap,
 *   reported apart and never counted as none.
 * - **Tokens out of order**: on a fencing backend, each job's token must be
 *   greater than every token handed out before it, in start order.
 * - **Unavailability**: in each stretch with no job running, the time from
 *   the first tick trying (clamped to the stretch) to the end of the last one
 *   that tried; the longest such time and their sum.
 * - Every event is laid at the door of the fault whose window holds it: from
 *   one fault's application to the next one's (`none` before the first). A
 *   job counts where it starts, a tick where it exits (its outcome), a
 *   stretch of unavailability where it starts.
 *
 * @module
 */

import type {
  FaultEvent,
  HistoryEvent,
  RunEvent,
  TickEvent,
} from "./history.ts";
import {
  type Disorder,
  disordersOf,
  type Job,
  jobsOf,
  type Overlap,
  overlapsOf,
  unavailability,
} from "./jobs.ts";

export type { Disorder, Job, Overlap };

/** The fault label for everything before the nemesis's first fault. */
export const NO_FAULT = "none";

/** The figures for one backend, overall or within one kind of fault. */
export interface Tally {
  /** How many faults of this kind were applied (all kinds in a total). */
  faults: number;
  /** coolock runs that exited. */
  ticks: number;
  /** Ticks skipped because the node had too many runs in flight. */
  skipped: number;
  /** Jobs that started. */
  ran: number;
  overlaps: number;
  possibleOverlaps: number;
  tokensOutOfOrder: number;
  /** Jobs without a token on a fencing backend. */
  tokensMissing: number;
  unavailableMaxMs: number;
  unavailableTotalMs: number;
  /** Ticks that exited 75 (lock lost). */
  lost: number;
  /** Ticks per exit code; `SIGKILL` and the like for signals. */
  exitCodes: Record<string, number>;
}

/** The verdict on one backend. */
export interface BackendReport {
  readonly backend: string;
  readonly fences: boolean;
  readonly knownLimits: readonly string[];
  readonly ttlMs: number;
  readonly nodes: number;
  /** From the first launch to the stop, in ms. */
  readonly durationMs: number;
  readonly total: Tally;
  /** Per fault kind, `none` first. */
  readonly byFault: Readonly<Record<string, Tally>>;
  readonly overlaps: readonly Overlap[];
  readonly possibleOverlaps: readonly Overlap[];
  readonly disorders: readonly Disorder[];
  /** Jobs whose end the history never tells (the harness stopped early). */
  readonly unfinished: number;
}

/** The checker's whole answer. */
export interface CheckReport {
  readonly backends: readonly BackendReport[];
  /** All overlaps, on every backend. */
  readonly overlaps: number;
  /** Overlaps outside the README's known limits. */
  readonly unexpectedOverlaps: number;
}

/** Exit status of the fleet run: 0 clean, 1 an overlap the README doesn't admit, 2 only admitted ones. */
export function verdict(report: CheckReport): 0 | 1 | 2 {
  if (report.unexpectedOverlaps > 0) return 1;
  return report.overlaps > 0 ? 2 : 0;
}

function emptyTally(): Tally {
  return {
    faults: 0,
    ticks: 0,
    skipped: 0,
    ran: 0,
    overlaps: 0,
    possibleOverlaps: 0,
    tokensOutOfOrder: 0,
    tokensMissing: 0,
    unavailableMaxMs: 0,
    unavailableTotalMs: 0,
    lost: 0,
    exitCodes: {},
  };
}

/** The windows of the faults: each from its application to the next one's. */
function faultWindows(
  faults: readonly FaultEvent[],
): (ms: number) => string {
  const applied = faults.filter((f) => f.phase === "apply")
    .sort((a, b) => a.ms - b.ms);
  return (ms) => {
    let label = NO_FAULT;
    for (const fault of applied) {
      if (fault.ms <= ms) label = fault.fault;
      else break;
    }
    return label;
  };
}

function exitLabel(tick: TickEvent): string {
  return tick.signal ?? String(tick.code);
}

/** Judges every backend in the history. */
export function check(events: readonly HistoryEvent[]): CheckReport {
  const runs = new Map<string, RunEvent>();
  for (const event of events) {
    if (event.ev === "run") runs.set(event.b, event);
  }
  const jobsByBackend = jobsOf(events);
  for (const backend of jobsByBackend.keys()) {
    if (!runs.has(backend)) {
      // A history without a header still gets judged, as a fencing mutex.
      runs.set(backend, {
        ev: "run",
        b: backend,
        ms: 0,
        fences: true,
        limit: 1,
        ttlMs: 0,
        nodes: 0,
        intervalMs: 0,
        knownLimits: [],
      });
    }
  }
  const reports: BackendReport[] = [];
  for (const run of [...runs.values()].sort((a, b) => a.b < b.b ? -1 : 1)) {
    reports.push(checkBackend(run, events, jobsByBackend.get(run.b) ?? []));
  }
  const overlaps = reports.reduce((n, r) => n + r.overlaps.length, 0);
  const unexpectedOverlaps = reports.reduce(
    (n, r) => n + r.overlaps.filter((o) => !o.known).length,
    0,
  );
  return { backends: reports, overlaps, unexpectedOverlaps };
}

function checkBackend(
  run: RunEvent,
  events: readonly HistoryEvent[],
  jobs: readonly Job[],
): BackendReport {
  const mine = events.filter((e) => e.b === run.b);
  const faults = mine.filter((e): e is FaultEvent => e.ev === "fault");
  const ticks = mine.filter((e): e is TickEvent => e.ev === "tick");
  const faultAt = faultWindows(faults);
  const known = new Set(run.knownLimits);
  const byFault = new Map<string, Tally>([[NO_FAULT, emptyTally()]]);
  const tally = (fault: string) => {
    let found = byFault.get(fault);
    if (!found) byFault.set(fault, found = emptyTally());
    return found;
  };
  const total = emptyTally();
  const both = (fault: string, add: (t: Tally) => void) => {
    add(total);
    add(tally(fault));
  };

  for (const fault of faults) {
    if (fault.phase === "apply") both(fault.fault, (t) => t.faults++);
  }
  for (const event of mine) {
    if (event.ev === "skip") both(faultAt(event.ms), (t) => t.skipped++);
  }
  const startOfTick = new Map<string, number>();
  for (const job of jobs) {
    startOfTick.set(
      job.tick,
      Math.min(startOfTick.get(job.tick) ?? Infinity, job.start),
    );
    both(faultAt(job.start), (t) => t.ran++);
  }
  const tries: [number, number][] = [];
  for (const tick of ticks) {
    const label = exitLabel(tick);
    // A tick's outcome (a kill, a loss) happens when it exits.
    both(faultAt(tick.exit), (t) => {
      t.ticks++;
      t.exitCodes[label] = (t.exitCodes[label] ?? 0) + 1;
      if (tick.code === 75) t.lost++;
    });
    const started = startOfTick.get(tick.tick);
    tries.push([tick.launch, Math.min(tick.exit, started ?? Infinity)]);
  }

  const { sure, possible } = overlapsOf(jobs, run.limit, faultAt, known);
  for (const overlap of sure) both(overlap.fault, (t) => t.overlaps++);
  for (const overlap of possible) {
    both(overlap.fault, (t) => t.possibleOverlaps++);
  }

  let disorders: Disorder[] = [];
  if (run.fences) {
    const found = disordersOf(jobs, faultAt, known);
    disorders = found.disorders;
    for (const d of disorders) both(d.fault, (t) => t.tokensOutOfOrder++);
    for (const job of found.missing) {
      both(faultAt(job.start), (t) => t.tokensMissing++);
    }
  }

  const launches = ticks.map((t) => t.launch);
  const begin = Math.min(
    ...launches,
    ...jobs.map((j) => j.start),
    Infinity,
  );
  const stop = mine.find((e) => e.ev === "stop")?.ms;
  const finish = Math.max(
    stop ?? -Infinity,
    ...ticks.map((t) => t.exit),
    ...jobs.map((j) => Number.isFinite(j.endHigh) ? j.endHigh : j.endLow),
    -Infinity,
  );
  if (Number.isFinite(begin) && finish > begin) {
    for (const [from, to] of unavailability(jobs, tries, begin, finish)) {
      const ms = to - from;
      both(faultAt(from), (t) => {
        t.unavailableTotalMs += ms;
        t.unavailableMaxMs = Math.max(t.unavailableMaxMs, ms);
      });
    }
  }

  return {
    backend: run.b,
    fences: run.fences,
    knownLimits: run.knownLimits,
    ttlMs: run.ttlMs,
    nodes: run.nodes,
    durationMs: Number.isFinite(begin) && finish > begin ? finish - begin : 0,
    total,
    byFault: Object.fromEntries(byFault),
    overlaps: sure,
    possibleOverlaps: possible,
    disorders,
    unfinished: jobs.filter((j) => j.how === "open").length,
  };
}
