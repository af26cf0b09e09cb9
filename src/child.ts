/**
 * The supervised command. It runs in a session and process group of its
 * own (so a lost lock can end the whole group), with stdin, stdout and stderr
 * inherited (binary-safe, nothing buffered). A tiny `/bin/sh` watchdog holds
 * the read end of a pipe from coolock: if coolock dies by SIGKILL or OOM, the
 * pipe closes and the watchdog ends the group, so the job never runs on
 * without its lock.
 *
 * @module
 */

import { EXIT } from "./exit_codes.ts";

/** Process groups, sessions and /bin/sh exist; on Windows only the child itself is signalled. */
const POSIX = Deno.build.os !== "windows";

// Started before the job, so that no moment exists in which the job runs
// unguarded: the first line is the job's process group, then "done" or EOF.
const WATCHDOG = `trap '' INT TERM HUP QUIT
read -r group || exit 0
read -r word
[ "$word" = done ] && exit 0
kill -TERM "-$group" 2>/dev/null || exit 0
sleep "$1"
kill -KILL "-$group" 2>/dev/null
exit 0`;

function startWatchdog(
  killAfterMs: number,
): WritableStreamDefaultWriter<Uint8Array> | undefined {
  if (!POSIX) return undefined;
  try {
    const watchdog = new Deno.Command("/bin/sh", {
      args: ["-c", WATCHDOG, "coolock-watchdog", String(killAfterMs / 1000)],
      stdin: "piped",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn();
    watchdog.unref();
    return watchdog.stdin.getWriter();
  } catch {
    // Without /bin/sh the job still runs; only the SIGKILL guard is gone.
    return undefined;
  }
}

/** The command could not be started: exit code and one line for stderr. */
export class SpawnError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = "SpawnError";
  }
}

function groupAlive(pgid: number): boolean {
  if (!POSIX) return false;
  try {
    Deno.kill(-pgid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

/** A running command and its watchdog. */
export class Supervised {
  readonly #child: Deno.ChildProcess;
  readonly #disarm: WritableStreamDefaultWriter<Uint8Array> | undefined;
  /** Resolves the command's exit status. */
  readonly status: Promise<Deno.CommandStatus>;

  private constructor(
    child: Deno.ChildProcess,
    disarm: WritableStreamDefaultWriter<Uint8Array> | undefined,
  ) {
    this.#child = child;
    this.status = child.status;
    this.#disarm = disarm;
    void disarm?.write(new TextEncoder().encode(`${child.pid}\n`)).catch(
      () => {},
    );
  }

  /**
   * Starts `argv` with `env` added to coolock's environment. Throws
   * `SpawnError` (127 not found, 126 not executable).
   */
  static start(
    argv: readonly string[],
    env: Record<string, string>,
    killAfterMs: number,
  ): Supervised {
    const [command, ...args] = argv;
    const watchdog = startWatchdog(killAfterMs);
    try {
      const child = new Deno.Command(command, {
        args,
        env,
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
        detached: POSIX,
      }).spawn();
      return new Supervised(child, watchdog);
    } catch (error) {
      void watchdog?.close().catch(() => {});
      if (error instanceof Deno.errors.NotFound) {
        throw new SpawnError(`Command '${command}' not found`, EXIT.notFound);
      }
      if (error instanceof Deno.errors.PermissionDenied) {
        throw new SpawnError(
          `Command '${command}' can't be executed: permission denied`,
          EXIT.cannotExecute,
        );
      }
      throw new SpawnError(
        `Command '${command}' can't be started: ${(error as Error).message}`,
        EXIT.cannotExecute,
      );
    }
  }

  /** The command's process id, which is also its process group id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Sends a signal to the command's whole process group. */
  signal(signal: Deno.Signal): void {
    try {
      if (POSIX) Deno.kill(-this.#child.pid, signal);
      else this.#child.kill(signal);
    } catch { /* the group is gone */ }
  }

  /** Whether a watchdog ends the command if coolock itself is killed. */
  get guarded(): boolean {
    return this.#disarm !== undefined;
  }

  /**
   * SIGTERM to the group, SIGKILL after `killAfterMs`; resolves once the
   * command and every process left in its group are gone.
   */
  async terminate(killAfterMs: number): Promise<void> {
    this.signal("SIGTERM");
    const deadline = performance.now() + killAfterMs;
    let exited = false;
    void this.status.then(() => exited = true);
    while (
      performance.now() < deadline && (!exited || groupAlive(this.#child.pid))
    ) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    this.signal("SIGKILL");
    await this.status;
  }

  /** Tells the watchdog that coolock is done, so it exits without killing. */
  async disarm(): Promise<void> {
    try {
      await this.#disarm?.write(new TextEncoder().encode("done\n"));
      await this.#disarm?.close();
    } catch { /* the watchdog is already gone */ }
  }
}
