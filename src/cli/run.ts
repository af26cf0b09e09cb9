/**
 * What the CLI does once its input is checked: take the lock, run the command
 * under it, forward signals, end the command when the lock is lost, release
 * with guard time, and choose the exit code.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import { BackendUnavailableError, LockHeldError } from "../errors.ts";
import { SpawnError, Supervised } from "./child.ts";
import { EXIT } from "./exit_codes.ts";
import { acquire, type Lease } from "../lease.ts";
import type { Logger } from "./log.ts";

/** Everything a run needs, checked, with durations in seconds. */
export interface RunPlan {
  readonly backend: Backend;
  readonly lock: string;
  readonly node: string;
  readonly ttl: number;
  readonly guardTime: number;
  readonly waitTimeout: number;
  readonly killAfter: number;
  readonly conflictExitCode: number;
  /** The command's argv, already wrapped in `/bin/sh -c` for `--shell`. */
  readonly command: readonly string[];
  readonly logger: Logger;
}

const FORWARDED: readonly Deno.Signal[] = [
  "SIGTERM",
  "SIGINT",
  "SIGHUP",
  "SIGQUIT",
];
const SIGNAL_NUMBERS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGTERM: 15,
};

/** The lease's safety margin: time to end the command before the TTL lets anyone in. */
export function safetyMargin(ttl: number, killAfter: number): number {
  return killAfter + Math.max(0.25, ttl / 10);
}

/** Prints one line on stderr, and logs it too when the log is a file. */
export function fail(logger: Logger, message: string): void {
  if (!logger.toStderr) logger.error(message);
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`coolock: ${message}\n`));
  } catch { /* stderr is closed */ }
}

/** Takes the lock and runs the command under it; resolves the exit code. */
export async function runLocked(plan: RunPlan): Promise<number> {
  const { logger, lock } = plan;
  const waiting = new AbortController();
  let received: Deno.Signal | undefined;
  let child: Supervised | undefined;
  const onSignal = (signal: Deno.Signal) => {
    received ??= signal;
    if (child) {
      logger.info(`Forwarding ${signal} to the command`);
      child.signal(signal);
    } else {
      waiting.abort(new Error(`Received ${signal}`));
    }
  };
  const listeners: Array<[Deno.Signal, () => void]> = [];
  for (const signal of FORWARDED) {
    const listener = () => onSignal(signal);
    try {
      Deno.addSignalListener(signal, listener);
      listeners.push([signal, listener]);
    } catch { /* Windows has only SIGINT and SIGBREAK */ }
  }
  try {
    let lease: Lease;
    try {
      lease = await acquire({
        backend: plan.backend,
        lock,
        node: plan.node,
        ttl: plan.ttl,
        guardTime: plan.guardTime,
        waitTimeout: plan.waitTimeout,
        safetyMargin: safetyMargin(plan.ttl, plan.killAfter),
        signal: waiting.signal,
        log: (level, message) => logger[level](message),
      });
    } catch (error) {
      if (received) {
        logger.info(`Stopped waiting for lock '${lock}' on ${received}`);
        return 128 + SIGNAL_NUMBERS[received];
      }
      if (error instanceof LockHeldError) {
        logger.info(
          error.waited
            ? `Did not acquire lock '${lock}' within ${plan.waitTimeout} s. Terminating.`
            : `Did not acquire lock '${lock}'. Terminating.`,
        );
        return plan.conflictExitCode;
      }
      if (error instanceof BackendUnavailableError) {
        fail(logger, error.message);
        return EXIT.unavailable;
      }
      throw error;
    }
    return await runUnder(lease, plan, (started) => child = started);
  } finally {
    for (const [signal, listener] of listeners) {
      Deno.removeSignalListener(signal, listener);
    }
  }
}

async function runUnder(
  lease: Lease,
  plan: RunPlan,
  started: (child: Supervised) => void,
): Promise<number> {
  const { logger, lock } = plan;
  logger.info(`Lock '${lock}' acquired with fencing token ${lease.token}.`);
  let child: Supervised;
  try {
    child = Supervised.start(plan.command, {
      COOLOCK_LOCK: lock,
      COOLOCK_NODE: plan.node,
      COOLOCK_FENCING_TOKEN: String(lease.token),
    }, {
      killAfterMs: plan.killAfter * 1000,
      // Well inside the safety margin, so the watchdog acts before the TTL.
      pollSeconds: Math.min(1, Math.max(0.1, plan.ttl / 20)),
    });
  } catch (error) {
    await lease.release();
    if (!(error instanceof SpawnError)) throw error;
    fail(logger, error.message);
    return error.exitCode;
  }
  started(child);
  if (!child.guarded && Deno.build.os !== "windows") {
    logger.warning(
      "Can't start the /bin/sh watchdog: if coolock is killed, the command will run on unguarded",
    );
  }
  logger.debug(
    `Running ${JSON.stringify(plan.command)} as process group ${child.pid}`,
  );
  let ending: Promise<void> | undefined;
  const onLost = () => {
    fail(
      logger,
      `${(lease.signal.reason as Error).message}; terminating the command`,
    );
    ending = child.terminate(plan.killAfter * 1000);
  };
  lease.signal.addEventListener("abort", onLost, { once: true });
  const status = await child.status;
  lease.signal.removeEventListener("abort", onLost);
  await ending;
  if (ending) {
    await lease.release();
    return EXIT.lost;
  }
  if (status.success) {
    logger.info("The payload command executed successfully.");
  } else {
    logger.error(
      status.signal
        ? `The payload command was ended by ${status.signal}.`
        : `The payload command returned an error code: ${status.code}.`,
    );
  }
  await lease.release();
  logger.info(`Lock '${lock}' released.`);
  return status.code;
}
