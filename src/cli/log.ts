/**
 * The rotating log, in the original's line format:
 * `2026-12-01 08:31:08,123 - coolock (4242) - INFO - Lock 'x' acquired.`
 * Logging never fails or slows the job: a log file that can't be written
 * turns into stderr, with one warning.
 *
 * @module
 */

import { LOG_LEVELS } from "./config/keys.ts";

/** The names the original prints, by level number. */
const LEVEL_NAMES: Readonly<Record<number, string>> = {
  10: "DEBUG",
  20: "INFO",
  30: "WARNING",
  40: "ERROR",
  50: "CRITICAL",
};

/** The logger's settings. */
export interface LogSettings {
  /** The log file, or `undefined` for stderr only. */
  readonly file: string | undefined;
  /** `debug`, `info`, `warning` (`warn`), `error` or `critical` (`crit`). */
  readonly level: string;
  /** Rotate when the file would grow past this many bytes; 0 never rotates. */
  readonly maxSize: number;
  /** Rotated copies to keep (`file.1` … `file.N`); 0 never rotates. */
  readonly copies: number;
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

/**
 * One `write` of a whole line. `mode` applies only when the file is created:
 * `Deno.writeFileSync` would chmod an existing file, even `/dev/null`.
 */
function appendLine(file: string, bytes: Uint8Array): void {
  const handle = Deno.openSync(file, {
    append: true,
    create: true,
    mode: 0o640,
  });
  try {
    handle.writeSync(bytes);
  } finally {
    handle.close();
  }
}

/** A logger that writes whole lines, one `write` each, so processes can share a file. */
export class Logger {
  readonly #threshold: number;
  #file: string | undefined;
  readonly #encoder = new TextEncoder();

  constructor(private readonly settings: LogSettings) {
    this.#threshold = LOG_LEVELS[settings.level] ?? 20;
    this.#file = settings.file;
    if (this.#file !== undefined) this.#probe(this.#file);
  }

  /** Whether messages go to stderr (no file, or a file that failed). */
  get toStderr(): boolean {
    return this.#file === undefined;
  }

  debug(message: string): void {
    this.log(10, message);
  }
  info(message: string): void {
    this.log(20, message);
  }
  warning(message: string): void {
    this.log(30, message);
  }
  error(message: string): void {
    this.log(40, message);
  }
  critical(message: string): void {
    this.log(50, message);
  }

  /** Writes one line at a level number (10 debug … 50 critical). */
  log(level: number, message: string): void {
    if (level < this.#threshold) return;
    const line = `${asctime(new Date())} - coolock (${Deno.pid}) - ${
      LEVEL_NAMES[level]
    } - ${message.replaceAll("\n", " ")}\n`;
    const bytes = this.#encoder.encode(line);
    if (this.#file !== undefined) {
      try {
        this.#rotateIfNeeded(this.#file, bytes.length);
        appendLine(this.#file, bytes);
        return;
      } catch (error) {
        this.#fallBack(this.#file, error);
      }
    }
    try {
      Deno.stderr.writeSync(bytes);
    } catch { /* nowhere left to write */ }
  }

  #probe(file: string): void {
    try {
      appendLine(file, new Uint8Array());
    } catch (error) {
      this.#fallBack(file, error);
    }
  }

  #fallBack(file: string, error: unknown): void {
    this.#file = undefined;
    const why = error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : error instanceof Deno.errors.NotFound
      ? "its directory does not exist"
      : (error as Error).message;
    try {
      Deno.stderr.writeSync(
        this.#encoder.encode(
          `coolock: can't write log file '${file}' (${why}); logging to stderr\n`,
        ),
      );
    } catch { /* nowhere left to write */ }
  }

  /** As Python's RotatingFileHandler: file → file.1 → … → file.N. */
  #rotateIfNeeded(file: string, adding: number): void {
    const { maxSize, copies } = this.settings;
    if (maxSize <= 0 || copies <= 0) return;
    let size: number;
    try {
      size = Deno.statSync(file).size;
    } catch {
      return;
    }
    if (size === 0 || size + adding <= maxSize) return;
    for (let index = copies - 1; index >= 1; index--) {
      try {
        Deno.renameSync(`${file}.${index}`, `${file}.${index + 1}`);
      } catch { /* that copy does not exist yet */ }
    }
    try {
      Deno.renameSync(file, `${file}.1`);
    } catch { /* another process rotated it first */ }
  }
}
