/**
 * The nemesis: a schedule of faults drawn from a seed (so a run can be
 * repeated), and the loop that applies and heals them, one at a time, with a
 * quiet time after each heal long enough for a dead holder's lock to come
 * free, so that each fault's effects stay in its own window.
 *
 * The schedule is pure (`planFaults`): kinds, times and hold times. Whom a
 * fault hits (the current holder, the leader) is decided when it is applied,
 * by the deployment (clusters.ts) or the node faults here.
 *
 * @module
 */

import type { HistoryWriter } from "./history.ts";
import { pause } from "../../src/timing.ts";

/** Faults that hit one node: its network, or its coolock. */
export const NODE_FAULTS = [
  "partition-node",
  "kill-coolock",
  "stop-coolock",
] as const;

/** A small seeded PRNG (mulberry32): the same seed, the same numbers. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed for one backend's part of a run, from the run's seed. */
export function seedFor(seed: number, name: string): number {
  let hash = seed >>> 0;
  for (const char of name) {
    hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  }
  return hash;
}

/** One planned fault. */
export interface PlannedFault {
  readonly id: number;
  /** When to apply it, in ms from the start of the fault phase. */
  readonly at: number;
  readonly fault: string;
  /** How long it lasts before the heal (0: healed at once, as a kill). */
  readonly holdMs: number;
}

/** What shapes a schedule. */
export interface PlanOptions {
  readonly seed: number;
  /** The cluster faults the deployment offers. */
  readonly clusterFaults: readonly string[];
  /** The node faults that make sense for it. */
  readonly nodeFaults: readonly string[];
  /** The length of the fault phase. */
  readonly durationMs: number;
  readonly ttlMs: number;
  /** Within how long a dead holder's lock comes free on this backend. */
  readonly freeWithinMs: number;
  /** Quiet time before the first fault. Default 3 s. */
  readonly warmupMs?: number;
  /** At most this many faults. */
  readonly maxFaults?: number;
  /**
   * Spread the faults over the whole phase, with the slack shared out among
   * the quiet times, so that each has more ticks in its window.
   */
  readonly spread?: boolean;
}

function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** How long a fault of this kind lasts: past the TTL where that matters. */
export function holdFor(
  fault: string,
  ttlMs: number,
  rand: () => number,
): number {
  const past = ttlMs + 1_000 + Math.round(rand() * 1_500);
  if (fault === "kill-coolock") return 0;
  if (fault.startsWith("restart-")) return 0;
  if (fault === "leader-change") return 1_000 + Math.round(rand() * 2_000);
  return past;
}

/**
 * The schedule: cluster and node faults alternate, each list shuffled and
 * gone through before any kind repeats, until the phase is full. A shorter
 * phase gives a prefix of a longer one's schedule with the same seed.
 */
export function planFaults(options: PlanOptions): PlannedFault[] {
  const rand = random(options.seed);
  const lists = [options.clusterFaults, options.nodeFaults]
    .filter((list) => list.length > 0);
  const queues = lists.map(() => [] as string[]);
  const steps: { fault: string; holdMs: number; settleMs: number }[] = [];
  const warmupMs = options.warmupMs ?? 3_000;
  let at = warmupMs;
  for (let i = 0; lists.length > 0; i++) {
    const which = i % lists.length;
    if (queues[which].length === 0) {
      queues[which] = shuffled(lists[which], rand);
    }
    const fault = queues[which].shift()!;
    const holdMs = holdFor(fault, options.ttlMs, rand);
    const settleMs = options.freeWithinMs + 2_000 +
      Math.round(rand() * 1_000);
    if (at + holdMs + settleMs > options.durationMs) break;
    if (options.maxFaults !== undefined && steps.length >= options.maxFaults) {
      break;
    }
    steps.push({ fault, holdMs, settleMs });
    at += holdMs + settleMs;
  }
  const slack = options.spread && steps.length > 0
    ? Math.floor((options.durationMs - at) / steps.length)
    : 0;
  const plan: PlannedFault[] = [];
  at = warmupMs;
  for (const step of steps) {
    plan.push({
      id: plan.length + 1,
      at,
      fault: step.fault,
      holdMs: step.holdMs,
    });
    at += step.holdMs + step.settleMs + slack;
  }
  return plan;
}

/** A fault in place, and how to undo it. */
export interface AppliedFault {
  /** What it hit, for the history. */
  readonly target: string;
  heal(): Promise<void> | void;
}

/** Applies one fault of a kind; throws when it can't (then it is skipped). */
export type ApplyFault = (
  fault: string,
  rand: () => number,
) => Promise<AppliedFault>;

/**
 * Runs the plan from `startMs` (a `Date.now()` time): each fault applied at
 * its time, healed after its hold. An abort stops the schedule, but a fault
 * in place is always healed first.
 */
export async function runNemesis(
  plan: readonly PlannedFault[],
  options: {
    readonly backend: string;
    readonly startMs: number;
    readonly seed: number;
    readonly history: HistoryWriter;
    readonly apply: ApplyFault;
    readonly signal: AbortSignal;
    readonly log?: (line: string) => void;
  },
): Promise<void> {
  const rand = random(options.seed ^ 0x5bd1e995);
  for (const step of plan) {
    await pause(options.startMs + step.at - Date.now(), options.signal);
    if (options.signal.aborted) return;
    let applied: AppliedFault;
    try {
      applied = await options.apply(step.fault, rand);
    } catch (error) {
      options.log?.(
        `${options.backend}: fault ${step.id} (${step.fault}) not applied: ${
          error instanceof Error ? error.message : error
        }`,
      );
      continue;
    }
    options.history.append({
      ev: "fault",
      b: options.backend,
      id: step.id,
      fault: step.fault,
      phase: "apply",
      ms: Date.now(),
      target: applied.target,
    });
    options.log?.(`${options.backend}: ${step.fault} → ${applied.target}`);
    // The hold is not cut short by an abort: a fault is healed as planned.
    await pause(step.holdMs);
    try {
      await applied.heal();
    } catch (error) {
      options.log?.(
        `${options.backend}: healing fault ${step.id} (${step.fault}) failed: ${
          error instanceof Error ? error.message : error
        }`,
      );
    }
    options.history.append({
      ev: "fault",
      b: options.backend,
      id: step.id,
      fault: step.fault,
      phase: "heal",
      ms: Date.now(),
      target: applied.target,
    });
  }
}
