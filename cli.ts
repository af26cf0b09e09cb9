#!/usr/bin/env -S deno run --allow-read --allow-write --allow-env --allow-run --allow-sys --allow-net
/**
 * The `coolock` command: `coolock [options] [--] command [args...]`, and the
 * operator's `coolock status`, `coolock release --force` and `coolock check`.
 *
 * ```sh
 * coolock --backend redis://db:6379 --lock nightly-backup -- /usr/local/bin/backup.sh
 * ```
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import { file } from "./backends/file/mod.ts";
import { loadBackend } from "./backends/load.ts";
import type { Backend } from "./src/backend.ts";
import { UntrustedPathError } from "./src/errors.ts";
import { helpText, parseArgs, type ParsedArgs } from "./src/cli/args.ts";
import { type Key, ROOT_LOG_FILE } from "./src/cli/config/keys.ts";
import {
  describeOrigin,
  exitCodeFor,
  loadSettings,
  type Settings,
} from "./src/cli/config/load.ts";
import { printSettings } from "./src/cli/config/print.ts";
import { EXIT, ExitError } from "./src/cli/exit_codes.ts";
import { LimitMismatchError } from "./src/errors.ts";
import { withTimeout } from "./src/timing.ts";
import { Logger } from "./src/cli/log.ts";
import { fail, runLocked } from "./src/cli/run.ts";
import { checkOptions, type LockOptions, problemOf } from "./src/options.ts";
import { secretsOf } from "./src/uri.ts";

/** The version, from deno.json. */
export const VERSION: string = denoJson.version;

const encoder = new TextEncoder();

function write(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}

/** `--version`: coolock's, Deno's, and a compiled binary's build target. */
function versionText(): string {
  const { deno, v8, typescript } = Deno.version;
  const lines = [
    `coolock ${VERSION}`,
    `deno ${deno} (v8 ${v8}, typescript ${typescript})`,
  ];
  if (Deno.build.standalone) {
    lines.push(`built for ${Deno.build.target} (standalone binary)`);
  }
  return lines.join("\n") + "\n";
}

function commandLine(args: ParsedArgs): string[] {
  if (args.command.length === 0) {
    throw new ExitError(
      "No command given: usage is 'coolock [options] [--] command [args...]'",
      EXIT.usage,
    );
  }
  if (!args.switches.has("shell")) return [...args.command];
  if (args.command.length !== 1) {
    throw new ExitError(
      `Option '--shell' takes the command as one quoted string, not ${args.command.length} arguments`,
      EXIT.usage,
    );
  }
  return ["/bin/sh", "-c", args.command[0]];
}

/**
 * The configured backend, opened (nothing connects until it is used). Only
 * its own family is loaded: see backends/load.ts.
 */
async function backendOf(settings: Settings): Promise<Backend> {
  const { value, origin } = settings.backend;
  try {
    return value === undefined ? file() : await loadBackend(value);
  } catch (error) {
    if (!(error instanceof TypeError || error instanceof RangeError)) {
      throw error;
    }
    throw new ExitError(
      `${describeOrigin("backend", origin)}: ${error.message}`,
      exitCodeFor(origin),
    );
  }
}

/** The library options each setting feeds, to map its errors back. */
const OPTION_KEYS: Partial<Record<keyof LockOptions, Key>> = {
  lock: "lock",
  node: "node",
  ttl: "ttl",
  guardTime: "guard-time",
  waitTimeout: "wait-timeout",
  killAfter: "kill-after",
  limit: "limit",
};

/**
 * Checks the settings with the library's own rules, which also judge them
 * against the backend (its shortest and longest TTL): the run would fail
 * the same way, but only after connecting. A problem is reported against
 * the flag, variable or file that set the value.
 */
function checkSettings(settings: Settings, backend: Backend): void {
  try {
    checkOptions({
      backend,
      lock: settings.lock.value,
      node: settings.node.value,
      ttl: settings.ttl.value,
      guardTime: settings["guard-time"].value,
      waitTimeout: settings["wait-timeout"].value,
      killAfter: settings["kill-after"].value,
      limit: settings.limit.value,
    });
  } catch (error) {
    const found = problemOf(error);
    const keys = (found?.options ?? []).flatMap((option) =>
      OPTION_KEYS[option] ?? []
    );
    if (!found || keys.length === 0) throw error;
    const key = keys.find((key) => settings[key].origin.kind !== "default") ??
      keys[0];
    const { origin } = settings[key];
    const subject = describeOrigin(key, origin);
    throw new ExitError(
      found.options.length === 1
        ? `${subject} ${found.problem}`
        : `${subject}: ${found.problem}`,
      exitCodeFor(origin),
    );
  }
}

/** Warnings go to stderr once, before anything else can fail. */
function warn(warnings: readonly string[]): void {
  for (const warning of warnings) {
    try {
      Deno.stderr.writeSync(encoder.encode(`coolock: warning: ${warning}\n`));
    } catch { /* stderr is closed */ }
  }
}

function makeLogger(settings: Settings, secrets: readonly string[]): Logger {
  const { value: path, origin } = settings["log-file"];
  if (origin.kind === "default" && path !== ROOT_LOG_FILE && path !== "-") {
    // The per-user default lives in the user's state directory, which may
    // not exist yet; created private, as the file backend's is.
    try {
      Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), {
        recursive: true,
        mode: 0o700,
      });
    } catch { /* the logger falls back to stderr and says why */ }
  }
  return new Logger({
    file: path === "-" ? undefined : path,
    level: settings["log-level"].value,
    format: settings["log-format"].value,
    maxSize: settings["log-max-size"].value,
    copies: settings["rotate-log-copies"].value,
    context: { node: settings.node.value, lock: settings.lock.value },
    secrets,
  });
}

async function subcommand(
  args: ParsedArgs,
  settings: Settings,
  backend: Backend,
  secrets: readonly string[],
): Promise<number> {
  const kind = args.kind as "status" | "release" | "check";
  const all = args.switches.has("all");
  const force = args.switches.has("force");
  const lockGiven = settings.lock.origin.kind !== "default";
  // --all with a lock from a config file is fine: only --lock and --all
  // given together contradict each other.
  if (all && args.flags.has("lock")) {
    throw new ExitError(
      "Options '--lock' and '--all' can't be used together",
      EXIT.usage,
    );
  }
  const { runCommand } = await import("./src/cli/commands.ts");
  return await runCommand(kind, {
    backend,
    lock: all ? undefined : settings.lock.value,
    all,
    json: args.switches.has("json"),
    force,
    lockFromDefault: !lockGiven,
    guardTime: settings["guard-time"].value,
    secrets,
  });
}

/** How long closing the backend may hold the exit, in ms. */
const CLOSE_BOUND_MS = 2_000;

/** Runs the CLI with `argv` and resolves the exit code. */
export async function main(
  argv: readonly string[] = Deno.args,
): Promise<number> {
  let logger: Logger | undefined;
  let limitOrigin: Settings["limit"]["origin"] | undefined;
  try {
    const args = parseArgs(argv);
    if (args.switches.has("help")) {
      write(helpText());
      return 0;
    }
    if (args.switches.has("version")) {
      write(versionText());
      return 0;
    }
    const { settings, files, warnings } = await loadSettings({
      values: args.flags,
      config: args.config,
    });
    warn(warnings);
    limitOrigin = settings.limit.origin;
    const secrets = settings.backend.value === undefined
      ? []
      : secretsOf(settings.backend.value);
    const backend = await backendOf(settings);
    // Closed with a bound: after a signal or a lost server, a close that
    // waits on a hung connection must not hold the exit.
    await using _closing = {
      [Symbol.asyncDispose]: () =>
        withTimeout(backend.close(), CLOSE_BOUND_MS).catch(() => {}),
    };
    checkSettings(settings, backend);
    if (args.switches.has("print-config")) {
      write(printSettings(settings, files, backend.displayUri));
      return 0;
    }
    if (args.kind !== "run") {
      return await subcommand(args, settings, backend, secrets);
    }
    const command = commandLine(args);
    logger = makeLogger(settings, secrets);
    if (!logger.toStderr) {
      for (const warning of warnings) logger.warning(warning);
    }
    if (settings.backend.value === undefined) {
      logger.info(
        `No backend configured: using the embedded file backend in '${backend.displayUri}', which coordinates this host only`,
      );
    }
    logger.debug(
      `Using backend '${backend.displayUri}' as node '${settings.node.value}'`,
    );
    const logPath = settings["log-file"].value;
    const plan = {
      backend,
      lock: settings.lock.value,
      node: settings.node.value,
      ttl: settings.ttl.value,
      guardTime: settings["guard-time"].value,
      waitTimeout: settings["wait-timeout"].value,
      killAfter: settings["kill-after"].value,
      limit: settings.limit.value,
      unguarded: settings.unguarded.value,
      conflictExitCode: settings["conflict-exit-code"].value,
      command,
      logger,
      // The log file and its rotated copies: a missing grant is exit 77
      // before the lock, not a silent fall back to stderr.
      permissions: logPath === "-" ? [] : [
        { name: "read", path: logPath } as const,
        { name: "write", path: logPath } as const,
      ],
    };
    return await runLocked(plan);
  } catch (error) {
    const sink = logger ??
      new Logger({ file: undefined, level: "info", maxSize: 0, copies: 0 });
    if (error instanceof ExitError) {
      fail(sink, error.message);
      return error.exitCode;
    }
    if (error instanceof LimitMismatchError && limitOrigin) {
      // Bad input that only the backend could see: every node must use the
      // same limit for a lock name.
      fail(sink, `${describeOrigin("limit", limitOrigin)}: ${error.message}`);
      return exitCodeFor(limitOrigin);
    }
    if (error instanceof Deno.errors.NotCapable) {
      fail(sink, `A Deno permission is missing: ${error.message}`);
      return EXIT.noPermission;
    }
    // A lock directory another user could change: this host's setup.
    if (error instanceof UntrustedPathError) {
      fail(sink, error.message);
      return EXIT.config;
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
