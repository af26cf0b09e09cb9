/**
 * Processes for the benchmark: one run timed from spawn to exit, one run's
 * peak RSS (GNU time's `%M`, the largest resident set of the process tree
 * it waited for), and long-lived processes whose output is read line by
 * line (the handoff's holders and waiters).
 *
 * Every child gets the bench's environment minus `COOLOCK_*`, so that a
 * setting exported in the shell can't change what is measured.
 *
 * @module
 */

/** The bench's environment without coolock's own settings. */
export function cleanEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) =>
      !name.startsWith("COOLOCK_")
    ),
  );
}

/** Whether `name` is an executable on PATH (or an absolute path to one). */
export function onPath(name: string): string | undefined {
  const dirs = name.includes("/")
    ? [""]
    : (Deno.env.get("PATH") ?? "").split(":").filter(Boolean);
  for (const dir of dirs) {
    const path = dir ? `${dir}/${name}` : name;
    try {
      const info = Deno.statSync(path);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return path;
    } catch { /* not here */ }
  }
  return undefined;
}

const decoder = new TextDecoder();

/** Runs `argv` to its end; resolves the wall time in ms, or throws with its stderr. */
export async function timeRun(argv: readonly string[]): Promise<number> {
  const started = performance.now();
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: cleanEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const elapsed = performance.now() - started;
  if (!out.success) {
    throw new Error(
      `'${argv.join(" ")}' exited ${out.code}: ${
        decoder.decode(out.stderr).trim().split("\n").at(-1)
      }`,
    );
  }
  return elapsed;
}

/** GNU time, for peak RSS; undefined where it is not installed. */
export const GNU_TIME: string | undefined = onPath("/usr/bin/time");

/** Runs `argv` under GNU time; resolves its peak RSS in MB (MiB). */
export async function peakRss(
  argv: readonly string[],
  scratch: string,
): Promise<number> {
  if (!GNU_TIME) return NaN;
  const report = `${scratch}/rss-${crypto.randomUUID()}`;
  try {
    await timeRun([GNU_TIME, "-f", "%M", "-o", report, ...argv]);
    return Number((await Deno.readTextFile(report)).trim()) / 1024;
  } finally {
    await Deno.remove(report).catch(() => {});
  }
}

/** A stream's lines, read in the background, to wait for one that matches. */
export class Lines {
  readonly #seen: string[] = [];
  readonly #wakers = new Set<() => void>();
  #ended = false;
  /** Resolves when the stream has ended. */
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = this.#pump(stream);
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    let buffer = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let at: number;
        while ((at = buffer.indexOf("\n")) >= 0) {
          this.#seen.push(buffer.slice(0, at));
          buffer = buffer.slice(at + 1);
        }
        this.#wakeAll();
      }
    } catch { /* the process is gone */ }
    if (buffer) this.#seen.push(buffer);
    this.#ended = true;
    this.#wakeAll();
  }

  #wakeAll(): void {
    for (const wake of [...this.#wakers]) wake();
  }

  /** Every line so far. */
  get lines(): readonly string[] {
    return this.#seen;
  }

  /**
   * The first line (from the start) that matches `pattern`; rejects when the
   * stream ends without one, or when `signal` aborts.
   */
  async find(pattern: RegExp, signal: AbortSignal): Promise<RegExpExecArray> {
    for (;;) {
      for (const line of this.#seen) {
        const match = pattern.exec(line);
        if (match) return match;
      }
      if (this.#ended) {
        throw new Error(
          `no line matched ${pattern} (${
            this.#seen.slice(-3).join(" | ") || "no output"
          })`,
        );
      }
      signal.throwIfAborted();
      await new Promise<void>((resolve) => {
        const done = () => {
          this.#wakers.delete(done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        this.#wakers.add(done);
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }
}

/** A long-lived child whose output the bench reads. */
export class Proc implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly stdout: Lines;
  readonly stderr: Lines;
  readonly status: Promise<Deno.CommandStatus>;

  constructor(argv: readonly string[]) {
    this.#child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      env: cleanEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.stdout = new Lines(this.#child.stdout);
    this.stderr = new Lines(this.#child.stderr);
    this.status = this.#child.status;
  }

  /** Waits for the child's end, and kills it if that takes more than `ms`. */
  async end(ms = 10_000): Promise<Deno.CommandStatus> {
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }, ms);
    try {
      const status = await this.status;
      await Promise.all([this.stdout.done, this.stderr.done]);
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.end(0);
  }
}
