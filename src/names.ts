/**
 * Lock names. Any Unicode text of 1 to 200 characters without control
 * characters is a name; each backend maps it to its own key space, so quotes,
 * slashes and semicolons are only data.
 *
 * @module
 */

/** The longest lock name, in characters. */
export const MAX_LOCK_NAME_LENGTH = 200;

/**
 * Throws `TypeError` unless `name` is a usable lock name, naming the
 * problem.
 *
 * @example
 * ```ts
 * import { checkLockName } from "./names.ts";
 * checkLockName("nightly-backup");
 * ```
 */
export function checkLockName(name: unknown): asserts name is string {
  if (typeof name !== "string") {
    throw new TypeError(`Lock name must be a string, not ${typeof name}`);
  }
  if (name.length === 0) throw new TypeError("Lock name must not be empty");
  if ([...name].length > MAX_LOCK_NAME_LENGTH) {
    throw new TypeError(
      `Lock name '${
        name.slice(0, 40)
      }…' is longer than ${MAX_LOCK_NAME_LENGTH} characters`,
    );
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw new TypeError(
      `Lock name ${JSON.stringify(name)} contains a control character`,
    );
  }
  if (!name.isWellFormed()) {
    throw new TypeError(
      `Lock name ${JSON.stringify(name)} is not well-formed Unicode`,
    );
  }
}

/**
 * Encodes a lock name as a safe single path segment: `[A-Za-z0-9._-]` stay,
 * every other UTF-8 byte becomes `%XX`. Distinct names give distinct
 * segments, and a leading `.` is escaped so that no segment is `.` or `..`.
 *
 * @example
 * ```ts
 * import { encodeLockName } from "./names.ts";
 * console.log(encodeLockName("../etc/passwd")); // %2E.%2Fetc%2Fpasswd
 * ```
 */
export function encodeLockName(name: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(name)) {
    const char = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(char) || (char === "." && out !== "")
      ? char
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
