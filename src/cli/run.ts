/**
 * What the CLI does once its input is checked: check every permission the
 * run needs and start the watchdog (both before the lock is taken, so that
 * nothing half-runs), take the lock, run the command under it, forward
 * signals with a bounded stop, end the command's whole group when the lock
 * is lost or the command exits, release with guard time, and choose the
 * exit code.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import { BackendUnavailableError, LockHeldError } from "../errors.ts";
import { acquire, type Lease } from "../lease.ts";
import type { LogSink } from "../options.ts";
import { Job } from "./child.ts";
import { EXIT, ExitError } from "./exit_codes.ts";
import { POSIX } from "./group.ts";
import type { LogFields, Logger } from "./log.ts";
import { missing, runNeeds } from "./permissions.ts";
import { Signals } from "./signals.ts";
import { type Census, Watchdog } from "./watchdog.ts";

/** Everything a run needs, checked, with durations in seconds. */
export interface RunPlan {
  readonly backend: Backend;
  readonly lock: string;
  readonly node: string;
  readonly ttl: number;
  readonly guardTime: number;
  readonly waitTimeout: number;
  readonly killAfter: number;
  /** How many holders the lock admits (1: a mutex). */
  readonly limit: number;
  /** Run without a watchdog (`--unguarded`): a killed coolock leaves the job running. */
  readonly unguarded: boolean;
  /**
   * Permissions coolock itself needs for this run beyond the backend's and
   * the watchdog's (the log file, …); checked before the lock is taken.
   */
  readonly permissions?: readonly Deno.PermissionDescriptor[];
  readonly conflictExitCode: number;
  /** The command's argv, already wrapped in `/bin/sh -c` for `--shell`. */
  readonly command: readonly string[];
  readonly logger: Logger;
}

/** How long a signalled coolock waits for a backend to close. */
const CLOSE_ON_SIGNAL_MS = 300;

const encoder = new TextEncoder();

/** Prints one line on stderr. */
function say(message: string): void {
  try {
    Deno.stderr.writeSync(
      encoder.encode(`coolock: ${message.replaceAll("\n", " ")}\n`),
    );
  } catch { /* stderr is closed */ }
}

/** Prints one line on stderr, and logs it too when the log is a file. */
export function fail(
  logger: Logger,
  message: string,
  fields?: LogFields,
): void {
  if (!logger.toStderr) logger.error(message, fields);
  say(message);
}

/**
 * The lease's lost-lock deadlines, for the watchdog's clock: kept until the
 * clock's `go`, then passed on as they come. A renewal confirmed only after
 * its deadline never arrives here: the lease counts it as a loss
 * (src/lease.ts), and the loss ends the job.
 */
class Deadlines {
  latest = 0;
  #watchdog: Watchdog | undefined;

  constructor(readonly watchdog: Watchdog | undefined) {}

  readonly update = (deadline: number): void => {
    this.latest = deadline;
    this.#watchdog?.deadline(deadline);
  };

  /** Opens the clock's gate with the latest deadline; later ones follow. */
  async go(): Promise<void> {
    if (!this.watchdog) return;
    await this.watchdog.go(this.latest);
    this.#watchdog = this.watchdog;
  }
}

/** Closes the backend, but gives up waiting after `ms`: a hung server must not hold a signalled exit. */
async function closeWithin(backend: Backend, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    backend.close().catch(() => {}),
    new Promise((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}

/** Takes the lock and runs the command under it; resolves the exit code. */
export async function runLocked(plan: RunPlan): Promise<number> {
  using signals = new Signals();
  let watchdog: Watchdog | undefined;
  try {
    const early = await prepare(plan, signals);
    if (typeof early === "number") return early;
    watchdog = early.watchdog;
    const deadlines = new Deadlines(watchdog);
    const lease = await take(plan, signals, deadlines);
    if (typeof lease === "number") return lease;
    return await runUnder(lease, plan, signals, deadlines);
  } finally {
    await watchdog?.close();
    if (signals.received) await closeWithin(plan.backend, CLOSE_ON_SIGNAL_MS);
  }
}

/**
 * Everything before the lock: permissions, the watchdog, the command.
 * Resolves an exit code when the run must stop here.
 */
async function prepare(
  plan: RunPlan,
  signals: Signals,
): Promise<number | { watchdog: Watchdog | undefined }> {
  const { logger } = plan;
  if (!plan.unguarded && !POSIX) {
    fail(
      logger,
      "coolock has no watchdog on Windows: pass --unguarded to run the command without one",
    );
    return EXIT.noPermission;
  }
  const lacking = missing(runNeeds(plan));
  if (lacking) {
    fail(logger, lacking);
    return EXIT.noPermission;
  }
  let watchdog: Watchdog | undefined;
  if (!plan.unguarded) {
    try {
      watchdog = await Watchdog.start(plan.command[0], signals.first.signal);
    } catch (error) {
      if (signals.received) return stoppedBefore(plan, signals);
      if (!(error instanceof ExitError)) throw error;
      fail(logger, error.message);
      return error.exitCode;
    }
  }
  // Only now: Deno resolves a bare name through PATH, and a missing
  // command is 127, not a missing permission.
  const forCommand = missing([{
    descriptor: { name: "run", command: plan.command[0] },
    for: "the command",
  }]);
  if (forCommand) {
    await watchdog?.close();
    fail(logger, forCommand);
    return EXIT.noPermission;
  }
  return { watchdog };
}

function stoppedBefore(plan: RunPlan, signals: Signals): number {
  plan.logger.info(
    `Stopped waiting for lock '${plan.lock}' on ${signals.received}`,
    { event: "signal", exitCode: signals.exitCode },
  );
  return signals.exitCode;
}

/** Takes the lock; resolves the lease, or an exit code. */
async function take(
  plan: RunPlan,
  signals: Signals,
  deadlines: Deadlines,
): Promise<Lease | number> {
  const { logger, lock } = plan;
  let token: bigint | undefined;
  const log: LogSink = (level, message) =>
    logger[level](
      message,
      level === "error" && /^Lock '.*' was lost: /s.test(message)
        ? { event: "lost", token }
        : undefined,
    );
  try {
    const lease = await acquire({
      backend: plan.backend,
      lock,
      node: plan.node,
      ttl: plan.ttl,
      guardTime: plan.guardTime,
      waitTimeout: plan.waitTimeout,
      limit: plan.limit,
      killAfter: plan.killAfter,
      signal: signals.first.signal,
      log,
      onDeadline: deadlines.update,
    });
    token = lease.token;
    return lease;
  } catch (error) {
    if (signals.received) return stoppedBefore(plan, signals);
    if (error instanceof LockHeldError) {
      logger.info(
        error.waited
          ? `Did not acquire lock '${lock}' within ${plan.waitTimeout} s. Terminating.`
          : `Did not acquire lock '${lock}'. Terminating.`,
        {
          event: error.waited ? "timeout" : "held",
          exitCode: plan.conflictExitCode,
        },
      );
      return plan.conflictExitCode;
    }
    if (error instanceof BackendUnavailableError) {
      fail(logger, error.message, { exitCode: EXIT.unavailable });
      return EXIT.unavailable;
    }
    throw error;
  }
}

/** Runs the command under the lease; resolves coolock's exit code. */
async function runUnder(
  lease: Lease,
  plan: RunPlan,
  signals: Signals,
  deadlines: Deadlines,
): Promise<number> {
  const { logger, lock } = plan;
  const { watchdog } = deadlines;
  const { token, slot } = lease;
  const graceMs = plan.killAfter * 1000;
  logger.info(`Lock '${lock}' acquired with fencing token ${token}.`, {
    event: "acquired",
    token,
    slot,
  });
  if (signals.received) {
    // The signal came as the lock arrived: the command never started.
    await lease.release({ guard: false });
    return stoppedBefore(plan, signals);
  }
  let job: Job;
  try {
    job = Job.start(plan.command, {
      COOLOCK_LOCK: lock,
      COOLOCK_NODE: plan.node,
      COOLOCK_FENCING_TOKEN: String(token),
      COOLOCK_SLOT: String(slot),
    }, { watchdog, graceSeconds: plan.killAfter });
  } catch (error) {
    await lease.release({ guard: false });
    if (!(error instanceof ExitError)) throw error;
    fail(logger, error.message, { exitCode: error.exitCode });
    return error.exitCode;
  }
  // The trampoline waits at the clock's gate: the command starts only once
  // the backend keeps the lock for its group (if coolock dies now, the gate
  // never opens), and from `go` on the clock times the deadline.
  let kept: unknown = true;
  await lease.holdWhileGroup(job.pid).catch((error) => kept = error);
  if (watchdog && (kept !== true || signals.received)) {
    await watchdog.close();
    await job.status;
    await lease.release({ guard: false });
    if (signals.received) return stoppedBefore(plan, signals);
    fail(
      logger,
      `Can't keep lock '${lock}' for the command's process group: ${
        (kept as Error).message
      }`,
    );
    return EXIT.software;
  }
  let ending: Promise<boolean> | undefined;
  let cause: "lost" | "watchdog" | undefined;
  const now = new AbortController();
  const end = (first: Deno.Signal | undefined, known?: Census) =>
    ending ??= job.end({
      first,
      killAt: performance.now() + graceMs,
      now: now.signal,
      known,
    });
  signals.onSignal = (signal) => {
    logger.info(`Forwarding ${signal} to the command`, { event: "signal" });
    job.signal(signal);
    if (signals.second.signal.aborted) now.abort();
    end(undefined);
  };
  const onLost = () => {
    cause ??= "lost";
    say(`${(lease.signal.reason as Error).message}; terminating the command`);
    end("SIGTERM");
  };
  lease.signal.addEventListener("abort", onLost, { once: true });
  let finished = false;
  void watchdog?.exited.then((status) => {
    if (finished || cause || watchdog.closed) return;
    cause = "watchdog";
    fail(
      logger,
      `The watchdog's clock stopped unexpectedly (${
        status.signal ?? `exit ${status.code}`
      }); terminating the command`,
    );
    end("SIGTERM");
  });

  // Unguarded, the command runs already: a signal that came meanwhile is
  // forwarded now.
  if (signals.received) signals.onSignal(signals.received);
  await deadlines.go();
  logger.debug(
    `Running ${JSON.stringify(plan.command)} as process group ${job.pid}`,
    { event: "started", token },
  );
  if (kept !== true) {
    // Unguarded, the command runs already.
    cause ??= "lost";
    fail(
      logger,
      `Can't keep lock '${lock}' for the command's process group: ${
        (kept as Error).message
      }; terminating the command`,
    );
    end("SIGTERM");
  }

  const status = await job.status;
  if (!ending) {
    // The command is done; what it left in its group goes now, while the
    // guard still stands. Without /proc the guard can't be told from a
    // leftover, so it goes first.
    let census = await job.census();
    if (!census.exact && watchdog) {
      await watchdog.done();
      census = await job.census();
    }
    if (census.others > 0 && census.exact) {
      logger.warning(
        `The command left ${census.others} process(es) in its group; ending them`,
      );
    }
    end(census.others > 0 ? "SIGTERM" : undefined, census);
  }
  const forced = await ending!;
  finished = true;
  lease.signal.removeEventListener("abort", onLost);
  signals.onSignal = undefined;
  // The group, guard included, is gone: nothing of the job can run on, so
  // the lock goes back now, while the watchdog's clock closes beside it.
  const releasing = lease.release();
  await watchdog?.close();

  let code = status.code;
  if (cause === "lost") code = EXIT.lost;
  else if (cause === "watchdog") code = EXIT.software;
  else if (signals.received && forced) code = signals.exitCode;
  if (status.success) {
    logger.info("The payload command executed successfully.", {
      event: "exited",
      token,
      exitCode: status.code,
    });
  } else {
    logger.error(
      status.signal
        ? `The payload command was ended by ${status.signal}.`
        : `The payload command returned an error code: ${status.code}.`,
      { event: "exited", token, exitCode: status.code },
    );
  }
  await releasing;
  logger.info(`Lock '${lock}' released.`, {
    event: "released",
    token,
    exitCode: code,
  });
  return code;
}
