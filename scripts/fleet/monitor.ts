/**
 * Watches the jobs: tails the history for `start` lines, and polls each
 * running job's `/proc/<pid>/stat` until the job writes its `end` line or is
 * gone, which it records as a `gone` event: alive when last seen, gone when
 * first seen so. A zombie counts as gone (PID 1 here reaps no orphans, so a
 * SIGKILLed coolock's job stays a zombie), and so does a PID whose start time
 * changed (reused). It also tells the nemesis who holds each lock now.
 *
 * @module
 */

import type { HistoryTail, HistoryWriter, StartEvent } from "./history.ts";

interface Watched {
  readonly start: StartEvent;
  /** The process's start time in clock ticks, once read. */
  startTime?: string;
  lastSeen: number;
}

/** A process's state letter and start time, or undefined when gone. */
export function procStat(
  pid: number,
): { state: string; startTime: string } | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0], startTime: fields[19] };
  } catch {
    return undefined;
  }
}

/** The jobs running now, as the history and /proc tell. */
export class JobMonitor {
  readonly #watched = new Map<string, Watched>();

  constructor(
    readonly tail: HistoryTail,
    readonly history: HistoryWriter,
  ) {}

  /** Reads new history lines, then checks every running job once. */
  poll(): void {
    for (const event of this.tail.read()) {
      const key = `${event.b}\0${"tick" in event ? event.tick : ""}\0${
        "pid" in event ? event.pid : ""
      }`;
      if (event.ev === "start") {
        this.#watched.set(key, { start: event, lastSeen: event.ms });
      } else if (event.ev === "end") {
        this.#watched.delete(key);
      }
    }
    for (const [key, job] of this.#watched) {
      // Taken before the read: alive at the read means alive at this time.
      const before = Date.now();
      const stat = procStat(job.start.pid);
      job.startTime ??= stat?.startTime;
      if (stat && stat.state !== "Z" && stat.startTime === job.startTime) {
        job.lastSeen = before;
        continue;
      }
      this.#watched.delete(key);
      const { b, node, tick, pid } = job.start;
      this.history.append({
        ev: "gone",
        b,
        node,
        tick,
        pid,
        seen: job.lastSeen,
        ms: Date.now(),
      });
    }
  }

  /** The jobs of a backend running now. */
  holders(backend: string): StartEvent[] {
    return [...this.#watched.values()]
      .filter((job) => job.start.b === backend)
      .map((job) => job.start);
  }

  /** Polls every `everyMs` until the signal aborts, then once more. */
  async run(signal: AbortSignal, everyMs = 20): Promise<void> {
    while (!signal.aborted) {
      this.poll();
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
    this.poll();
  }
}
