/**
 * The rotating log. Text, the default, is the original's line format:
 * `2026-12-01 08:31:08,123 - coolock (4242) - INFO - Lock 'x' acquired.`
 * JSON (`--log-format json`) is one object per line for log aggregators.
 * Logging never fails or slows the job: a log file that can't be written
 * (or that `log_file.ts` refuses) turns into stderr, with one warning. Every
 * message passes through one last scrub of the backend's secrets.
 *
 * @module
 */

import { LOG_LEVELS } from "./config/keys.ts";
import { LogFile, LogFileRefused } from "./log_file.ts";

/** The names the original prints, by level number. */
const LEVEL_NAMES: Readonly<Record<number, string>> = {
  10: "DEBUG",
  20: "INFO",
  30: "WARNING",
  40: "ERROR",
  50: "CRITICAL",
};

/** What a log line is about, beyond its message; JSON lines carry them. */
export interface LogFields {
  /** A stable name for what happened, such as `acquired` or `lost`. */
  readonly event?: string;
  /** The fencing token of the lease. */
  readonly token?: bigint;
  /** The slot held. */
  readonly slot?: number;
  /** The command's exit code, or coolock's. */
  readonly exitCode?: number;
}

/** Who is logging: the node name and the lock, on every JSON line. */
export interface LogContext {
  readonly node?: string;
  readonly lock?: string;
}

/** The logger's settings. */
export interface LogSettings {
  /** The log file, or `undefined` (or `-`) for stderr only. */
  readonly file: string | undefined;
  /** `debug`, `info`, `warning` (`warn`), `error` or `critical` (`crit`). */
  readonly level: string;
  /** Rotate when the file would grow past this many bytes; 0 never rotates. */
  readonly maxSize: number;
  /** Rotated copies to keep (`file.1` … `file.N`); 0 never rotates. */
  readonly copies: number;
  /** `text` (the default, the original's format) or `json`. */
  readonly format?: "text" | "json";
  /** The node and lock of every line (JSON only; text messages name them). */
  readonly context?: LogContext;
  /**
   * Strings never written, replaced by `***` wherever they appear in a
   * message: the backend's password and tokens (`secretsOf` in src/uri.ts),
   * from 4 characters up.
   */
  readonly secrets?: readonly string[];
}

function pad(value: number, width = 2): string {
  return String(value).padStart(width, "0");
}

/** Python's `asctime`: local time, `YYYY-MM-DD HH:MM:SS,mmm`. */
function asctime(date: Date): string {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${
    pad(date.getDate())
  } ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${
      pad(date.getSeconds())
    },` +
    pad(date.getMilliseconds(), 3);
}

/** Where lines go, shared by a logger and the loggers made `with` it. */
class Sink {
  #file: LogFile | undefined;
  readonly #name: string | undefined;
  readonly #encoder = new TextEncoder();

  constructor(private readonly settings: LogSettings) {
    const file = settings.file === "-" ? undefined : settings.file;
    this.#name = file;
    if (file === undefined) return;
    try {
      this.#file = new LogFile(file);
      this.#file.append(new Uint8Array());
    } catch (error) {
      this.#fallBack(error);
    }
  }

  get toStderr(): boolean {
    return this.#file === undefined;
  }

  write(line: string): void {
    const bytes = this.#encoder.encode(line);
    if (this.#file !== undefined) {
      try {
        this.#rotateIfNeeded(this.#file, bytes.length);
        this.#file.append(bytes);
        return;
      } catch (error) {
        this.#fallBack(error);
      }
    }
    try {
      Deno.stderr.writeSync(bytes);
    } catch { /* nowhere left to write */ }
  }

  #fallBack(error: unknown): void {
    this.#file = undefined;
    const why = error instanceof LogFileRefused
      ? error.message
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : error instanceof Deno.errors.NotFound
      ? "its directory does not exist"
      : (error as Error).message;
    try {
      Deno.stderr.writeSync(
        this.#encoder.encode(
          `coolock: can't write log file '${this.#name}' (${why}); logging to stderr\n`,
        ),
      );
    } catch { /* nowhere left to write */ }
  }

  #rotateIfNeeded(file: LogFile, adding: number): void {
    const { maxSize, copies } = this.settings;
    if (maxSize <= 0 || copies <= 0) return;
    const size = file.size();
    if (size === 0 || size + adding <= maxSize) return;
    file.rotate(copies);
  }
}

/**
 * Secrets shorter than this are left to the masking of URIs: replacing every
 * `1` of a one-character token would make the log (and JSON) unreadable,
 * and such a secret protects nothing anyway.
 */
const MIN_SCRUBBED = 4;

/**
 * The last line of defence for text that never went through `redactUri`
 * (a server's error that echoes the password): a function that replaces
 * each secret, longest first so that one inside another goes whole, by
 * `***`. The logger and the subcommands' output both use it.
 */
export function scrubber(
  secrets: readonly string[] | undefined,
): (text: string) => string {
  const list = [...new Set(secrets ?? [])]
    .filter((secret) => secret.length >= MIN_SCRUBBED)
    .sort((a, b) => b.length - a.length);
  return (text) => {
    let clean = text;
    for (const secret of list) clean = clean.replaceAll(secret, "***");
    return clean;
  };
}

/** A logger that writes whole lines, one `write` each, so processes can share a file. */
export class Logger {
  readonly #threshold: number;
  readonly #sink: Sink;
  readonly #json: boolean;
  readonly #context: LogContext;
  readonly #secrets: readonly string[];
  readonly #scrub: (text: string) => string;

  /** `sink` is for {@linkcode Logger.with}: the place lines already go. */
  constructor(private readonly settings: LogSettings, sink?: Sink) {
    this.#threshold = LOG_LEVELS[settings.level] ?? 20;
    this.#json = settings.format === "json";
    this.#context = settings.context ?? {};
    this.#secrets = settings.secrets ?? [];
    this.#scrub = scrubber(this.#secrets);
    this.#sink = sink ?? new Sink(settings);
  }

  /** Whether messages go to stderr (no file, or a file that failed). */
  get toStderr(): boolean {
    return this.#sink.toStderr;
  }

  /**
   * A logger that writes to the same place with more context (the node and
   * lock of JSON lines) and more secrets to scrub.
   */
  with(context: LogContext, secrets: readonly string[] = []): Logger {
    return new Logger({
      ...this.settings,
      context: { ...this.#context, ...context },
      secrets: [...this.#secrets, ...secrets],
    }, this.#sink);
  }

  debug(message: string, fields?: LogFields): void {
    this.log(10, message, fields);
  }
  info(message: string, fields?: LogFields): void {
    this.log(20, message, fields);
  }
  warning(message: string, fields?: LogFields): void {
    this.log(30, message, fields);
  }
  error(message: string, fields?: LogFields): void {
    this.log(40, message, fields);
  }
  critical(message: string, fields?: LogFields): void {
    this.log(50, message, fields);
  }

  /** Writes one line at a level number (10 debug … 50 critical). */
  log(level: number, message: string, fields: LogFields = {}): void {
    if (level < this.#threshold) return;
    const text = this.scrub(message);
    const now = new Date();
    this.#sink.write(
      this.#json
        ? this.#jsonLine(now, level, text, fields)
        : `${asctime(now)} - coolock (${Deno.pid}) - ${LEVEL_NAMES[level]} - ${
          text.replaceAll("\n", " ")
        }\n`,
    );
  }

  /** `text` with every secret this logger knows replaced by `***`. */
  scrub(text: string): string {
    return this.#scrub(text);
  }

  #jsonLine(
    now: Date,
    level: number,
    message: string,
    fields: LogFields,
  ): string {
    const { node, lock } = this.#context;
    const record = {
      time: now.toISOString(),
      level: (LEVEL_NAMES[level] ?? String(level)).toLowerCase(),
      pid: Deno.pid,
      node,
      lock,
      event: fields.event,
      token: fields.token === undefined ? undefined : String(fields.token),
      slot: fields.slot,
      exitCode: fields.exitCode,
      message,
    };
    return JSON.stringify(record) + "\n";
  }
}
