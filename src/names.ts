/**
 * Lock and node names: the one place that says what a name may be. Any
 * Unicode text of 1 to 200 characters without control characters is a lock
 * name; each backend maps it to its own key space, so quotes, slashes and
 * semicolons are only data. The rules are written as "problems", words that
 * follow the name's subject, so that the library (`Lock name "x" …`) and the
 * CLI (`Option '--lock' …`, `Key 'lock' in '/etc/coolock' …`) say the same
 * thing about where the value came from.
 *
 * Leading or trailing white space is refused rather than trimmed: YAML trims
 * it and a flag keeps it, so trimming in one place and not another would give
 * two nodes two different locks.
 *
 * @module
 */

/** The longest lock name, in characters (code points). */
export const MAX_LOCK_NAME_LENGTH = 200;

/** The longest node name, in characters (code points). */
export const MAX_NODE_NAME_LENGTH = 200;

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** The part of a name shown in a message: one line, at most 40 characters. */
function shown(name: string): string {
  const chars = [...name];
  const head = chars.length > 40 ? `${chars.slice(0, 40).join("")}…` : name;
  return JSON.stringify(head);
}

function textProblem(name: string, max: number): string | undefined {
  if (name.length === 0) return "must not be empty";
  const length = [...name].length;
  if (length > max) {
    return `must not be longer than ${max} characters (it has ${length})`;
  }
  if (CONTROL.test(name)) return "must not contain control characters";
  if (!name.isWellFormed()) {
    return "must be well-formed Unicode (it has a lone surrogate)";
  }
  return undefined;
}

/**
 * What is wrong with a lock name, in words that follow its subject ("must
 * not be empty"), or `undefined` when it is a good name.
 */
export function lockNameProblem(name: string): string | undefined {
  return textProblem(name, MAX_LOCK_NAME_LENGTH) ??
    (name.trim() !== name
      ? "must not start or end with white space"
      : undefined);
}

/** What is wrong with a node name, as {@linkcode lockNameProblem} does. */
export function nodeNameProblem(name: string): string | undefined {
  return textProblem(name, MAX_NODE_NAME_LENGTH) ??
    (/\s/.test(name) ? "must not contain spaces" : undefined);
}

/**
 * Throws `TypeError` unless `name` is a usable lock name, naming the
 * problem.
 */
export function checkLockName(name: unknown): asserts name is string {
  if (typeof name !== "string") {
    throw new TypeError(`Lock name must be a string, not ${typeof name}`);
  }
  const problem = lockNameProblem(name);
  if (problem) throw new TypeError(`Lock name ${shown(name)} ${problem}`);
}

/** Throws `TypeError` unless `name` is a usable node name. */
export function checkNodeName(name: unknown): asserts name is string {
  if (typeof name !== "string") {
    throw new TypeError(`Node name must be a string, not ${typeof name}`);
  }
  const problem = nodeNameProblem(name);
  if (problem) throw new TypeError(`Node name ${shown(name)} ${problem}`);
}

/**
 * Encodes a lock name as a safe single path segment: `[A-Za-z0-9._-]` stay,
 * every other UTF-8 byte becomes `%XX`. Distinct names give distinct
 * segments, and a leading `.` is escaped so that no segment is `.` or `..`.
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
