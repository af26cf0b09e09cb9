/**
 * The supervised command. It runs in a session and process group of its
 * own, with stdin, stdout and stderr inherited (binary-safe, nothing
 * buffered), and the job is that whole group: when it must end (a lost
 * lock, a signal, or the command's exit with processes left behind), the
 * group gets SIGTERM, then SIGKILL after the kill-after time, and coolock
 * waits until no live process of it is left.
 *
 * With a watchdog (src/cli/watchdog.ts) the command starts through its
 * trampoline, which `exec`s it in place; without one (`--unguarded`) Deno
 * starts it directly.
 *
 * @module
 */

import {
  commandNotExecutable,
  commandNotFound,
  EXIT,
  ExitError,
} from "./exit_codes.ts";
import { pause } from "../timing.ts";
import { POSIX, reachable, signalGroup } from "./group.ts";
import type { Census, Watchdog } from "./watchdog.ts";

/** How long coolock waits for a SIGKILLed group to be gone. */
const GONE_TIMEOUT_MS = 5_000;
/** How often coolock looks at the group while it waits for it to go. */
const LOOK_EVERY_MS = 50;

/** coolock's environment minus its own settings, for a job Deno starts itself. */
function jobEnvironment(added: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (!name.startsWith("COOLOCK_")) env[name] = value;
  }
  return { ...env, ...added };
}

function spawnError(command: string, error: unknown): ExitError {
  const shown = JSON.stringify(command).slice(1, -1);
  if (error instanceof Deno.errors.NotFound) {
    return commandNotFound(shown);
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return commandNotExecutable(shown);
  }
  return new ExitError(
    `Command '${shown}' can't be started: ${(error as Error).message}`,
    EXIT.cannotExecute,
  );
}

/** A running command, its process group, and the guard in it. */
export class Job {
  readonly #child: Deno.ChildProcess;
  readonly #watchdog: Watchdog | undefined;
  #exited = false;
  /** Resolves the command's exit status. */
  readonly status: Promise<Deno.CommandStatus>;

  private constructor(child: Deno.ChildProcess, watchdog?: Watchdog) {
    this.#child = child;
    this.#watchdog = watchdog;
    this.status = child.status;
    void this.status.then(() => this.#exited = true);
  }

  /**
   * Starts `argv` with `added` in its environment: under `watchdog`'s guard,
   * or directly when there is none. Throws `ExitError` (127 not found, 126
   * not executable).
   */
  static start(
    argv: readonly string[],
    added: Record<string, string>,
    options: { readonly watchdog?: Watchdog; readonly graceSeconds: number },
  ): Job {
    const { watchdog } = options;
    const [cmd, ...args] = watchdog
      ? watchdog.trampoline(argv, options.graceSeconds)
      : argv;
    try {
      const child = new Deno.Command(cmd, {
        args,
        // The trampoline drops coolock's settings itself, seeing the whole
        // environment however Deno was scoped.
        ...(watchdog
          ? { env: added }
          : { env: jobEnvironment(added), clearEnv: true }),
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
        detached: POSIX,
      }).spawn();
      return new Job(child, watchdog);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw spawnError(argv[0], error);
    }
  }

  /** The command's process id, which is also its process group id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Sends a signal to the command's whole process group. */
  signal(signal: Deno.Signal): void {
    if (this.#watchdog && !this.#watchdog.closed) {
      this.#watchdog.signal(this.pid, signal);
    } else if (POSIX) signalGroup(this.pid, signal);
    else {
      try {
        this.#child.kill(signal);
      } catch { /* it has exited */ }
    }
  }

  /**
   * Who is left in the group. `exact` is false where only a signal can
   * tell (no watchdog, no /proc): then the guard and zombies count too.
   */
  async census(): Promise<Census> {
    const counted = await this.#watchdog?.census(this.pid);
    if (counted) return counted;
    const any = reachable(this.pid) ? 1 : 0;
    return { others: any, all: any, exact: false };
  }

  /** Whether the command and every process of its group but the guard have gone. */
  async #over(): Promise<boolean> {
    return this.#exited && (await this.census()).others === 0;
  }

  /**
   * Ends the group: `first` (unless undefined: already sent), then SIGKILL
   * to the whole group, guard included, once the command and its leftovers
   * have gone, or at `killAt` (a `performance.now()` time), or when `now`
   * aborts. Resolves once no live process of the group is left (bounded),
   * with whether the SIGKILL had to end more than the guard.
   */
  async end(options: {
    readonly first?: Deno.Signal;
    readonly killAt: number;
    readonly now?: AbortSignal;
    readonly known?: Census;
  }): Promise<boolean> {
    if (!POSIX) {
      this.signal("SIGKILL");
      await this.status;
      return true;
    }
    if (options.first) this.signal(options.first);
    let over = options.known && !options.first
      ? this.#exited && options.known.others === 0
      : await this.#over();
    while (!over && !options.now?.aborted) {
      const left = options.killAt - performance.now();
      if (left <= 0) break;
      await pause(Math.min(LOOK_EVERY_MS, left), options.now);
      over = await this.#over();
    }
    // The guard keeps the group's id in use until now, so this SIGKILL
    // can't reach a group that took the id over.
    if ((options.known && over ? options.known : await this.census()).all > 0) {
      this.signal("SIGKILL");
    }
    const giveUpAt = performance.now() + GONE_TIMEOUT_MS;
    for (
      let wait = 1;
      performance.now() < giveUpAt;
      wait = Math.min(2 * wait, LOOK_EVERY_MS)
    ) {
      if (this.#exited && (await this.census()).all === 0) break;
      await pause(wait);
    }
    await this.status;
    return !over;
  }
}
