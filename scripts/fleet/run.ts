/**
 * One fleet run: every backend's servers started at once, then per backend
 * its nodes (node.ts) and its nemesis (nemesis.ts, faults.ts) for the fault
 * phase, all writing one history that the monitor (monitor.ts) watches;
 * then the last faults healed, the nodes drained, every coolock ended and
 * every server stopped, whatever happened, and the history judged
 * (checker.ts).
 *
 * @module
 */

import { check, type CheckReport } from "./checker.ts";
import { deploy, type Deployment } from "./clusters.ts";
import { faultApplier } from "./faults.ts";
import type { FleetConfig } from "./flags.ts";
import { HistoryTail, HistoryWriter, parseHistory } from "./history.ts";
import { JobMonitor } from "./monitor.ts";
import { planFaults, random, runNemesis, seedFor } from "./nemesis.ts";
import { FleetNode } from "./node.ts";

/** The whole run in 3 minutes: setup, this margin for drain and teardown. */
const SHORT_BUDGET_MS = 180_000;
const SHORT_RESERVE_MS = 25_000;
const SHORT_MIN_PHASE_MS = 60_000;
/** At most this many faults per backend in a short run. */
const SHORT_MAX_FAULTS = 4;
/**
 * coolock runs in flight per node, at most (cron has no such limit): a
 * stopped or partitioned one and the next; more would pile up processes.
 */
const MAX_IN_FLIGHT = 2;
const KILL_AFTER_S = 0.5;
/** The longest job, so that a drain stays short. */
const MAX_HOLD_S = 8;

export const log = (line: string) => console.error(`fleet: ${line}`);

/** Half the jobs are short; half outlive the TTL, so they renew. */
function holds(ttlS: number, rand: () => number): () => number {
  return () =>
    rand() < 0.5
      ? 0.2 + rand() * 0.8
      : Math.min(MAX_HOLD_S, ttlS * (1.2 + rand() * 0.8));
}

interface Running {
  readonly deployment: Deployment;
  readonly nodes: FleetNode[];
}

/** Runs the fleet; resolves the report (and the history's events). */
export async function runFleet(
  config: FleetConfig,
  runDir: string,
  historyPath: string,
  stop: AbortSignal,
  live: Set<FleetNode>,
): Promise<{ report: CheckReport; events: ReturnType<typeof parseHistory> }> {
  const began = Date.now();
  const home = `${runDir}/home`;
  await Deno.mkdir(home);
  await Deno.writeTextFile(historyPath, "");
  const history = new HistoryWriter(historyPath);
  const monitor = new JobMonitor(new HistoryTail(historyPath), history);
  const monitorStop = new AbortController();
  const monitoring = monitor.run(monitorStop.signal);

  log(`seed ${config.seed}; starting ${config.backends.join(", ")}`);
  const settled = await Promise.allSettled(config.backends.map(async (b) => {
    const t = Date.now();
    const d = await deploy(b, {
      nodes: config.nodes,
      ttlS: config.ttlS,
      dir: runDir,
    });
    log(
      `${b}: ${d.description} up in ${((Date.now() - t) / 1_000).toFixed(1)} s`,
    );
    return d;
  }));
  const deployments = settled.flatMap((s) =>
    s.status === "fulfilled" ? [s.value] : []
  );
  const failures = settled.flatMap((s, i) =>
    s.status === "rejected" ? [`${config.backends[i]}: ${s.reason}`] : []
  );
  const running: Running[] = [];
  try {
    if (failures.length > 0) {
      throw new ClusterError(failures.join("\n"));
    }
    if (stop.aborted) throw new Interrupted();
    const setupMs = Date.now() - began;
    const phaseMs = config.phaseMs ??
      Math.max(
        SHORT_MIN_PHASE_MS,
        SHORT_BUDGET_MS - setupMs - SHORT_RESERVE_MS,
      );
    log(
      `fault phase of ${
        (phaseMs / 1_000).toFixed(0)
      } s, ${config.nodes} nodes per backend, a tick every ${config.intervalMs} ms`,
    );

    const phase = AbortSignal.any([stop, AbortSignal.timeout(phaseMs)]);
    const startMs = Date.now();
    const nemeses: Promise<void>[] = [];
    const loops: Promise<void>[] = [];
    for (const d of deployments) {
      const nodes = Array.from({ length: config.nodes }, (_, i) => {
        const name = `n${i + 1}`;
        return new FleetNode({
          backend: d.backend,
          node: name,
          uri: d.uri(i),
          lock: `fleet-${d.backend}`,
          ttlS: d.ttlS,
          killAfterS: KILL_AFTER_S,
          intervalMs: config.intervalMs,
          phaseMs: Math.round((i * config.intervalMs) / config.nodes),
          maxInFlight: MAX_IN_FLIGHT,
          holdS: holds(
            d.ttlS,
            random(seedFor(config.seed, `${d.backend}/${name}`)),
          ),
          history,
          logPath: `${runDir}/${d.backend}-${name}.log`,
          home,
        });
      });
      nodes.forEach((n) => live.add(n));
      running.push({ deployment: d, nodes });
      history.append({
        ev: "run",
        b: d.backend,
        ms: startMs,
        fences: d.fences,
        limit: 1,
        ttlMs: d.ttlS * 1_000,
        nodes: config.nodes,
        intervalMs: config.intervalMs,
        knownLimits: d.knownLimits,
      });
      const seed = seedFor(config.seed, d.backend);
      const plan = planFaults({
        seed,
        clusterFaults: d.clusterFaults,
        nodeFaults: d.nodeFaults,
        durationMs: phaseMs,
        ttlMs: d.ttlS * 1_000,
        freeWithinMs: d.freeWithinMs,
        maxFaults: config.short ? SHORT_MAX_FAULTS : undefined,
        spread: config.short,
      });
      log(
        `${d.backend}: TTL ${d.ttlS} s; faults ${
          plan.map((p) => `${p.fault}@${(p.at / 1_000).toFixed(0)}s`).join(
            ", ",
          ) || "none"
        }`,
      );
      loops.push(...nodes.map((n) => n.loop(phase)));
      nemeses.push(runNemesis(plan, {
        backend: d.backend,
        startMs,
        seed,
        history,
        apply: faultApplier(d, nodes, monitor),
        signal: phase,
        log,
      }));
    }
    await Promise.all(loops);
    const stopped = Date.now();
    for (const d of deployments) {
      history.append({ ev: "stop", b: d.backend, ms: stopped });
    }
    log("phase over: healing the last faults, draining the nodes");
    await Promise.all(nemeses);
    await Promise.all(
      running.flatMap(({ nodes }) =>
        nodes.map((n) => n.drain((MAX_HOLD_S + KILL_AFTER_S + 4) * 1_000))
      ),
    );
  } finally {
    // Whatever happened, every coolock goes before the servers do.
    await Promise.all(
      running.flatMap(({ nodes }) => nodes.map((n) => n.drain(0))),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    monitorStop.abort();
    await monitoring;
    history.close();
    await Promise.allSettled(deployments.map((d) => d.close()));
  }
  const events = parseHistory(await Deno.readTextFile(historyPath));
  return { report: check(events.events), events };
}

/** A cluster did not start (exit 69). */
export class ClusterError extends Error {}
/** Stopped by a signal before the fault phase. */
export class Interrupted extends Error {}
