/**
 * `deno task fleet`: coolock under faults, Jepsen-style. It starts real
 * clusters on loopback (clusters.ts), F nodes per backend that fire coolock
 * every T ms through proxies of their own (node.ts, proxy.ts), a nemesis per
 * backend that applies and heals a seeded schedule of faults (nemesis.ts,
 * faults.ts), and a monitor that watches the jobs (monitor.ts); all write
 * one history (history.ts), which the checker judges (checker.ts).
 *
 * Exit status: 0 no overlap; 1 an overlap on a backend under a fault the
 * README calls safe; 2 overlaps only where the README states the limit
 * (Redis failover); 64 bad flags; 69 a cluster did not start.
 *
 * @module
 */

import { check, verdict } from "./checker.ts";
import { parseHistory } from "./history.ts";
import { type FleetConfig, parseFlags, USAGE, UsageError } from "./flags.ts";
import { formatFindings, formatMarkdown, formatTable } from "./report.ts";
import { ClusterError, Interrupted, log, runFleet } from "./run.ts";
import type { FleetNode } from "./node.ts";

/** A kept history, judged again. */
function judge(text: string) {
  const events = parseHistory(text);
  return { report: check(events.events), events };
}

/** Where the run ran, for the report. */
function machine(): Record<string, unknown> {
  let cpu = "";
  try {
    cpu = /model name\s*:\s*(.+)/.exec(
      Deno.readTextFileSync("/proc/cpuinfo"),
    )?.[1] ?? "";
  } catch { /* not Linux */ }
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    loadAverage: Deno.loadavg(),
  };
}

if (import.meta.main) {
  let config: FleetConfig | "help";
  try {
    config = parseFlags(Deno.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`fleet: ${error.message}`);
    Deno.exit(64);
  }
  if (config === "help") {
    console.log(USAGE);
    Deno.exit(0);
  }
  const runDir = await Deno.makeTempDir({ prefix: "coolock-fleet-" });
  await Deno.chmod(runDir, 0o755);
  const historyPath = config.history ?? `${runDir}/history.jsonl`;
  const live = new Set<FleetNode>();
  const stop = new AbortController();
  const kill = () => {
    // The servers' own unload handler (server.ts) kills them; the nodes'
    // coolocks are ours to end.
    for (const node of live) {
      for (const run of node.runs.values()) {
        for (const signal of ["SIGCONT", "SIGKILL"] as const) {
          try {
            Deno.kill(run.pid, signal);
          } catch { /* gone */ }
        }
      }
    }
    if (!config.keep) {
      try {
        Deno.removeSync(runDir, { recursive: true });
      } catch { /* best effort */ }
    }
  };
  globalThis.addEventListener("unload", kill);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      if (stop.signal.aborted) {
        log("second signal: stopping now");
        Deno.exit(130);
      }
      log(`${signal}: healing, draining and cleaning up (again to stop now)`);
      stop.abort();
    });
  }
  let status = 0;
  try {
    const { report, events } = config.check
      ? judge(await Deno.readTextFile(config.check))
      : await runFleet(config, runDir, historyPath, stop.signal, live);
    const summary = {
      date: new Date().toISOString(),
      machine: machine(),
      seed: config.seed,
      nodes: config.nodes,
      intervalMs: config.intervalMs,
      short: config.short,
      badHistoryLines: events.bad,
      report,
      ...(config.markdown ? { markdown: formatMarkdown(report) } : {}),
    };
    if (config.json) {
      console.log(
        JSON.stringify(
          summary,
          (_, v) =>
            v === Infinity ? null : typeof v === "bigint" ? String(v) : v,
          2,
        ),
      );
    } else {
      console.log(formatTable(report));
      const findings = formatFindings(report, events.events);
      if (findings) console.log(`\n${findings}`);
      console.log(
        `\nseed ${config.seed}; ${report.overlaps} overlaps ` +
          `(${report.unexpectedOverlaps} the README doesn't admit)` +
          (events.bad ? `; ${events.bad} unreadable history lines` : ""),
      );
    }
    if (config.markdown && !config.json) {
      console.log(`\n${formatMarkdown(report)}`);
    }
    if (config.history) log(`history kept in ${config.history}`);
    if (config.keep) log(`run directory kept: ${runDir}`);
    status = stop.signal.aborted ? 130 : verdict(report);
  } catch (error) {
    if (error instanceof ClusterError) {
      console.error(`fleet: a cluster did not start:\n${error.message}`);
      status = 69;
    } else if (error instanceof Interrupted) {
      status = 130;
    } else {
      console.error(`fleet: ${error instanceof Error ? error.stack : error}`);
      status = 70;
    }
  }
  Deno.exit(status);
}
