/**
 * The CLI's exit codes, from sysexits.h where one fits. The README's table
 * lists them; the conflict code is a setting (default 0, as in the original).
 * The subcommands add theirs: `status` 0 free, 1 held; `check` 0 fine, 1 a
 * check failed; both 69 when the backend cannot be reached.
 *
 * @module
 */

/** The fixed exit codes. */
export const EXIT = {
  /** Bad flags or arguments (EX_USAGE). */
  usage: 64,
  /** The backend can't be reached or failed (EX_UNAVAILABLE). */
  unavailable: 69,
  /** A bug in coolock (EX_SOFTWARE). */
  software: 70,
  /** The lock was lost while the command ran (EX_TEMPFAIL). */
  lost: 75,
  /** Deno was not given a permission that coolock needs (EX_NOPERM). */
  noPermission: 77,
  /** A bad config file or environment variable (EX_CONFIG). */
  config: 78,
  /** The command exists but can't be run, as in the shell. */
  cannotExecute: 126,
  /** The command was not found, as in the shell. */
  notFound: 127,
} as const;

/**
 * A run that stops before the command: one line for stderr and the exit
 * code for it: bad input (64 from the command line, 78 from a config file or
 * variable), a watchdog that can't start (77), a command that can't (126,
 * 127).
 */
export class ExitError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = "ExitError";
  }
}

/** The command was not found (127); `shown` is its name, escaped. */
export function commandNotFound(shown: string): ExitError {
  return new ExitError(`Command '${shown}' not found`, EXIT.notFound);
}

/** The command exists but can't be executed (126). */
export function commandNotExecutable(shown: string): ExitError {
  return new ExitError(
    `Command '${shown}' can't be executed: permission denied`,
    EXIT.cannotExecute,
  );
}
