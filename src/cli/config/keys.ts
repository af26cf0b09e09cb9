/**
 * Every setting of the CLI, once: its config key, its flag, its default and
 * how its text becomes a value. Flags, environment variables and YAML files
 * all go through this table.
 *
 * @module
 */

import { defaultNode } from "../../options.ts";

/** The value types a setting can have. */
export type Value = string | number;

/** One setting. */
export interface KeySpec {
  /** The config-file key, which is also the long flag without `--`. */
  readonly key: string;
  /** Other config keys and flags that mean the same. */
  readonly aliases?: readonly string[];
  /** The original's one-letter flag. */
  readonly short?: string;
  /** The placeholder in `--help`. */
  readonly arg: string;
  readonly help: string;
  /** The default, or `undefined` when unset means something (see help). */
  readonly fallback?: Value | (() => Value);
  /** Turns the raw text or YAML value into a value, or says what is wrong. */
  parse(raw: unknown): Value;
}

/** What a parser throws: the part of the message after the key's name. */
export class ValueError extends Error {}

const UNITS: Readonly<Record<string, number>> = {
  ms: 0.001,
  s: 1,
  m: 60,
  h: 3600,
};

function text(raw: unknown): string {
  if (typeof raw === "string") return raw.trim();
  if (typeof raw === "number") return String(raw);
  throw new ValueError(
    `must be a plain value, not ${raw === null ? "empty" : typeof raw}`,
  );
}

/** Seconds, as a number or text with an optional unit: `30`, `1.5`, `500ms`, `5m`. */
function seconds(min: number, minIncluded = true) {
  return (raw: unknown): number => {
    const value = text(raw);
    if (value.startsWith("-")) {
      throw new ValueError(`must not be negative, not '${value}'`);
    }
    const match = /^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(ms|s|m|h)?$/i.exec(
      value,
    );
    if (!match) {
      throw new ValueError(
        `must be a number of seconds (such as 30, 1.5 or 500ms), not '${value}'`,
      );
    }
    const result = Number(match[1]) * UNITS[(match[2] ?? "s").toLowerCase()];
    if (
      !Number.isFinite(result) || result < min ||
      (!minIncluded && result === min)
    ) {
      throw new ValueError(
        `must be ${
          minIncluded ? "at least" : "more than"
        } ${min} seconds, not '${value}'`,
      );
    }
    return result;
  };
}

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: unknown): number => {
    const value = text(raw);
    if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new ValueError(
        `must be a whole number from ${min} to ${max}, not '${value}'`,
      );
    }
    return Number(value);
  };
}

function name(what: string) {
  return (raw: unknown): string => {
    const value = text(raw);
    if (value === "") throw new ValueError(`must not be empty`);
    // deno-lint-ignore no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(value)) {
      throw new ValueError(`must be a ${what} without control characters`);
    }
    return value;
  };
}

/** The log levels, with the original's aliases. */
export const LOG_LEVELS: Readonly<Record<string, number>> = {
  debug: 10,
  info: 20,
  information: 20,
  warning: 30,
  warn: 30,
  error: 40,
  critical: 50,
  crit: 50,
};

function level(raw: unknown): string {
  const value = text(raw).toLowerCase();
  if (!(value in LOG_LEVELS)) {
    throw new ValueError(
      `must be one of debug, info, warning, error, critical, not '${value}'`,
    );
  }
  return value;
}

/** The settings, in the order `--help` and `--print-config` show them. */
export const KEYS: readonly KeySpec[] = [
  {
    key: "backend",
    aliases: ["coordination-backend"],
    short: "b",
    arg: "uri",
    help:
      "coordination backend URI, such as redis://db:6379 (default: the embedded file backend, this host only)",
    parse: name("URI"),
  },
  {
    key: "lock",
    short: "l",
    arg: "name",
    help: "name of the lock",
    fallback: "coolock",
    parse: name("lock name"),
  },
  {
    key: "guard-time",
    short: "g",
    arg: "seconds",
    help:
      "hold the lock at least this long from acquisition, so late nodes skip",
    fallback: 30,
    parse: seconds(0),
  },
  {
    key: "node",
    short: "n",
    arg: "name",
    help: "this node's name at the backend",
    fallback: defaultNode,
    parse: name("node name"),
  },
  {
    key: "wait-timeout",
    short: "w",
    arg: "seconds",
    help: "wait this long for a held lock; 0 returns at once",
    fallback: 0,
    parse: seconds(0),
  },
  {
    key: "ttl",
    arg: "seconds",
    help: "lease time, renewed every third of it while the command runs",
    fallback: 30,
    parse: seconds(0, false),
  },
  {
    key: "kill-after",
    arg: "seconds",
    help: "grace between SIGTERM and SIGKILL when the lock is lost",
    fallback: 5,
    parse: seconds(0),
  },
  {
    key: "conflict-exit-code",
    arg: "code",
    help: "exit code when the lock was not acquired",
    fallback: 0,
    parse: integer(0, 255),
  },
  {
    key: "log-file",
    short: "f",
    arg: "path",
    help: "log file; stderr where it can't be opened",
    fallback: "/var/log/coolock.log",
    parse: name("path"),
  },
  {
    key: "log-level",
    short: "v",
    arg: "level",
    help: "debug, info, warning, error or critical",
    fallback: "info",
    parse: level,
  },
  {
    key: "log-max-size",
    short: "m",
    arg: "bytes",
    help: "rotate the log file at this size; 0 never rotates",
    fallback: 20971520,
    parse: integer(0),
  },
  {
    key: "rotate-log-copies",
    short: "r",
    arg: "count",
    help: "rotated log copies to keep",
    fallback: 5,
    parse: integer(0, 1000),
  },
];

/** Finds a setting by its key or an alias. */
export function findKey(key: string): KeySpec | undefined {
  return KEYS.find((spec) => spec.key === key || spec.aliases?.includes(key));
}

/** `guard-time` → `COOLOCK_GUARD_TIME`. */
export function envName(key: string): string {
  return `COOLOCK_${key.toUpperCase().replaceAll("-", "_")}`;
}
