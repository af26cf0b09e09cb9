/**
 * A fleet node: a loop that fires coolock every `intervalMs`, as cron would,
 * through the node's own proxies (its URI), on the backend's one shared
 * lock. Like cron, it doesn't wait for the previous run: a stopped or hung
 * coolock doesn't stop the next tick, up to `maxInFlight` runs at once (a
 * tick beyond that is recorded as skipped, so a partition can't pile up
 * processes on a 2-core host). Each run's exit code goes into the history;
 * the job (history.ts `JOB_SCRIPT`, in `$FLEET_JOB`) writes its own start
 * and end lines.
 *
 * coolock runs exactly as a user would run it from cron: `deno run -A
 * cli.ts --backend … --lock fleet-<backend> --ttl … --guard-time 0 -w 0
 * --shell <job>`, in a clean environment, with its log and stderr appended
 * to the node's log file.
 *
 * @module
 */

import { type HistoryWriter, JOB_COMMAND, JOB_SCRIPT } from "./history.ts";
import { pause } from "../../src/timing.ts";

/** The CLI under test. */
export const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** The exit code the nodes ask for when the lock was held elsewhere. */
export const CONFLICT_EXIT_CODE = 3;

/** How a node runs. */
export interface NodeOptions {
  readonly backend: string;
  /** `n1` … */
  readonly node: string;
  readonly uri: string;
  readonly lock: string;
  readonly ttlS: number;
  readonly killAfterS: number;
  readonly intervalMs: number;
  /** The node's first tick comes this long after the start. */
  readonly phaseMs: number;
  readonly maxInFlight: number;
  /** How long each job works, in seconds (drawn per tick). */
  readonly holdS: () => number;
  readonly history: HistoryWriter;
  readonly logPath: string;
  /** `HOME` for coolock: a directory without config files. */
  readonly home: string;
}

/** One coolock run in flight. */
export interface Run {
  readonly tick: string;
  readonly pid: number;
  readonly launched: number;
  readonly status: Promise<Deno.CommandStatus>;
}

/** A node of the fleet. */
export class FleetNode {
  /** Runs in flight, by tick. */
  readonly runs = new Map<string, Run>();
  #seq = 0;

  constructor(readonly options: NodeOptions) {}

  /** The argv after `deno run -A`. */
  args(): string[] {
    const o = this.options;
    return [
      "--quiet",
      CLI,
      "--backend",
      o.uri,
      "--lock",
      o.lock,
      "--ttl",
      String(o.ttlS),
      "--kill-after",
      String(o.killAfterS),
      "--guard-time",
      "0",
      "-w",
      "0",
      "--conflict-exit-code",
      String(CONFLICT_EXIT_CODE),
      "--node",
      o.node,
      "--log-file",
      "-",
      "--shell",
      "--",
      JOB_COMMAND,
    ];
  }

  /** Fires ticks until the signal aborts; then waits for the runs in flight. */
  async loop(signal: AbortSignal): Promise<void> {
    const o = this.options;
    let next = Date.now() + o.phaseMs;
    while (true) {
      await pause(next - Date.now(), signal);
      if (signal.aborted) break;
      if (this.runs.size >= o.maxInFlight) {
        o.history.append({
          ev: "skip",
          b: o.backend,
          node: o.node,
          ms: Date.now(),
        });
      } else {
        this.launch();
      }
      next += o.intervalMs;
      // A starved event loop doesn't fire a burst of late ticks.
      if (next < Date.now()) next = Date.now() + o.intervalMs;
    }
  }

  /** Starts one coolock run now. */
  launch(): Run {
    const o = this.options;
    const tick = `${o.node}.${++this.#seq}`;
    const launched = Date.now();
    const child = new Deno.Command("/bin/sh", {
      // exec keeps the PID: the nemesis's signals reach coolock itself.
      args: [
        "-c",
        'exec "$0" "$@" >>"$FLEET_LOG" 2>&1',
        Deno.execPath(),
        "run",
        "-A",
        ...this.args(),
      ],
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: o.home,
        DENO_DIR: Deno.env.get("DENO_DIR") ??
          `${Deno.env.get("HOME")}/.cache/deno`,
        NO_COLOR: "1",
        FLEET_LOG: o.logPath,
        FLEET_HISTORY: o.history.path,
        FLEET_BACKEND: o.backend,
        FLEET_NODE: o.node,
        FLEET_TICK: tick,
        FLEET_HOLD: o.holdS().toFixed(3),
        FLEET_JOB: JOB_SCRIPT,
      },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const status = child.status;
    const run: Run = { tick, pid: child.pid, launched, status };
    this.runs.set(tick, run);
    void status.then((s) => {
      this.runs.delete(tick);
      o.history.append({
        ev: "tick",
        b: o.backend,
        node: o.node,
        tick,
        pid: child.pid,
        launch: launched,
        exit: Date.now(),
        code: s.code,
        ...(s.signal ? { signal: s.signal } : {}),
      });
    });
    return run;
  }

  /**
   * Waits up to `ms` for the runs in flight, then resumes and SIGKILLs what
   * is left (its watchdog then ends its job).
   */
  async drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.runs.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const run of this.runs.values()) {
      for (const signal of ["SIGCONT", "SIGKILL"] as const) {
        try {
          Deno.kill(run.pid, signal);
        } catch { /* gone */ }
      }
    }
    await Promise.all([...this.runs.values()].map((r) => r.status));
  }
}
