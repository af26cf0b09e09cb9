/**
 * Conditions that a caller is expected to catch. Programmer mistakes (a
 * negative TTL, an empty lock name) are `TypeError` or `RangeError` instead.
 *
 * @module
 */

/**
 * The lock is held by another owner, or the wait for it timed out.
 *
 * @example
 * ```ts
 * import { acquire, file, LockHeldError } from "../mod.ts";
 * try {
 *   await using _lease = await acquire({ backend: file(), lock: "report" });
 * } catch (error) {
 *   if (!(error instanceof LockHeldError)) throw error;
 * }
 * ```
 */
export class LockHeldError extends Error {
  /** The lock that could not be taken. */
  readonly lock: string;
  /** Whether the caller waited for it before giving up. */
  readonly waited: boolean;

  /**
   * Makes the error for a lock that was held, or waited for in vain.
   *
   * @param lock the lock name
   * @param waited whether the attempt waited before giving up
   * @param options the standard error options, such as `cause`
   */
  constructor(lock: string, waited: boolean, options?: ErrorOptions) {
    super(
      waited
        ? `Timed out waiting for lock '${lock}'`
        : `Lock '${lock}' is held by another owner`,
      options,
    );
    this.name = "LockHeldError";
    this.lock = lock;
    this.waited = waited;
  }
}

/**
 * A lock that was held is gone: a renewal was refused, the backend reported
 * it, or no renewal was confirmed before the local deadline.
 *
 * @example
 * ```ts
 * import { LockLostError } from "../mod.ts";
 * const error = new LockLostError("report", "the key was deleted");
 * console.log(error.message); // Lock 'report' was lost: the key was deleted
 * ```
 */
export class LockLostError extends Error {
  /** The lock that was lost. */
  readonly lock: string;

  /**
   * Makes the error for a lock that is gone.
   *
   * @param lock the lock name
   * @param why what showed that the lock is gone
   * @param options the standard error options, such as `cause`
   */
  constructor(lock: string, why: string, options?: ErrorOptions) {
    super(`Lock '${lock}' was lost: ${why}`, options);
    this.name = "LockLostError";
    this.lock = lock;
  }
}

/**
 * The backend could not be reached or answered with an error. The message
 * never contains credentials.
 *
 * @example
 * ```ts
 * import { BackendUnavailableError } from "../mod.ts";
 * const error = new BackendUnavailableError("redis://db:6379", "connection refused");
 * console.log(error.message); // Backend 'redis://db:6379' is unavailable: connection refused
 * ```
 */
export class BackendUnavailableError extends Error {
  /** The backend's URI, with secrets redacted. */
  readonly backend: string;

  /**
   * Makes the error for a backend that can't be reached or failed.
   *
   * @param backend the backend's URI, already redacted
   * @param why what went wrong, without credentials
   * @param options the standard error options, such as `cause`
   */
  constructor(backend: string, why: string, options?: ErrorOptions) {
    super(`Backend '${backend}' is unavailable: ${why}`, options);
    this.name = "BackendUnavailableError";
    this.backend = backend;
  }
}

/**
 * The lock is stored with another `limit` than this caller's: every node
 * must use the same limit for a lock name. The message names both.
 *
 * @example
 * ```ts
 * import { LimitMismatchError } from "../mod.ts";
 * const error = new LimitMismatchError("backup", 2, 3);
 * console.log(error.message); // Lock 'backup' is used with limit 3, not 2: every node must use the same limit
 * ```
 */
export class LimitMismatchError extends Error {
  /** The lock. */
  readonly lock: string;
  /** The limit this caller asked for. */
  readonly limit: number;
  /** The limit stored with the lock. */
  readonly stored: number;

  /**
   * Makes the error for a lock used with two limits.
   *
   * @param lock the lock name
   * @param limit the limit this caller asked for
   * @param stored the limit stored with the lock
   * @param options the standard error options, such as `cause`
   */
  constructor(
    lock: string,
    limit: number,
    stored: number,
    options?: ErrorOptions,
  ) {
    super(
      `Lock '${lock}' is used with limit ${stored}, not ${limit}: every node must use the same limit`,
      options,
    );
    this.name = "LimitMismatchError";
    this.lock = lock;
    this.limit = limit;
    this.stored = stored;
  }
}

/**
 * A file or directory that coolock would write to can't be trusted: another
 * user could change it (it is theirs, or writable by them) or it is a
 * symbolic link. A setup problem on this host, never a reason to run
 * anyway; the CLI exits 78 (configuration).
 *
 * @example
 * ```ts
 * import { UntrustedPathError } from "../mod.ts";
 * const error = new UntrustedPathError("/tmp/locks", "Lock directory '/tmp/locks' can't be trusted: it is writable by other users");
 * console.log(error.path); // /tmp/locks
 * ```
 */
export class UntrustedPathError extends Error {
  /** The path that can't be trusted. */
  readonly path: string;

  /**
   * Makes the error for a path another user could change.
   *
   * @param path the file or directory
   * @param message one line that says what is wrong with it
   * @param options the standard error options, such as `cause`
   */
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UntrustedPathError";
    this.path = path;
  }
}

/**
 * Whether a backend call failed because of a setting rather than the
 * backend's health: a limit mismatch, a value the server refuses (a
 * `RangeError`, such as a database it doesn't have) or an untrusted path.
 * The lifecycle and the operator calls pass these through instead of
 * reporting the backend unavailable. Not `TypeError`: fetch reports a
 * refused connection as one.
 */
export function isSettingError(error: unknown): boolean {
  return error instanceof LimitMismatchError ||
    error instanceof RangeError || error instanceof UntrustedPathError;
}
