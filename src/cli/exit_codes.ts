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
 * Bad input: one line for stderr, and the exit code for it (64 for the
 * command line, 78 for a config file or environment variable).
 */
export class InputError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = "InputError";
  }
}
