/**
 * The operator's subcommands, `coolock status`, `coolock release` and
 * `coolock check`: the CLI's words and exit codes around the library's
 * calls in src/operate.ts. Human output is aligned lines that a person
 * reads; `--json` is one document a script reads (tokens as strings, times
 * in ISO 8601, durations in milliseconds). Everything printed passes the
 * backend's display URI only, and one last scrub of its secrets; text that
 * came from the server (node and owner names, lock names) has its control
 * characters escaped, so a stored value can't drive the terminal.
 *
 * @module
 */

import type {
  Backend,
  CheckResult,
  HolderStatus,
  LockStatus,
  Removal,
} from "../backend.ts";
import { BackendUnavailableError } from "../errors.ts";
import { checkBackend, forceRelease, lockStatus } from "../operate.ts";
import { EXIT } from "./exit_codes.ts";
import { scrubber } from "./log.ts";

/** What `runCommand` needs, parsed and checked by cli.ts. */
export interface CommandOptions {
  readonly backend: Backend;
  /** The lock named by `--lock`, or the configured one. */
  readonly lock?: string;
  /** `status --all`: every coolock lock on the backend. */
  readonly all: boolean;
  /** Print one JSON document instead of lines. */
  readonly json: boolean;
  /** `release --force`. */
  readonly force: boolean;
  /** True when `lock` is only the default (no `--lock`, config or env). */
  readonly lockFromDefault: boolean;
  /** The configured guard time in seconds, which `check` weighs skew against. */
  readonly guardTime?: number;
  /** Strings never printed (from `secretsOf` in src/uri.ts). */
  readonly secrets?: readonly string[];
}

/** A failure that is one `coolock:` line on stderr and an exit code. */
class CommandError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/** Skew beyond which guard time may be cut short, whatever the guard time. */
const SKEW_WARN_MS = 1_000;

/**
 * Runs `status`, `release` or `check`, prints to stdout (errors: one line on
 * stderr) and resolves the exit code.
 */
export async function runCommand(
  kind: "status" | "release" | "check",
  options: CommandOptions,
): Promise<number> {
  const out = new Output(options.secrets ?? []);
  try {
    switch (kind) {
      case "status":
        return await status(options, out);
      case "release":
        return await release(options, out);
      case "check":
        return await check(options, out);
    }
  } catch (error) {
    const [message, code] = explain(error);
    out.error(message);
    return code;
  }
}

function explain(error: unknown): [string, number] {
  if (error instanceof CommandError) return [error.message, error.exitCode];
  if (error instanceof BackendUnavailableError) {
    return [error.message, EXIT.unavailable];
  }
  if (error instanceof Deno.errors.NotCapable) {
    return [
      `A Deno permission is missing: ${error.message}`,
      EXIT.noPermission,
    ];
  }
  if (error instanceof TypeError || error instanceof RangeError) {
    return [error.message, EXIT.usage];
  }
  return [
    `Internal error: ${(error as Error)?.message ?? error}`,
    EXIT.software,
  ];
}

/** stdout and stderr, scrubbed of secrets (in JSON, each string value). */
class Output {
  readonly #encoder = new TextEncoder();
  readonly #scrub: (text: string) => string;

  constructor(secrets: readonly string[]) {
    this.#scrub = scrubber(secrets);
  }

  lines(lines: readonly string[]): void {
    this.#write(
      Deno.stdout,
      this.#scrub(lines.map((line) => `${line}\n`).join("")),
    );
  }

  /** Tokens as strings; dates are ISO 8601 already. */
  json(document: unknown): void {
    const replacer = (_key: string, value: unknown) =>
      typeof value === "bigint"
        ? String(value)
        : typeof value === "string"
        ? this.#scrub(value)
        : value;
    this.#write(Deno.stdout, `${JSON.stringify(document, replacer, 2)}\n`);
  }

  error(message: string): void {
    this.#write(
      Deno.stderr,
      `coolock: ${this.#scrub(message).replaceAll("\n", " ")}\n`,
    );
  }

  #write(stream: typeof Deno.stdout, text: string): void {
    const bytes = this.#encoder.encode(text);
    try {
      for (let done = 0; done < bytes.length;) {
        done += stream.writeSync(bytes.subarray(done));
      }
    } catch { /* the reader went away */ }
  }
}

/** Text from the server, with control characters escaped. */
function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  const control = /[\u0000-\u001f\u007f-\u009f]/g;
  return text.replace(
    control,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A duration for people: `850 ms`, `28.1 s`, `4 min 05 s`, `2 h 10 min`, `3 d 4 h`. */
export function formatDuration(ms: number): string {
  const value = Math.max(0, ms);
  if (value < 1_000) return `${Math.round(value)} ms`;
  if (value < 60_000) return `${(value / 1000).toFixed(1)} s`;
  const seconds = Math.floor(value / 1000);
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ${
      String(seconds % 60).padStart(2, "0")
    } s`;
  }
  if (seconds < 86_400) {
    return `${Math.floor(seconds / 3600)} h ${
      String(Math.floor(seconds / 60) % 60).padStart(2, "0")
    } min`;
  }
  return `${Math.floor(seconds / 86_400)} d ${
    Math.floor(seconds / 3600) % 24
  } h`;
}

/** Left-aligned columns, two spaces apart. */
function table(rows: readonly (readonly string[])[], indent = ""): string[] {
  const widths = rows[0].map((_, column) =>
    Math.max(...rows.map((row) => row[column].length))
  );
  return rows.map((row) =>
    indent +
    row.map((cell, column) =>
      column === row.length - 1 ? cell : cell.padEnd(widths[column])
    ).join("  ").trimEnd()
  );
}

function isHeld(lock: LockStatus): boolean {
  return lock.holders.length > 0;
}

function holderJson(holder: HolderStatus): Record<string, unknown> {
  return {
    slot: holder.slot,
    state: holder.state,
    node: holder.node,
    owner: holder.owner,
    since: holder.since?.toISOString(),
    token: holder.token,
    leaseLeftMs: holder.leaseLeftMs,
    guardLeftMs: holder.guardLeftMs,
  };
}

function lockJson(lock: LockStatus): Record<string, unknown> {
  return {
    name: lock.name,
    state: isHeld(lock) ? "held" : "free",
    limit: lock.limit,
    waiting: lock.waiting,
    lastToken: lock.lastToken,
    holders: [...lock.holders].sort((a, b) => a.slot - b.slot).map(holderJson),
  };
}

function lockLines(lock: LockStatus): string[] {
  const facts = [
    lock.limit !== undefined && lock.limit > 1 ? `limit ${lock.limit}` : "",
    lock.waiting !== undefined ? `${lock.waiting} waiting` : "",
    lock.lastToken !== undefined ? `last token ${lock.lastToken}` : "",
  ].filter((fact) => fact !== "");
  const head = `Lock '${printable(lock.name)}': ${
    isHeld(lock) ? "held" : "free"
  }${facts.length ? ` (${facts.join(", ")})` : ""}`;
  if (!isHeld(lock)) return [head];
  const dash = (value: string | undefined) => value ?? "-";
  const rows = [
    [
      "SLOT",
      "STATE",
      "NODE",
      "OWNER",
      "SINCE",
      "TOKEN",
      "LEASE LEFT",
      "GUARD LEFT",
    ],
    ...[...lock.holders].sort((a, b) => a.slot - b.slot).map((holder) => [
      String(holder.slot),
      holder.state,
      dash(holder.node && printable(holder.node)),
      dash(holder.owner && printable(holder.owner)),
      dash(holder.since?.toISOString()),
      dash(holder.token?.toString()),
      dash(
        holder.leaseLeftMs === undefined
          ? undefined
          : formatDuration(holder.leaseLeftMs),
      ),
      dash(
        holder.guardLeftMs === undefined
          ? undefined
          : formatDuration(holder.guardLeftMs),
      ),
    ]),
  ];
  return [head, ...table(rows, "  ")];
}

async function status(options: CommandOptions, out: Output): Promise<number> {
  const { backend } = options;
  if (options.all && options.lock !== undefined && !options.lockFromDefault) {
    throw new CommandError(
      "Use 'status --lock NAME' or 'status --all', not both",
      EXIT.usage,
    );
  }
  if (options.all && !backend.capabilities.listsLocks) {
    throw new CommandError(
      `The ${backend.scheme} backend can't list its locks: name one with 'coolock status --lock NAME'`,
      EXIT.usage,
    );
  }
  const name = options.all ? undefined : options.lock ?? "coolock";
  const locks = [...await lockStatus(backend, name)].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0
  );
  if (name !== undefined && locks.length === 0) {
    locks.push({ name, holders: [] });
  }
  const held = locks.some(isHeld);
  if (options.json) {
    out.json({
      backend: backend.displayUri,
      held,
      locks: locks.map(lockJson),
    });
  } else if (locks.length === 0) {
    out.lines([`No coolock locks on ${backend.displayUri}`]);
  } else {
    out.lines([
      `Backend ${backend.displayUri}`,
      ...locks.flatMap(lockLines),
    ]);
  }
  return held ? 1 : 0;
}

async function release(options: CommandOptions, out: Output): Promise<number> {
  const { backend } = options;
  if (options.lock === undefined || options.lockFromDefault) {
    throw new CommandError(
      "Name the lock to free: 'coolock release --lock NAME --force'",
      EXIT.usage,
    );
  }
  const lock = options.lock;
  if (!options.force) {
    throw new CommandError(
      `'release' would free lock '${
        printable(lock)
      }' on ${backend.displayUri} whoever holds it, and a live holder would stop its job at its next renewal (exit 75): add --force to do it`,
      EXIT.usage,
    );
  }
  const removed: Removal[] = await forceRelease(backend, lock);
  if (options.json) {
    out.json({ backend: backend.displayUri, lock, removed });
  } else if (removed.length === 0) {
    out.lines([
      `Lock '${
        printable(lock)
      }' on ${backend.displayUri} was free: nothing removed`,
    ]);
  } else {
    out.lines([
      `Released lock '${printable(lock)}' on ${backend.displayUri}:`,
      ...table(
        removed.map((
          { what, detail },
        ) => ["removed", printable(what), printable(detail)]),
        "  ",
      ),
    ]);
  }
  return 0;
}

/**
 * The skew check, weighed against the guard time: skew makes the server
 * judge a guard's end early (or late), so more than a tenth of the guard
 * time, or more than a second, is a warning.
 */
function weighSkew(result: CheckResult, guardTime = 0): CheckResult {
  if (result.name !== "clock" || result.ms === undefined) return result;
  if (result.status !== "ok") return result;
  const skew = Math.abs(result.ms);
  const limit = guardTime > 0
    ? Math.min(SKEW_WARN_MS, guardTime * 100)
    : SKEW_WARN_MS;
  if (skew <= limit) return result;
  return {
    ...result,
    status: "warn",
    detail: `${result.detail}; a skew of ${
      formatDuration(skew)
    } can shorten guard time${
      guardTime > 0 ? ` (${guardTime} s configured)` : ""
    }: sync this host's clock (NTP)`,
  };
}

async function check(options: CommandOptions, out: Output): Promise<number> {
  const { backend } = options;
  const results = (await checkBackend(backend)).map((result) =>
    weighSkew(result, options.guardTime)
  );
  const failed = results.some((result) => result.status === "fail");
  const unreachable = results.some((result) =>
    result.name === "reachable" && result.status === "fail"
  );
  if (options.json) {
    out.json({ backend: backend.displayUri, ok: !failed, checks: results });
  } else {
    out.lines([
      `Backend ${backend.displayUri}`,
      ...table(results.map(({ status, name, detail }) => [
        status,
        printable(name),
        printable(detail),
      ])),
    ]);
  }
  return unreachable ? EXIT.unavailable : failed ? 1 : 0;
}
