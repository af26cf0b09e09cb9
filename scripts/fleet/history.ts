/**
 * The fleet's history: one file of JSON lines that every job and the harness
 * append to. Jobs write their own `start` and `end` lines (a shell `>>`
 * append of one short line is one `write(2)` with `O_APPEND`, so lines from
 * many processes never interleave); the harness writes the rest: the run's
 * header per backend, each tick's exit code, each fault applied and healed,
 * and when a job that wrote no `end` line was seen gone.
 *
 * Times are milliseconds of the wall clock (`date +%s%3N` in the job,
 * `Date.now()` in the harness): one clock, since everything runs on one
 * host. The checker (checker.ts) is a pure function over these events.
 *
 * @module
 */

/** The header of one backend's run: what the checker needs to judge it. */
export interface RunEvent {
  readonly ev: "run";
  readonly b: string;
  readonly ms: number;
  /** Whether the backend hands out fencing tokens that must increase. */
  readonly fences: boolean;
  /** How many may hold the lock at once (1: a mutex). */
  readonly limit: number;
  readonly ttlMs: number;
  readonly nodes: number;
  readonly intervalMs: number;
  /** Fault kinds under which the README says this backend can lose a lock. */
  readonly knownLimits: readonly string[];
}

/** A job's first line, written by the job itself once it runs. */
export interface StartEvent {
  readonly ev: "start";
  readonly b: string;
  readonly node: string;
  readonly tick: string;
  readonly ms: number;
  /** The job's PID (`$$`). */
  readonly pid: number;
  /** `$COOLOCK_FENCING_TOKEN`, as text: it may not fit a double. */
  readonly token: string;
  /** `$COOLOCK_SLOT`. */
  readonly slot: string;
}

/** A job's last line: it finished, or got SIGTERM (`sig`). */
export interface EndEvent {
  readonly ev: "end";
  readonly b: string;
  readonly node: string;
  readonly tick: string;
  readonly ms: number;
  readonly pid: number;
  readonly sig?: string;
}

/**
 * The harness saw a job's process gone (or a zombie) without an `end` line:
 * alive at `seen`, gone by `ms`. Between the two, nobody knows.
 */
export interface GoneEvent {
  readonly ev: "gone";
  readonly b: string;
  readonly node: string;
  readonly tick: string;
  readonly pid: number;
  readonly seen: number;
  readonly ms: number;
}

/** One run of coolock by a node: launched, exited with `code`. */
export interface TickEvent {
  readonly ev: "tick";
  readonly b: string;
  readonly node: string;
  readonly tick: string;
  /** coolock's PID. */
  readonly pid: number;
  readonly launch: number;
  readonly exit: number;
  /** The exit code, 128 + N when signal N ended it. */
  readonly code: number;
  readonly signal?: string;
}

/** A tick that cron would have fired but the node already had too many in flight. */
export interface SkipEvent {
  readonly ev: "skip";
  readonly b: string;
  readonly node: string;
  readonly ms: number;
}

/** The nemesis applied or healed a fault. */
export interface FaultEvent {
  readonly ev: "fault";
  readonly b: string;
  /** The fault's number in the schedule. */
  readonly id: number;
  readonly fault: string;
  readonly phase: "apply" | "heal";
  readonly ms: number;
  /** What it hit: a member, a node, a coolock's PID. */
  readonly target: string;
}

/** The end of one backend's run: no node launches after it. */
export interface StopEvent {
  readonly ev: "stop";
  readonly b: string;
  readonly ms: number;
}

/** Any line of the history. */
export type HistoryEvent =
  | RunEvent
  | StartEvent
  | EndEvent
  | GoneEvent
  | TickEvent
  | SkipEvent
  | FaultEvent
  | StopEvent;

const KINDS = new Set([
  "run",
  "start",
  "end",
  "gone",
  "tick",
  "skip",
  "fault",
  "stop",
]);

/**
 * Parses history lines; a line that is not one event (a torn write, a stray
 * line) is counted in `bad`, not thrown, so one can't hide the rest.
 */
export function parseHistory(
  text: string,
): { events: HistoryEvent[]; bad: number } {
  const events: HistoryEvent[] = [];
  let bad = 0;
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const event = JSON.parse(line);
      if (
        typeof event === "object" && event !== null && KINDS.has(event.ev) &&
        typeof event.b === "string"
      ) {
        events.push(event as HistoryEvent);
      } else bad++;
    } catch {
      bad++;
    }
  }
  return { events, bad };
}

/** Appends the harness's events to the history, one `write` per line. */
export class HistoryWriter {
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();

  constructor(readonly path: string) {
    this.#file = Deno.openSync(path, {
      append: true,
      create: true,
      mode: 0o644,
    });
  }

  append(event: HistoryEvent): void {
    this.#file.writeSync(
      this.#encoder.encode(JSON.stringify(event) + "\n"),
    );
  }

  close(): void {
    this.#file.close();
  }
}

/** Reads the lines appended to the history since the last call. */
export class HistoryTail {
  #offset = 0;
  #partial = "";
  readonly #decoder = new TextDecoder();

  constructor(readonly path: string) {}

  read(): HistoryEvent[] {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(this.path, { read: true });
    } catch {
      return [];
    }
    try {
      file.seekSync(this.#offset, Deno.SeekMode.Start);
      const chunks: string[] = [];
      const buffer = new Uint8Array(64 * 1024);
      while (true) {
        const read = file.readSync(buffer);
        if (read === null || read === 0) break;
        this.#offset += read;
        chunks.push(this.#decoder.decode(buffer.subarray(0, read), {
          stream: true,
        }));
      }
      const text = this.#partial + chunks.join("");
      const cut = text.lastIndexOf("\n");
      this.#partial = text.slice(cut + 1);
      return cut < 0 ? [] : parseHistory(text.slice(0, cut)).events;
    } finally {
      file.close();
    }
  }
}

/**
 * The job every node runs: a start line with its fencing token and slot,
 * `$FLEET_HOLD` seconds of work, an end line. coolock runs it with
 * `--shell`, and the shell `exec`s bash on it (same PID), for bash's
 * `$EPOCHREALTIME`: a line's time is read without a fork, so no signal can
 * kill a `date` and leave a line without its time. On SIGTERM (the lock
 * lost, or coolock's watchdog) it writes an end line with `sig` once its
 * `sleep` is gone (coolock signals the whole group); the trap disarms itself,
 * as coolock and its watchdog may both send one. A SIGKILL leaves no line:
 * the harness's monitor sees the PID go instead.
 */
export const JOB_SCRIPT = [
  `line() { local t=\${EPOCHREALTIME/[.,]/}; printf '{"ev":"%s","b":"%s","node":"%s","tick":"%s","ms":%s,"pid":%s%s}\\n' ` +
  `"$1" "$FLEET_BACKEND" "$FLEET_NODE" "$FLEET_TICK" "\${t%???}" "$$" "$2" >>"$FLEET_HISTORY"; }`,
  `trap 'trap "" TERM; line end ",\\"sig\\":\\"TERM\\""; exit 143' TERM`,
  `line start ",\\"token\\":\\"$COOLOCK_FENCING_TOKEN\\",\\"slot\\":\\"$COOLOCK_SLOT\\""`,
  `sleep "$FLEET_HOLD"`,
  `line end ""`,
].join("\n");

/** What coolock is given to run with `--shell`: bash on the job, in place. */
export const JOB_COMMAND = 'exec /bin/bash -c "$FLEET_JOB"';
