/**
 * Where each setting comes from. Precedence, highest first: flags, then
 * `COOLOCK_<KEY>` environment variables, then the `--config` file, then
 * `~/.coolock`, then `$HOME/coolock`, then `/etc/coolock`, then defaults.
 * Every value is checked, also one that a higher source overrides.
 *
 * A setting given twice at one level is an error, never a silent choice:
 * `-l a -l b` (the parser), `COOLOCK_BACKEND` with
 * `COOLOCK_COORDINATION_BACKEND`, a key and its alias in one file. Unknown
 * keys in a file are an error; unknown `COOLOCK_*` variables are a warning,
 * since the environment is shared with everything else.
 *
 * @module
 */

import {
  closest,
  CONFIG_ENV,
  envName,
  findKey,
  type Key,
  KEY_NAMES,
  KEYS,
  OTHER_ENV,
  quoted,
  ValueError,
  type Values,
} from "./keys.ts";
import { EXIT, ExitError } from "../exit_codes.ts";
import type { FlagValue } from "../args.ts";
import { type ConfigFile, ConfigFileProblem, readConfigFile } from "./files.ts";
import { type Entry, parseConfig, SyntaxProblem } from "./syntax.ts";
import { secretsOf } from "../../uri.ts";

export { ExitError };

/** Where a setting's value came from. */
export interface Origin {
  readonly kind: "flag" | "env" | "file" | "default";
  /** The flag, variable or file, as the user would name it. */
  readonly where: string;
}

/** One effective setting. */
export interface Setting<T> {
  readonly value: T;
  readonly origin: Origin;
}

/** The effective settings, by key, typed by the key table. */
export type Settings = { readonly [K in Key]: Setting<Values[K]> };

/** The exit code for a bad value from this origin: 64 for flags, 78 otherwise. */
export function exitCodeFor(origin: Origin): number {
  return origin.kind === "flag" ? EXIT.usage : EXIT.config;
}

/** Describes where a value came from, for the start of an error message. */
export function describeOrigin(key: string, origin: Origin): string {
  switch (origin.kind) {
    case "flag":
      return `Option '${origin.where}'`;
    case "env":
      return `Environment variable '${origin.where}'`;
    case "file":
      return `Key '${key}' in '${origin.where}'`;
    default:
      return `The default of '${key}'`;
  }
}

/** What the command line gave: settings by key, and the `--config` file. */
export interface FlagValues {
  readonly values: ReadonlyMap<Key, FlagValue>;
  readonly config?: FlagValue;
}

/** What loading reads from the outside world; tests pass their own. */
export interface Environment {
  get(name: string): string | undefined;
  /** Every variable's name, for the unknown-variable warning; `[]` when not allowed. */
  names(): string[];
  readonly home: string | undefined;
  /** A config file, or `undefined` when there is none at `path`. */
  readConfig(path: string, explicit: boolean): Promise<ConfigFile | undefined>;
}

/** The process's real environment and files. */
export const processEnvironment: Environment = {
  get(name) {
    try {
      return Deno.env.get(name);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      // Deno refuses a value that is not UTF-8, rather than change it.
      throw new ExitError(
        `Environment variable '${name}' must be valid UTF-8`,
        EXIT.config,
      );
    }
  },
  names() {
    try {
      return Object.keys(Deno.env.toObject());
    } catch {
      return []; // --allow-env for some variables only
    }
  },
  get home() {
    return Deno.env.get("HOME");
  },
  readConfig: readConfigFile,
};

/** The settings, which files were read, and warnings for stderr and the log. */
export interface Loaded {
  readonly settings: Settings;
  readonly files: readonly string[];
  readonly warnings: readonly string[];
}

function parseWith<K extends Key>(
  key: K,
  raw: string | { composite: string },
  origin: Origin,
): Values[K] {
  const fail = (problem: string) =>
    new ExitError(
      `${describeOrigin(key, origin)} ${problem}`,
      exitCodeFor(origin),
    );
  if (typeof raw !== "string") {
    throw fail(`must be a plain value, not a ${raw.composite}`);
  }
  // Deno decodes argv and the environment lossily: invalid UTF-8 arrives as
  // U+FFFD, and a name made of it would not be the name the user typed.
  if (origin.kind !== "file" && raw.includes("\uFFFD")) {
    throw fail(
      "must be valid UTF-8 (it holds U+FFFD, the replacement character, which is what invalid bytes become)",
    );
  }
  try {
    return KEYS[key].parse(raw) as Values[K];
  } catch (error) {
    if (!(error instanceof ValueError)) throw error;
    throw fail(error.message);
  }
}

/** The config files, lowest precedence first. */
export function configFiles(
  home: string | undefined,
  explicit: string | undefined,
): string[] {
  const files = ["/etc/coolock"];
  if (home) files.push(`${home}/coolock`, `${home}/.coolock`);
  if (explicit !== undefined) files.push(explicit);
  return files;
}

/** Reads one config file into raw values by key; `undefined` when absent. */
async function readLayer(
  path: string,
  explicit: boolean,
  env: Environment,
  warnings: string[],
): Promise<Map<Key, string | { composite: string }> | undefined> {
  let file: ConfigFile | undefined;
  let entries: readonly Entry[];
  try {
    file = await env.readConfig(path, explicit);
    if (file === undefined) {
      if (!explicit) return undefined;
      throw new ConfigFileProblem("does not exist");
    }
    entries = (await parseConfig(file.text)).entries;
  } catch (error) {
    if (error instanceof ConfigFileProblem) {
      throw new ExitError(
        `Config file '${path}' ${error.message}`,
        EXIT.config,
      );
    }
    if (error instanceof SyntaxProblem) {
      throw new ExitError(
        `Config file '${path}' ${
          error.line === undefined ? "" : `line ${error.line} `
        }${error.problem}`,
        EXIT.config,
      );
    }
    throw error;
  }
  const values = new Map<Key, string | { composite: string }>();
  const names = KEY_NAMES.flatMap((key) => [key, ...KEYS[key].aliases]);
  const unknown = entries.filter((entry) => findKey(entry.key) === undefined);
  if (unknown.length > 0) {
    // A file full of unknown keys is not a config file (`-c /etc/shadow`):
    // its keys are its contents, and are not repeated. Only a likely typo
    // of a real key is named.
    const hints = unknown.map((entry) => closest(entry.key, names));
    const at = (entry: Entry) =>
      entry.line === undefined ? "" : ` (line ${entry.line})`;
    if (hints.every((hint) => hint !== undefined)) {
      throw new ExitError(
        `Unknown key ${quoted(unknown[0].key)} in config file '${path}'${
          at(unknown[0])
        }: did you mean '${hints[0]}'?`,
        EXIT.config,
      );
    }
    throw new ExitError(
      `Config file '${path}'${
        at(unknown[hints.findIndex((hint) => hint === undefined)])
      } has a key that is not a coolock setting (the settings are ${
        KEY_NAMES.join(", ")
      })`,
      EXIT.config,
    );
  }
  const seen = new Map<Key, string>();
  for (const entry of entries) {
    const key = findKey(entry.key)!;
    const previous = seen.get(key);
    if (previous !== undefined) {
      throw new ExitError(
        previous === entry.key
          ? `Config file '${path}' sets '${key}' twice`
          : `Config file '${path}' sets '${key}' twice (as '${previous}' and '${entry.key}')`,
        EXIT.config,
      );
    }
    seen.set(key, entry.key);
    values.set(key, entry.value);
  }
  const backend = values.get("backend");
  if (
    typeof backend === "string" && secretsOf(backend).length > 0 &&
    file.mode !== null && (file.mode & 0o044) !== 0
  ) {
    warnings.push(
      `Config file '${path}' holds a password or token and can be read by other users (mode ${
        (file.mode & 0o777).toString(8).padStart(4, "0")
      }): chmod 600 it, or move the secret to COOLOCK_BACKEND`,
    );
  }
  return values;
}

/** The variable of `names` that is set (non-empty), or an error for two. */
function oneOf(
  names: readonly string[],
  key: string,
  env: Environment,
): { name: string; raw: string } | undefined {
  const set = names.filter((name) => (env.get(name) ?? "") !== "");
  if (set.length > 1) {
    throw new ExitError(
      `Environment variables '${set[0]}' and '${
        set[1]
      }' both set '${key}': unset one`,
      EXIT.config,
    );
  }
  return set.length === 0 ? undefined : { name: set[0], raw: env.get(set[0])! };
}

function unknownVariables(env: Environment): string[] {
  const known = new Set([
    ...KEY_NAMES.flatMap((key) => [key, ...KEYS[key].aliases].map(envName)),
    ...CONFIG_ENV,
    ...OTHER_ENV,
  ]);
  return env.names()
    .filter((name) =>
      name.startsWith("COOLOCK_") && !name.startsWith("COOLOCK_TEST_") &&
      !known.has(name)
    )
    .sort()
    .map((name) => {
      const suffix = (variable: string) => variable.slice("COOLOCK_".length);
      const hint = closest(suffix(name), [...known].map(suffix));
      return `Environment variable '${name}' is not a coolock setting and is ignored${
        hint ? `: did you mean 'COOLOCK_${hint}'?` : ""
      }`;
    });
}

/**
 * The effective settings from every source, each value checked. Throws
 * `ExitError` (exit 64 for flags, 78 for env and files) on the first bad
 * value.
 */
export async function loadSettings(
  flags: FlagValues,
  env: Environment = processEnvironment,
): Promise<Loaded> {
  const warnings: string[] = [];
  const layers: Array<{
    origin: Origin;
    values: Map<Key, string | { composite: string }>;
  }> = [];
  const configEnv = oneOf(CONFIG_ENV, "config", env);
  const explicit = flags.config?.raw ?? configEnv?.raw;
  if (explicit === "") {
    throw new ExitError(
      `Option '${flags.config!.flag}' must not be empty`,
      EXIT.usage,
    );
  }
  const files: string[] = [];
  for (const path of configFiles(env.home, explicit)) {
    const values = await readLayer(path, path === explicit, env, warnings);
    if (values) {
      files.push(path);
      layers.push({ origin: { kind: "file", where: path }, values });
    }
  }
  // Inside a coolock job, COOLOCK_LOCK and COOLOCK_NODE describe the outer
  // lock; reading them as settings would make a nested coolock fight it.
  const nested = env.get("COOLOCK_FENCING_TOKEN") !== undefined;
  for (const key of KEY_NAMES) {
    if (nested && (key === "lock" || key === "node")) continue;
    const found = oneOf([key, ...KEYS[key].aliases].map(envName), key, env);
    if (found) {
      layers.push({
        origin: { kind: "env", where: found.name },
        values: new Map([[key, found.raw]]),
      });
    }
  }
  warnings.push(...unknownVariables(env));
  for (const [key, { raw, flag }] of flags.values) {
    layers.push({
      origin: { kind: "flag", where: flag },
      values: new Map([[key, raw]]),
    });
  }
  const chosen = new Map<Key, Setting<Values[Key]>>();
  for (const layer of layers) {
    for (const [key, raw] of layer.values) {
      // Every value is checked, also one that a higher layer overrides.
      chosen.set(key, {
        value: parseWith(key, raw, layer.origin),
        origin: layer.origin,
      });
    }
  }
  const settings = Object.fromEntries(
    KEY_NAMES.map((key) => [
      key,
      chosen.get(key) ??
        {
          value: KEYS[key].fallback(),
          origin: { kind: "default", where: "default" },
        },
    ]),
  ) as Settings;
  return { settings, files, warnings };
}
