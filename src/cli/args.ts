/**
 * The command line, parsed by the key table (`config/keys.ts`) with no npm
 * module, so that a run of the file or etcd backend starts without Deno's
 * Node compatibility layer. `--help` is generated from the same table.
 *
 * The grammar is the original's:
 * - `coolock [options] [--] command [args...]`: options end at `--` or at
 *   the first argument that is not an option (the seed's style), and the
 *   rest is the command, untouched;
 * - `coolock status|release|check [options]`: a subcommand only as the very
 *   first argument, so `coolock -- status` runs a command named `status`;
 * - `--name value`, `--name=value`, `-x value`, `-xvalue` and `-x=value`, as
 *   argparse reads them; long options are never abbreviated.
 *
 * Every error is one line that names the option as written and never its
 * value, which may be a password: unknown options get a "did you mean", a
 * repeated option or two aliases of one setting are an error, and a value
 * that looks like an option (`--lock --ttl 5`) is refused rather than taken.
 *
 * @module
 */

import {
  closest,
  type CommandKind,
  type Key,
  KEY_NAMES,
  KEYS,
  SUBCOMMANDS,
  type Switch,
  SWITCHES,
} from "./config/keys.ts";
import { EXIT, ExitError } from "./exit_codes.ts";

/** A value from the command line, and the flag as the user wrote it. */
export interface FlagValue {
  readonly raw: string;
  readonly flag: string;
}

/** What the command line asks for. */
export interface ParsedArgs {
  readonly kind: CommandKind;
  /** Settings given as flags. */
  readonly flags: ReadonlyMap<Key, FlagValue>;
  /** `-c`/`--config`/`--config-file`. */
  readonly config?: FlagValue;
  /** The switches that were given (`config` aside). */
  readonly switches: ReadonlySet<Exclude<Switch, "config">>;
  /** The command and its arguments (a run only). */
  readonly command: readonly string[];
}

type Target =
  | { readonly kind: "key"; readonly name: Key }
  | { readonly kind: "switch"; readonly name: Switch };

interface Option {
  readonly target: Target;
  readonly takesValue: boolean;
  readonly commands: readonly CommandKind[];
}

function buildOptions() {
  const long = new Map<string, Option>();
  const short = new Map<string, Option>();
  const add = (
    names: readonly string[],
    letter: string | undefined,
    option: Option,
  ) => {
    for (const name of names) long.set(name, option);
    if (letter) short.set(letter, option);
  };
  const RUN_AND_SUBCOMMANDS: readonly CommandKind[] = ["run", ...SUBCOMMANDS];
  for (const name of KEY_NAMES) {
    const spec = KEYS[name];
    add([name, ...spec.aliases], spec.short, {
      target: { kind: "key", name },
      takesValue: "arg" in spec && spec.arg !== undefined,
      commands: RUN_AND_SUBCOMMANDS,
    });
  }
  for (const name of Object.keys(SWITCHES) as Switch[]) {
    const spec = SWITCHES[name];
    add([name, ...spec.aliases], "short" in spec ? spec.short : undefined, {
      target: { kind: "switch", name },
      takesValue: "arg" in spec,
      commands: spec.commands,
    });
  }
  return { long, short };
}

const OPTIONS = buildOptions();

function usageError(message: string): ExitError {
  return new ExitError(message, EXIT.usage);
}

function unknown(written: string): ExitError {
  const hint = written.startsWith("--")
    ? closest(written.slice(2), [...OPTIONS.long.keys()])
    : undefined;
  return usageError(
    `unknown option '${written}' (${
      hint ? `did you mean --${hint}?` : "see 'coolock --help'"
    })`,
  );
}

/** An argument that would be read as an option, not as a value. */
function looksLikeOption(arg: string): boolean {
  return arg.startsWith("-") && arg !== "-" && !/^-[0-9.]/.test(arg);
}

/** Parses `argv` (`Deno.args`); throws `ExitError` (64) for bad usage. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const first = argv[0];
  const kind: CommandKind =
    (SUBCOMMANDS as readonly string[]).includes(first ?? "")
      ? first as CommandKind
      : "run";
  const flags = new Map<Key, FlagValue>();
  const switches = new Set<Exclude<Switch, "config">>();
  let config: FlagValue | undefined;
  const given = new Map<string, string>();
  let command: readonly string[] = [];
  for (let i = kind === "run" ? 0 : 1; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      command = argv.slice(i + 1);
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      command = argv.slice(i);
      break;
    }
    let written: string;
    let attached: string | undefined;
    let option: Option | undefined;
    if (arg.startsWith("--")) {
      const equals = arg.indexOf("=");
      written = equals < 0 ? arg : arg.slice(0, equals);
      attached = equals < 0 ? undefined : arg.slice(equals + 1);
      option = OPTIONS.long.get(written.slice(2));
    } else {
      written = arg.slice(0, 2);
      const rest = arg.slice(2);
      attached = rest === "" ? undefined : rest.replace(/^=/, "");
      option = OPTIONS.short.get(arg[1]);
    }
    if (!option) throw unknown(written);
    const { target } = option;
    if (!option.commands.includes(kind)) {
      throw usageError(
        `option '${written}' is only for ${
          option.commands.map((c) => c === "run" ? "a run" : `'coolock ${c}'`)
            .join(", ")
        }`,
      );
    }
    let raw = "true";
    if (option.takesValue) {
      if (attached === undefined) {
        const next = argv[i + 1];
        if (next === undefined || next === "--" || looksLikeOption(next)) {
          throw usageError(
            `option '${written}' needs a value${
              next === undefined
                ? ""
                : ` (for a value that starts with '-', write ${written}=VALUE)`
            }`,
          );
        }
        raw = next;
        i++;
      } else raw = attached;
    } else if (attached !== undefined) {
      throw usageError(`option '${written}' takes no value`);
    }
    const previous = given.get(target.name);
    if (previous !== undefined) {
      throw usageError(
        previous === written
          ? `option '${written}' is given twice`
          : `options '${previous}' and '${written}' both set '${target.name}'`,
      );
    }
    given.set(target.name, written);
    if (target.kind === "key") flags.set(target.name, { raw, flag: written });
    else if (target.name === "config") config = { raw, flag: written };
    else switches.add(target.name);
  }
  if (kind !== "run" && command.length > 0) {
    throw usageError(
      `'coolock ${kind}' takes no command or arguments (to run a command named '${kind}', write 'coolock -- ${kind} ...')`,
    );
  }
  return { kind, flags, config, switches, command };
}

const EXAMPLES = `Examples:
  coolock --backend redis://db:6379 --lock nightly-backup -- /usr/local/bin/backup.sh
  coolock -b etcd://10.0.0.5:2379 -l report -w 60 -- ./report --full
  coolock --limit 3 -l reindex --shell './reindex --shard "$COOLOCK_SLOT"'
  coolock --shell -l mail-run 'mail-run.sh | logger -t mail'
  coolock --print-config
  coolock status -b redis://db:6379 --lock nightly-backup
  coolock release -b redis://db:6379 --lock nightly-backup --force
  coolock check -b redis://db:6379 --json
  coolock -- status          # runs a command named 'status'`;

const NOTES =
  `Settings come from flags, then COOLOCK_<KEY> environment variables, then
the --config file, then ~/.coolock, $HOME/coolock and /etc/coolock (YAML
'key: value', or the Python coolock's 'key = value' lines; keys are the long
flags), then the defaults. Without --backend, coolock uses the embedded file
backend, which coordinates this host only. Durations are seconds, with a
fraction or a unit (1.5, 500ms, 5m, 2h, 1d), at most 366 days.

Exit codes: the command's own (128+N when it died by signal N); the conflict
code (default 0) when the lock was not acquired; 64 usage error; 69 backend
unavailable; 70 internal error; 75 lock lost; 77 a Deno permission missing,
or no watchdog can start; 78 bad config or an untrusted lock directory; 126
command not executable; 127 command not found. status: 0 free, 1 held, 69
unavailable. release: 0 removed or free. check: 0 fine, 1 a check failed.`;

function wrap(text: string, width: number, indent: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines;
}

function row(left: string, help: string): string {
  const column = 30;
  const body = wrap(help, 80, column);
  const pad = " ".repeat(column);
  const head = left.length + 2 < column
    ? `  ${left.padEnd(column - 2)}${body[0] ?? ""}`
    : `  ${left}\n${pad}${body[0] ?? ""}`;
  return [head, ...body.slice(1).map((line) => pad + line)].join("\n");
}

function flagsOf(
  name: string,
  aliases: readonly string[],
  short: string | undefined,
  arg: string | undefined,
): string {
  const names = [
    ...(short ? [`-${short}`] : []),
    ...[name, ...aliases].map((n) => `--${n}`),
  ];
  return `${names.join(", ")}${arg ? ` <${arg}>` : ""}`;
}

/** The text `--help` prints, generated from the key table. */
export function helpText(): string {
  const settings = KEY_NAMES.map((name) => {
    const spec = KEYS[name];
    const fallback = spec.shown ?? String(spec.fallback());
    return row(
      flagsOf(name, spec.aliases, spec.short, spec.arg),
      `${spec.help} (default: ${fallback})`,
    );
  });
  const switches = (Object.keys(SWITCHES) as Switch[]).map((name) => {
    const spec: {
      aliases: readonly string[];
      short?: string;
      arg?: string;
      help: string;
    } = SWITCHES[name];
    return row(flagsOf(name, spec.aliases, spec.short, spec.arg), spec.help);
  });
  return [
    "Usage:",
    "  coolock [options] [--] command [args...]",
    "  coolock status [--lock NAME | --all] [--json] [options]",
    "  coolock release --lock NAME --force [--json] [options]",
    "  coolock check [--json] [options]",
    "",
    "Run a command once across a fleet, under a lock on a coordination backend.",
    "The command runs without a shell, with its argv exactly as given. The",
    "subcommands are recognised only as the first argument: a command named",
    "status, release or check runs with 'coolock -- status'.",
    "",
    "Settings (flag, config key, COOLOCK_<KEY> variable):",
    ...settings,
    "",
    "Switches:",
    ...switches,
    "",
    EXAMPLES,
    "",
    NOTES,
    "",
  ].join("\n");
}
