/**
 * Where each setting comes from. Precedence, highest first: flags, then
 * `COOLOCK_<KEY>` environment variables, then the `--config` file, then
 * `~/.coolock`, then `$HOME/coolock`, then `/etc/coolock`, then defaults.
 *
 * @module
 */

import {
  envName,
  findKey,
  KEYS,
  type KeySpec,
  type Value,
  ValueError,
} from "./keys.ts";
import { EXIT } from "../exit_codes.ts";

/** Where a setting's value came from. */
export interface Origin {
  readonly kind: "flag" | "env" | "file" | "default";
  /** The flag, variable or file, as the user would name it. */
  readonly where: string;
}

/** One effective setting. */
export interface Setting {
  readonly value: Value | undefined;
  readonly origin: Origin;
}

/** The effective settings, by key. */
export type Settings = Readonly<Record<string, Setting>>;

/** Bad input: one line for stderr, and the exit code for it. */
export class InputError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = "InputError";
  }
}

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

/** What the command line gave: raw flag values by key, and the flag as written. */
export interface FlagValues {
  readonly values: ReadonlyMap<
    string,
    { readonly raw: string; readonly flag: string }
  >;
  readonly config?: string;
}

/** What loading reads from the outside world; tests pass their own. */
export interface Environment {
  get(name: string): string | undefined;
  readonly home: string | undefined;
  readFile(path: string): Promise<string | undefined>;
}

/** The process's real environment and files. */
export const processEnvironment: Environment = {
  get: (name) => Deno.env.get(name),
  get home() {
    return Deno.env.get("HOME");
  },
  async readFile(path) {
    try {
      return await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  },
};

function parseWith(spec: KeySpec, raw: unknown, origin: Origin): Value {
  try {
    return spec.parse(raw);
  } catch (error) {
    if (!(error instanceof ValueError)) throw error;
    throw new InputError(
      `${describeOrigin(spec.key, origin)} ${error.message}`,
      exitCodeFor(origin),
    );
  }
}

function closest(key: string): string | undefined {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      let previous = row[0];
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const current = row[j];
        row[j] = Math.min(
          row[j] + 1,
          row[j - 1] + 1,
          previous + (a[i - 1] === b[j - 1] ? 0 : 1),
        );
        previous = current;
      }
    }
    return row[b.length];
  };
  const names = KEYS.flatMap((spec) => [spec.key, ...(spec.aliases ?? [])]);
  const normalized = key.toLowerCase().replaceAll("_", "-");
  const best = names.map((name) => [name, distance(normalized, name)] as const)
    .sort((a, b) => a[1] - b[1])[0];
  return best && best[1] <= 3 ? best[0] : undefined;
}

async function readConfigFile(
  path: string,
  explicit: boolean,
  env: Environment,
): Promise<Map<string, unknown> | undefined> {
  let text: string | undefined;
  try {
    text = await env.readFile(path);
  } catch (error) {
    const why = error instanceof Deno.errors.IsADirectory
      ? "it is a directory, not a YAML file"
      : (error as Error).message;
    throw new InputError(
      `Config file '${path}' can't be read: ${why}`,
      EXIT.config,
    );
  }
  if (text === undefined) {
    if (!explicit) return undefined;
    throw new InputError(`Config file '${path}' does not exist`, EXIT.config);
  }
  const { parse } = await import("npm:yaml@2.9.1");
  let document: unknown;
  try {
    document = parse(text, { prettyErrors: false });
  } catch (error) {
    const first = (error as Error).message.split("\n")[0];
    throw new InputError(
      `Config file '${path}' is not valid YAML: ${first}`,
      EXIT.config,
    );
  }
  if (document === null || document === undefined) return new Map();
  if (typeof document !== "object" || Array.isArray(document)) {
    throw new InputError(
      `Config file '${path}' must be a mapping of keys to values, such as 'lock: nightly-backup'`,
      EXIT.config,
    );
  }
  const entries = new Map<string, unknown>();
  for (const [key, raw] of Object.entries(document)) {
    const spec = findKey(key);
    if (!spec) {
      const hint = closest(key);
      throw new InputError(
        `Unknown key '${key}' in config file '${path}'${
          hint ? `: did you mean '${hint}'?` : ""
        }`,
        EXIT.config,
      );
    }
    if (entries.has(spec.key)) {
      throw new InputError(
        `Config file '${path}' sets '${spec.key}' twice (as '${key}' and an alias)`,
        EXIT.config,
      );
    }
    entries.set(spec.key, raw);
  }
  return entries;
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

/**
 * The effective settings from every source, each value checked. Throws
 * `InputError` (exit 64 for flags, 78 for env and files) on the first bad
 * value.
 */
export async function loadSettings(
  flags: FlagValues,
  env: Environment = processEnvironment,
): Promise<{ settings: Settings; files: string[] }> {
  const layers: Array<{ origin: Origin; values: Map<string, unknown> }> = [];
  const configFlag = flags.config;
  const configEnv = env.get("COOLOCK_CONFIG") || undefined;
  const explicit = configFlag ?? configEnv;
  const files: string[] = [];
  for (const path of configFiles(env.home, explicit)) {
    const values = await readConfigFile(path, path === explicit, env);
    if (values) {
      files.push(path);
      layers.push({ origin: { kind: "file", where: path }, values });
    }
  }
  // Inside a coolock job, COOLOCK_LOCK and COOLOCK_NODE describe the outer
  // lock; reading them as settings would make a nested coolock fight it.
  const nested = env.get("COOLOCK_FENCING_TOKEN") !== undefined;
  for (const spec of KEYS) {
    if (nested && (spec.key === "lock" || spec.key === "node")) continue;
    for (const key of [spec.key, ...(spec.aliases ?? [])]) {
      const name = envName(key);
      const raw = env.get(name);
      if (raw !== undefined && raw !== "") {
        layers.push({
          origin: { kind: "env", where: name },
          values: new Map([[spec.key, raw]]),
        });
        break;
      }
    }
  }
  for (const [key, { raw, flag }] of flags.values) {
    layers.push({
      origin: { kind: "flag", where: flag },
      values: new Map([[key, raw]]),
    });
  }
  const settings: Record<string, Setting> = {};
  for (const spec of KEYS) {
    const fallback = typeof spec.fallback === "function"
      ? spec.fallback()
      : spec.fallback;
    settings[spec.key] = {
      value: fallback,
      origin: { kind: "default", where: "default" },
    };
  }
  for (const { origin, values } of layers) {
    for (const [key, raw] of values) {
      const spec = findKey(key)!;
      settings[spec.key] = { value: parseWith(spec, raw, origin), origin };
    }
  }
  return { settings, files };
}
