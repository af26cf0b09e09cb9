#!/usr/bin/env -S deno run --allow-read --allow-write --allow-env --allow-run --allow-sys --allow-net
/**
 * The `coolock` command: `coolock [options] [--] command [args...]`.
 *
 * ```sh
 * coolock --backend redis://db:6379 --lock nightly-backup -- /usr/local/bin/backup.sh
 * ```
 *
 * @module
 */

import { Command, CommanderError } from "npm:commander@15.1.0";
import denoJson from "./deno.json" with { type: "json" };
import { file } from "./backends/file/mod.ts";
import { openBackend } from "./backends/mod.ts";
import type { Backend } from "./src/backend.ts";
import { KEYS } from "./src/cli/config/keys.ts";
import {
  describeOrigin,
  exitCodeFor,
  type FlagValues,
  InputError,
  loadSettings,
  type Settings,
} from "./src/cli/config/load.ts";
import { printSettings } from "./src/cli/config/print.ts";
import { EXIT } from "./src/cli/exit_codes.ts";
import { Logger } from "./src/cli/log.ts";
import { checkLockName } from "./src/names.ts";
import { fail, runLocked, safetyMargin } from "./src/cli/run.ts";

/** The version, from deno.json. */
export const VERSION: string = denoJson.version;

const EXAMPLES = `
Examples:
  coolock --backend redis://db:6379 --lock nightly-backup -- /usr/local/bin/backup.sh
  coolock -b etcd://10.0.0.5:2379 -l report -w 60 -- ./report --full
  coolock --shell -l mail-run 'mail-run.sh | logger -t mail'
  coolock --print-config

Settings come from flags, then COOLOCK_<KEY> environment variables, then the
--config file, then ~/.coolock, $HOME/coolock and /etc/coolock (YAML, keys as
the long flags), then defaults. Without --backend, coolock uses the embedded
file backend, which coordinates this host only.

Exit codes: the command's own code (128+N when it died by signal N); the
conflict code (default 0) when the lock was not acquired; 64 usage error;
69 backend unavailable; 70 internal error; 75 lock lost; 77 a Deno
permission missing; 78 bad config;
126 command not executable; 127 command not found.`;

interface Parsed {
  readonly flags: FlagValues;
  readonly command: string[];
  readonly shell: boolean;
  readonly printConfig: boolean;
  readonly exitWith?: number;
}

function parseArgs(argv: readonly string[]): Parsed {
  const program = new Command("coolock")
    .usage("[options] [--] command [args...]")
    .description(
      "Run a command once across a fleet, under a lock on a coordination backend.",
    )
    .argument(
      "[command...]",
      "the command and its arguments, run without a shell",
    )
    .passThroughOptions()
    .exitOverride()
    .configureOutput({
      writeErr: () => {},
      writeOut: (text) => Deno.stdout.writeSync(new TextEncoder().encode(text)),
    })
    .helpOption("-h, --help", "show this help")
    .version(VERSION, "-V, --version", "print the version")
    .addHelpText("after", EXAMPLES);
  for (const spec of KEYS) {
    const short = spec.short ? `-${spec.short}, ` : "";
    const fallback = typeof spec.fallback === "function"
      ? "hostname"
      : spec.fallback;
    program.option(
      `${short}--${spec.key} <${spec.arg}>`,
      fallback === undefined
        ? spec.help
        : `${spec.help} (default: ${fallback})`,
    );
    for (const alias of spec.aliases ?? []) {
      program.option(`--${alias} <${spec.arg}>`, `same as --${spec.key}`);
    }
  }
  program
    .option("-c, --config <path>", "read this YAML config file too")
    .option("--config-file <path>", "same as --config")
    .option(
      "--shell",
      "run the command, given as one string, through /bin/sh -c",
    )
    .option(
      "--print-config",
      "print the effective settings and where each came from, then exit",
    );
  try {
    program.parse(argv as string[], { from: "user" });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    if (
      error.code === "commander.helpDisplayed" ||
      error.code === "commander.version"
    ) {
      return {
        flags: { values: new Map() },
        command: [],
        shell: false,
        printConfig: false,
        exitWith: 0,
      };
    }
    throw new InputError(
      `${error.message.replace(/^error: /, "")} (see 'coolock --help')`,
      EXIT.usage,
    );
  }
  const options = program.opts<Record<string, string | boolean | undefined>>();
  const values = new Map<string, { raw: string; flag: string }>();
  for (const spec of KEYS) {
    for (const name of [spec.key, ...(spec.aliases ?? [])]) {
      const raw = options[camel(name)];
      if (typeof raw !== "string") continue;
      const previous = values.get(spec.key);
      if (previous && previous.flag !== `--${name}`) {
        throw new InputError(
          `Options '${previous.flag}' and '--${name}' both set '${spec.key}'`,
          EXIT.usage,
        );
      }
      values.set(spec.key, { raw, flag: `--${name}` });
    }
  }
  const config = (options.config ?? options.configFile) as string | undefined;
  const command = [...program.args];
  if (command[0] === "--") command.shift();
  return {
    flags: { values, config },
    command,
    shell: options.shell === true,
    printConfig: options.printConfig === true,
  };
}

function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

function commandLine(parsed: Parsed): string[] {
  if (parsed.command.length === 0) {
    throw new InputError(
      "No command given: usage is 'coolock [options] [--] command [args...]'",
      EXIT.usage,
    );
  }
  if (!parsed.shell) return parsed.command;
  if (parsed.command.length !== 1) {
    throw new InputError(
      `Option '--shell' takes the command as one quoted string, not ${parsed.command.length} arguments`,
      EXIT.usage,
    );
  }
  return ["/bin/sh", "-c", parsed.command[0]];
}

function backendOf(settings: Settings): Backend {
  const { value, origin } = settings.backend;
  if (value === undefined) return file();
  try {
    return openBackend(String(value));
  } catch (error) {
    throw new InputError(
      `${describeOrigin("backend", origin)}: ${(error as Error).message}`,
      exitCodeFor(origin),
    );
  }
}

function checkNames(settings: Settings): void {
  for (const key of ["lock", "node"]) {
    const { value, origin } = settings[key];
    try {
      if (key === "lock") checkLockName(value);
      else if (/\s/.test(String(value))) {
        throw new TypeError(`Node name '${value}' must not contain spaces`);
      }
    } catch (error) {
      throw new InputError(
        `${describeOrigin(key, origin)}: ${(error as Error).message}`,
        exitCodeFor(origin),
      );
    }
  }
}

function checkTimes(settings: Settings, backend: Backend): void {
  const ttl = Math.max(
    Number(settings.ttl.value),
    backend.capabilities.minTtlMs / 1000,
  );
  const killAfter = Number(settings["kill-after"].value);
  if (safetyMargin(ttl, killAfter) < (ttl * 2) / 3) return;
  const culprit = settings["kill-after"].origin.kind === "default"
    ? "ttl"
    : "kill-after";
  const room = Math.max(0, (ttl * 2) / 3 - safetyMargin(ttl, 0));
  throw new InputError(
    `${
      describeOrigin(culprit, settings[culprit].origin)
    }: a kill-after of ${killAfter} s leaves no time to renew a ${ttl} s TTL; keep kill-after below ${
      room.toFixed(2)
    } s or raise the TTL`,
    exitCodeFor(settings[culprit].origin),
  );
}

/** Runs the CLI with `argv` and resolves the exit code. */
export async function main(
  argv: readonly string[] = Deno.args,
): Promise<number> {
  let logger: Logger | undefined;
  try {
    const parsed = parseArgs(argv);
    if (parsed.exitWith !== undefined) return parsed.exitWith;
    const { settings, files } = await loadSettings(parsed.flags);
    if (parsed.printConfig) {
      const fallback = settings.backend.value === undefined
        ? file().displayUri
        : "";
      Deno.stdout.writeSync(
        new TextEncoder().encode(printSettings(settings, files, fallback)),
      );
      return 0;
    }
    const command = commandLine(parsed);
    checkNames(settings);
    await using backend = backendOf(settings);
    checkTimes(settings, backend);
    const logFile = String(settings["log-file"].value);
    logger = new Logger({
      file: logFile === "-" ? undefined : logFile,
      level: String(settings["log-level"].value),
      maxSize: Number(settings["log-max-size"].value),
      copies: Number(settings["rotate-log-copies"].value),
    });
    if (settings.backend.value === undefined) {
      logger.info(
        `No backend configured: using the embedded file backend in '${backend.displayUri}', which coordinates this host only`,
      );
    }
    logger.debug(
      `Using backend '${backend.displayUri}' as node '${settings.node.value}'`,
    );
    return await runLocked({
      backend,
      lock: String(settings.lock.value),
      node: String(settings.node.value),
      ttl: Number(settings.ttl.value),
      guardTime: Number(settings["guard-time"].value),
      waitTimeout: Number(settings["wait-timeout"].value),
      killAfter: Number(settings["kill-after"].value),
      conflictExitCode: Number(settings["conflict-exit-code"].value),
      command,
      logger,
    });
  } catch (error) {
    const sink = logger ??
      new Logger({ file: undefined, level: "info", maxSize: 0, copies: 0 });
    if (error instanceof InputError) {
      fail(sink, error.message);
      return error.exitCode;
    }
    if (error instanceof Deno.errors.NotCapable) {
      fail(sink, `A Deno permission is missing: ${error.message}`);
      return EXIT.noPermission;
    }
    if (error instanceof TypeError || error instanceof RangeError) {
      fail(sink, error.message);
      return EXIT.usage;
    }
    fail(sink, `Internal error: ${(error as Error)?.message ?? error}`);
    sink.debug(String((error as Error)?.stack));
    return EXIT.software;
  }
}

if (import.meta.main) Deno.exit(await main());
