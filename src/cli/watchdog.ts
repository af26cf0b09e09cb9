/**
 * The watchdog: what ends the job if coolock dies, is a zombie, is stopped,
 * or stops confirming renewals. It has two halves, both plain `/bin/sh`
 * (coolock's own timers stop when coolock does), and they talk through a
 * FIFO in a private directory, since a Deno child gets no extra fds:
 *
 * - **The clock** (`CLOCK`) is coolock's child, in a session of its own,
 *   outside the job's process group. It creates the directory and the FIFO
 *   and holds the FIFO's only write end; it reads coolock's messages on its
 *   stdin (a pipe only coolock holds) and keeps the deadline timer: each
 *   confirmed renewal re-arms a `/bin/sleep` that writes `expired` to the
 *   FIFO when it runs out. When coolock dies or turns into a zombie (the
 *   kernel closes a dead process's fds at once), the clock's stdin ends and
 *   it closes the FIFO. Before the lock is taken it also checks the command
 *   the way `exec` will find it, so that 126/127 come before the lock, in
 *   coolock's words.
 * - **The guard** (`GUARD`, inside the job's trampoline) lives in the job's
 *   process group, double-forked so that it is no child of the job. It
 *   blocks reading the FIFO: `expired`, or end of file (the clock is gone,
 *   so coolock is), ends the group — SIGTERM, then SIGKILL after kill-after
 *   — and `done` lets it go quietly. Being a member, it keeps the group's id
 *   from being reused until its last SIGKILL, and a contender that watches
 *   the group (the file backend) sees the job until the guard has finished.
 *
 * Nothing polls: coolock's death is a closed pipe, a stop is the clock's
 * timer. Only while ending a group does the guard look at /proc every
 * 50 ms, to stop waiting once every other process has gone.
 *
 * The clock also acts for coolock where Deno can't: it counts the job's
 * group from /proc (Deno reads /proc only with --allow-all) and signals it
 * (Deno signals another process only with an unscoped --allow-run), so the
 * scoped permissions of the README are enough.
 *
 * @module
 */

import {
  commandNotExecutable,
  commandNotFound,
  ExitError,
} from "./exit_codes.ts";
import { CLOCK, SHELL, TRAMPOLINE } from "./watchdog_scripts.ts";

/** How long the clock may take to set up before coolock gives up. */
const SETUP_TIMEOUT_MS = 10_000;
/** How long coolock waits for the clock to go at the end. */
const CLOSE_TIMEOUT_MS = 2_000;

const encoder = new TextEncoder();

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(
    "",
  );
}

/** Seconds from now until `deadline` (a `performance.now()` time), for sleep. */
function secondsUntil(deadline: number): string {
  return Math.max(0, (deadline - performance.now()) / 1000).toFixed(3);
}

/** The clock's answers, line by line. */
class Lines {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(stdout: ReadableStream<Uint8Array>) {
    this.#reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line, or undefined at the end; gives up when `signal` aborts. */
  async next(signal?: AbortSignal): Promise<string | undefined> {
    const onAbort = () => this.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      while (!this.#buffer.includes("\n")) {
        const { value, done } = await this.#reader.read();
        if (done) return undefined;
        this.#buffer += value;
      }
    } catch {
      return undefined;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    const at = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, at);
    this.#buffer = this.#buffer.slice(at + 1);
    return line;
  }

  cancel(): void {
    this.#reader.cancel().catch(() => {});
  }
}

/** Who is left in the job's group, as the clock counts from /proc. */
export interface Census {
  /** Live processes other than the guard and its own children. */
  readonly others: number;
  /** Every live process, the guard included. */
  readonly all: number;
  /**
   * False where only a signal could tell (no /proc): then `others` and
   * `all` are 1 while any process, guard or zombie, is in the group.
   */
  readonly exact: boolean;
}

/**
 * The clock half, as coolock holds it; `trampoline()` gives the argv that
 * starts a command under the guard half.
 */
export class Watchdog {
  readonly #clock: Deno.ChildProcess;
  readonly #lines: Lines;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #writes: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** The FIFO the guard reads. */
  readonly fifo: string;
  /** Resolves when the clock exits, expectedly or not. */
  readonly exited: Promise<Deno.CommandStatus>;

  private constructor(clock: Deno.ChildProcess, lines: Lines, fifo: string) {
    this.#clock = clock;
    this.#lines = lines;
    this.fifo = fifo;
    this.#writer = clock.stdin.getWriter();
    this.exited = clock.status;
  }

  /**
   * Starts the clock and checks `command` (its argv[0]) as `exec` will find
   * it. Rejects with {@linkcode ExitError} (77: a tool, a directory or
   * a permission missing; 126/127: the command), or with the signal's
   * reason.
   */
  static async start(
    command: string,
    signal?: AbortSignal,
  ): Promise<Watchdog> {
    let clock: Deno.ChildProcess;
    try {
      clock = new Deno.Command(SHELL, {
        args: ["-c", CLOCK, "coolock", randomId(), command],
        stdin: "piped",
        stdout: "piped",
        stderr: "null",
        detached: true,
      }).spawn();
    } catch (error) {
      throw Watchdog.#spawnProblem(error);
    }
    const lines = new Lines(clock.stdout);
    const line = await lines.next(
      AbortSignal.any([
        AbortSignal.timeout(SETUP_TIMEOUT_MS),
        ...(signal ? [signal] : []),
      ]),
    ) ?? "";
    const [word, ...rest] = line.split(" ");
    const detail = rest.join(" ");
    if (word === "ready" && detail.startsWith("/")) {
      return new Watchdog(clock, lines, detail);
    }
    lines.cancel();
    await Watchdog.#abandon(clock);
    signal?.throwIfAborted();
    throw Watchdog.#problem(word, detail, command);
  }

  static #spawnProblem(error: unknown): ExitError {
    if (error instanceof Deno.errors.NotFound) {
      return new ExitError(
        `The watchdog needs ${SHELL}, which is missing; pass --unguarded to run without a watchdog`,
        77,
      );
    }
    if (error instanceof Deno.errors.NotCapable) {
      return new ExitError(
        `A Deno permission is missing for the watchdog: ${error.message}`,
        77,
      );
    }
    return new ExitError(
      `The watchdog can't start ${SHELL}: ${(error as Error).message}`,
      70,
    );
  }

  static #problem(word: string, detail: string, command: string): Error {
    const shown = JSON.stringify(command).slice(1, -1);
    switch (word) {
      case "missing":
        return new ExitError(
          `The watchdog needs ${detail}, which is missing; pass --unguarded to run without a watchdog`,
          77,
        );
      case "nodir":
        return new ExitError(
          `The watchdog can't make its private directory (set TMPDIR to a writable local directory): ${detail}`,
          77,
        );
      case "notfound":
        return commandNotFound(shown);
      case "noexec":
        return commandNotExecutable(shown);
      case "nointerp":
      case "noexecinterp": {
        const interpreter = JSON.stringify(detail).slice(1, -1);
        const crlf = detail.endsWith("\r")
          ? " (the script has Windows line endings)"
          : "";
        return word === "nointerp"
          ? new ExitError(
            `Command '${shown}' can't be started: its interpreter '${interpreter}' was not found${crlf}`,
            127,
          )
          : new ExitError(
            `Command '${shown}' can't be started: its interpreter '${interpreter}' can't be executed`,
            126,
          );
      }
      default:
        return new ExitError(
          `The watchdog did not start${
            word ? `: ${JSON.stringify(line(word, detail))}` : ""
          }`,
          70,
        );
    }
  }

  static async #abandon(clock: Deno.ChildProcess): Promise<void> {
    try {
      await clock.stdin.close();
    } catch { /* already closed */ }
    await within(clock.status, CLOSE_TIMEOUT_MS);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Queues `text` for the clock, after what was queued before. */
  #send(text: string): Promise<unknown> {
    if (this.#closed) return this.#writes;
    const bytes = encoder.encode(text + "\n");
    // A clock that died can't be written to; `exited` tells coolock.
    this.#writes = this.#writes.then(() => this.#writer.write(bytes)).catch(
      () => {},
    );
    return this.#writes;
  }

  /**
   * Opens the gate for the trampoline and arms the timer for `deadline`.
   * Resolves once the line is in the clock's pipe, so that it survives
   * coolock's death from then on.
   */
  async go(deadline: number): Promise<void> {
    await this.#send(`go ${secondsUntil(deadline)}`);
  }

  /** Re-arms the timer for a new lost-lock deadline. */
  deadline(deadline: number): void {
    void this.#send(secondsUntil(deadline));
  }

  /** Tells the guard to go quietly. */
  async done(): Promise<void> {
    await this.#send("done");
  }

  /**
   * Counts the live processes of group `pgid`; undefined when the clock
   * is gone.
   */
  census(pgid: number): Promise<Census | undefined> {
    const asked = this.#send(`members ${pgid}`).then(() => this.#lines.next());
    this.#writes = asked.catch(() => {});
    return asked.then((answer) => {
      const [word, others, all] = (answer ?? "").split(" ");
      if (word !== "members" || all === undefined) return undefined;
      return others === "-"
        ? { others: Number(all), all: Number(all), exact: false }
        : { others: Number(others), all: Number(all), exact: true };
    }, () => undefined);
  }

  /**
   * Sends `signal` to group `pgid` through the clock: Deno signals other
   * processes only with an unscoped --allow-run, and the clock needs none.
   */
  signal(pgid: number, signal: Deno.Signal): void {
    void this.#send(`signal ${signal.slice(3)} ${pgid}`);
  }

  /** The argv that runs `command` under the guard, with `graceSeconds` of kill-after. */
  trampoline(command: readonly string[], graceSeconds: number): string[] {
    return [
      SHELL,
      "-c",
      TRAMPOLINE,
      "coolock",
      this.fifo,
      graceSeconds.toFixed(3),
      ...command,
    ];
  }

  /** Ends the clock: it cancels its timer, removes its directory and exits. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes;
    this.#lines.cancel();
    try {
      this.#writer.releaseLock();
      await this.#clock.stdin.close();
    } catch { /* the clock is gone */ }
    await within(this.#clock.status, CLOSE_TIMEOUT_MS);
  }
}

function line(word: string, detail: string): string {
  return detail ? `${word} ${detail}` : word;
}

/** Settles when `promise` does, or after `ms`, whichever is first. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}
