/**
 * The supervised command. It runs in a session and process group of its
 * own (so a lost lock can end the whole group), with stdin, stdout and stderr
 * inherited (binary-safe, nothing buffered).
 *
 * If coolock dies by SIGKILL or OOM, the job must not run on without its
 * lock. So the command starts through a tiny `/bin/sh` trampoline that first
 * forks a watchdog into the job's process group and then `exec`s the command
 * in place (same PID, same argv). The watchdog exists before the command's
 * first instruction, so there is no moment in which the job runs unguarded;
 * it checks every `pollSeconds` that coolock is alive, and when coolock is
 * gone it ends the group: SIGTERM, then SIGKILL after the kill-after time.
 * It exits quietly once the command has ended.
 *
 * @module
 */

import { EXIT } from "./exit_codes.ts";

/** Process groups, sessions and /bin/sh exist; on Windows only the child itself is signalled. */
const POSIX = Deno.build.os !== "windows";

const TRAMPOLINE = `coolock=$PPID
(
  trap '' INT TERM HUP QUIT
  exec </dev/null >/dev/null 2>&1
  while kill -0 "$coolock" && kill -0 "$$"; do sleep "$COOLOCK_WATCH_POLL"; done
  kill -0 "$$" || exit 0
  kill -TERM "-$$"
  sleep "$COOLOCK_WATCH_KILL_AFTER"
  kill -KILL "-$$"
) &
unset COOLOCK_WATCH_POLL COOLOCK_WATCH_KILL_AFTER
exec "$@"`;

function hasShell(): boolean {
  try {
    return Deno.statSync("/bin/sh").isFile;
  } catch {
    return false;
  }
}

/**
 * Fails like a shell would, but with coolock's own message, for a command
 * that can't run; the trampoline's \`exec\` would only say so on stderr.
 */
function checkRunnable(command: string, path: string): void {
  const candidates = command.includes("/")
    ? [command]
    : path.split(":").map((dir) => `${dir || "."}/${command}`);
  let found = false;
  for (const candidate of candidates) {
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(candidate);
    } catch (error) {
      // Without read permission for the PATH, the shell's exec decides.
      if (error instanceof Deno.errors.NotCapable) return;
      continue;
    }
    found = true;
    if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return;
  }
  throw found && command.includes("/")
    ? new SpawnError(
      `Command '${command}' can't be executed: permission denied`,
      EXIT.cannotExecute,
    )
    : new SpawnError(`Command '${command}' not found`, EXIT.notFound);
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
  /** Whether a watchdog ends the command if coolock itself is killed. */
  readonly guarded: boolean;
  /** Resolves the command's exit status. */
  readonly status: Promise<Deno.CommandStatus>;

  private constructor(child: Deno.ChildProcess, guarded: boolean) {
    this.#child = child;
    this.guarded = guarded;
    this.status = child.status;
  }

  /**
   * Starts `argv` with `env` added to coolock's environment. The watchdog
   * checks on coolock every `pollSeconds`. Throws `SpawnError` (127 not
   * found, 126 not executable).
   */
  static start(
    argv: readonly string[],
    env: Record<string, string>,
    options: { readonly killAfterMs: number; readonly pollSeconds: number },
  ): Supervised {
    const [command] = argv;
    const guarded = POSIX && hasShell();
    if (guarded) checkRunnable(command, Deno.env.get("PATH") ?? "");
    const [cmd, ...args] = guarded
      ? ["/bin/sh", "-c", TRAMPOLINE, "coolock-job", ...argv]
      : argv;
    try {
      const child = new Deno.Command(cmd, {
        args,
        env: guarded
          ? {
            ...env,
            COOLOCK_WATCH_POLL: String(options.pollSeconds),
            COOLOCK_WATCH_KILL_AFTER: String(options.killAfterMs / 1000),
          }
          : env,
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
        detached: POSIX,
      }).spawn();
      return new Supervised(child, guarded);
    } catch (error) {
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
}
