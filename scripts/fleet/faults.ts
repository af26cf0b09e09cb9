/**
 * The node faults, aimed where they hurt: at the node that holds the lock
 * now (waiting a little for one), else at a random node. `partition-node`
 * cuts the node's proxies to every server; `kill-coolock` SIGKILLs the
 * holder's coolock (its watchdog must end the job); `stop-coolock` SIGSTOPs
 * it past the TTL (the watchdog's clock must end the job by the lease's
 * deadline), then SIGCONTs it. Cluster faults go to the deployment.
 *
 * @module
 */

import type { Deployment } from "./clusters.ts";
import type { JobMonitor } from "./monitor.ts";
import { type ApplyFault, NODE_FAULTS } from "./nemesis.ts";
import type { FleetNode } from "./node.ts";

const HOLDER_WAIT_MS = 4_000;

/** The applier of every fault a deployment's schedule holds. */
export function faultApplier(
  deployment: Deployment,
  nodes: readonly FleetNode[],
  monitor: JobMonitor,
): ApplyFault {
  const names = nodes.map((n) => n.options.node);

  /** The holder's node index and tick, once someone holds the lock. */
  const holder = async () => {
    const deadline = Date.now() + HOLDER_WAIT_MS;
    while (Date.now() < deadline) {
      const [job] = monitor.holders(deployment.backend);
      const index = job ? names.indexOf(job.node) : -1;
      if (job && index >= 0) return { index, tick: job.tick };
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return undefined;
  };

  return async (fault, rand) => {
    if (!(NODE_FAULTS as readonly string[]).includes(fault)) {
      return await deployment.applyClusterFault(fault, rand);
    }
    const held = await holder();
    if (fault === "partition-node") {
      const index = held?.index ?? Math.floor(rand() * nodes.length);
      deployment.partition(index);
      return {
        target: `${names[index]}${held ? " (holder)" : ""}`,
        heal: () => deployment.heal(index),
      };
    }
    // A coolock: the holder's run, else any run in flight.
    let index = held?.index;
    let run = held && nodes[held.index].runs.get(held.tick);
    if (!run) {
      const all = nodes.flatMap((node, i) =>
        [...node.runs.values()].map((r) => ({ i, r }))
      );
      if (all.length === 0) throw new Error("no coolock is running");
      const chosen = all[Math.floor(rand() * all.length) % all.length];
      index = chosen.i;
      run = chosen.r;
    }
    const target = `${names[index!]} coolock ${run.pid}${
      held && run.tick === held.tick ? " (holder)" : ""
    }`;
    const pid = run.pid;
    const signal = (name: Deno.Signal) => {
      try {
        Deno.kill(pid, name);
      } catch { /* it exited */ }
    };
    if (fault === "kill-coolock") {
      signal("SIGKILL");
      return { target, heal: () => {} };
    }
    signal("SIGSTOP");
    return { target, heal: () => signal("SIGCONT") };
  };
}
