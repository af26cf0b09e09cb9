/**
 * Every setting and switch of the CLI, once: its config key (which is also
 * its long flag), aliases, short flag, default and how its text becomes a
 * value. The argument parser, `--help`, the environment variables, the
 * config files and `--print-config` are all driven by this table, so a key
 * can't exist in one of them and not the others.
 *
 * Values arrive as text from every source, and the parsers (`values.ts`)
 * never convert a text setting: `0777` stays `0777`. The defaults that depend
 * on the machine (the node, the log file) are here too.
 *
 * @module
 */

import { userStateDir } from "../../paths.ts";
import { defaultNode, MAX_LIMIT } from "../../options.ts";
import { lockNameProblem, nodeNameProblem } from "../../names.ts";
import {
  boolean,
  integer,
  level,
  limit,
  named,
  oneOf,
  seconds,
  text,
} from "./values.ts";

export { closest, LOG_LEVELS, quoted, ValueError } from "./values.ts";

/** One setting: a flag, a config key and a `COOLOCK_*` variable. */
export interface KeySpec<T> {
  /** Other config keys and flags that mean the same. */
  readonly aliases: readonly string[];
  /** The original's one-letter flag. */
  readonly short?: string;
  /** The placeholder in `--help`; none for a boolean, which takes no value on the command line. */
  readonly arg?: string;
  readonly help: string;
  /** The default. */
  readonly fallback: () => T;
  /** The default as `--help` shows it. */
  readonly shown?: string;
  /** Never repeat the value in a message (it may hold a password). */
  readonly secret?: boolean;
  /** Turns the text from a flag, variable or file into a value, or throws `ValueError`. */
  parse(raw: string): T;
}

/** The log files of the original, for root, and of a user's own state. */
export const ROOT_LOG_FILE = "/var/log/coolock.log";

function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false; // no --allow-sys: judge by the user's own places
  }
}

/**
 * The default log file: the original's `/var/log/coolock.log` for root, and
 * `coolock.log` in the user's state directory for everyone else, so that a
 * user's cron job neither fails to open the root's log nor mails its INFO
 * lines every run. Without any home, stderr.
 */
export function defaultLogFile(): string {
  if (isRoot()) return ROOT_LOG_FILE;
  const dir = userStateDir();
  return dir === undefined ? "-" : `${dir}/coolock.log`;
}

/** A setting, typed by its parser. */
function key<T>(spec: KeySpec<T>): KeySpec<T> {
  return spec;
}

/** The settings, in the order `--help` and `--print-config` show them. */
export const KEYS = {
  backend: key<string | undefined>({
    aliases: ["coordination-backend"],
    short: "b",
    arg: "uri",
    help: "coordination backend URI, such as redis://db:6379",
    fallback: () => undefined,
    shown: "the embedded file backend, this host only",
    secret: true,
    parse: text,
  }),
  lock: key({
    aliases: [],
    short: "l",
    arg: "name",
    help: "name of the lock: 1-200 characters, no control characters",
    fallback: () => "coolock",
    parse: named(lockNameProblem),
  }),
  "guard-time": key({
    aliases: [],
    short: "g",
    arg: "seconds",
    help:
      "hold the lock at least this long from acquisition, so late nodes skip",
    fallback: () => 30,
    parse: seconds(),
  }),
  node: key({
    aliases: [],
    short: "n",
    arg: "name",
    help: "this node's name at the backend",
    fallback: defaultNode,
    shown: "the hostname",
    parse: named(nodeNameProblem),
  }),
  "wait-timeout": key({
    aliases: [],
    short: "w",
    arg: "seconds",
    help: "wait this long for a held lock; 0 returns at once",
    fallback: () => 0,
    parse: seconds(),
  }),
  ttl: key({
    aliases: [],
    arg: "seconds",
    help: "lease time, renewed every third of it while the command runs",
    fallback: () => 30,
    parse: seconds(0, true),
  }),
  "kill-after": key({
    aliases: [],
    arg: "seconds",
    help: "grace between SIGTERM and SIGKILL when the command must stop",
    fallback: () => 5,
    parse: seconds(),
  }),
  limit: key({
    aliases: [],
    arg: "count",
    help:
      `how many nodes may hold the lock at once (1-${MAX_LIMIT}); the job gets COOLOCK_SLOT`,
    fallback: () => 1,
    parse: limit,
  }),
  "conflict-exit-code": key({
    aliases: [],
    arg: "code",
    help: "exit code when the lock was not acquired",
    fallback: () => 0,
    parse: integer(0, 255),
  }),
  unguarded: key({
    aliases: [],
    help:
      "run the command without the watchdog that ends it if coolock is killed",
    fallback: () => false,
    parse: boolean,
  }),
  "log-file": key({
    aliases: [],
    short: "f",
    arg: "path",
    help: "log file, or - for stderr; stderr where it can't be opened",
    fallback: defaultLogFile,
    shown: `${ROOT_LOG_FILE} for root, else ~/.local/state/coolock/coolock.log`,
    parse: text,
  }),
  "log-level": key({
    aliases: [],
    short: "v",
    arg: "level",
    help: "debug, info, warning, error or critical",
    fallback: () => "info",
    parse: level,
  }),
  "log-format": key({
    aliases: [],
    arg: "format",
    help: "text (the original's lines) or json (one object per line)",
    fallback: (): "text" | "json" => "text",
    parse: oneOf(["text", "json"] as const),
  }),
  "log-max-size": key({
    aliases: [],
    short: "m",
    arg: "bytes",
    help: "rotate the log file at this size; 0 never rotates",
    fallback: () => 20971520,
    parse: integer(0, Number.MAX_SAFE_INTEGER),
  }),
  "rotate-log-copies": key({
    aliases: [],
    short: "r",
    arg: "count",
    help: "rotated log copies to keep",
    fallback: () => 5,
    parse: integer(0, 1000),
  }),
};

/** A setting's key. */
export type Key = keyof typeof KEYS;

/** The settings' value types, by key. */
export type Values = {
  readonly [K in Key]:
    | ReturnType<(typeof KEYS)[K]["parse"]>
    | ReturnType<(typeof KEYS)[K]["fallback"]>;
};

/** The keys, in table order. */
export const KEY_NAMES: readonly Key[] = Object.keys(KEYS) as Key[];

/** The subcommands, recognised only as the very first argument. */
export const SUBCOMMANDS = ["status", "release", "check"] as const;

/** What the command line asks for: a run, or a subcommand. */
export type CommandKind = "run" | (typeof SUBCOMMANDS)[number];

/** A command-line switch that is not a setting. */
export interface SwitchSpec {
  readonly aliases: readonly string[];
  readonly short?: string;
  /** The placeholder; none for a switch that takes no value. */
  readonly arg?: string;
  readonly help: string;
  /** The commands it belongs to. */
  readonly commands: readonly CommandKind[];
}

const EVERY: readonly CommandKind[] = ["run", ...SUBCOMMANDS];

/** The switches, in the order `--help` shows them. */
export const SWITCHES = {
  config: {
    aliases: ["config-file"],
    short: "c",
    arg: "path",
    help: "read this config file too, above the others (also COOLOCK_CONFIG)",
    commands: EVERY,
  },
  shell: {
    aliases: [],
    help: "run the command, given as one string, through /bin/sh -c",
    commands: ["run"],
  },
  "print-config": {
    aliases: [],
    help:
      "check the settings as a run would, print them and where each came from, then exit",
    commands: ["run"],
  },
  all: {
    aliases: [],
    help: "status: every coolock lock on the backend, where it can list them",
    commands: ["status"],
  },
  force: {
    aliases: [],
    help: "release: really remove the lock, whoever holds it",
    commands: ["release"],
  },
  json: {
    aliases: [],
    help: "status, release, check: print one JSON document",
    commands: ["status", "release", "check"],
  },
  version: {
    aliases: [],
    short: "V",
    help: "print the version of coolock and of Deno, then exit",
    commands: EVERY,
  },
  help: {
    aliases: [],
    short: "h",
    help: "show this help, then exit",
    commands: EVERY,
  },
} satisfies Record<string, SwitchSpec>;

/** A switch's name. */
export type Switch = keyof typeof SWITCHES;

/** `guard-time` → `COOLOCK_GUARD_TIME`. */
export function envName(key: string): string {
  return `COOLOCK_${key.toUpperCase().replaceAll("-", "_")}`;
}

/** The names `COOLOCK_CONFIG` and its alias, for the `--config` file. */
export const CONFIG_ENV: readonly string[] = ["config", "config-file"].map(
  envName,
);

/**
 * `COOLOCK_*` variables that are not settings but are coolock's: what a job
 * gets, what install.sh reads, and the test suite's own. They are never
 * warned about.
 */
export const OTHER_ENV: readonly string[] = [
  "COOLOCK_FENCING_TOKEN",
  "COOLOCK_SLOT",
  "COOLOCK_VERSION",
  "COOLOCK_INSTALL_DIR",
  "COOLOCK_DOWNLOAD_URL",
];

/** Finds a setting by its key or an alias. */
export function findKey(name: string): Key | undefined {
  return KEY_NAMES.find((key) =>
    key === name || KEYS[key].aliases.includes(name)
  );
}
