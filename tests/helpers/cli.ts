/** Runs the real CLI as a child process, as a user would. */

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** The argv prefix that runs the CLI from source. */
export const CLI_COMMAND: readonly string[] = [
  Deno.execPath(),
  "run",
  "--allow-all",
  "--quiet",
  CLI,
];

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface CliOptions {
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  readonly stdin?: Uint8Array;
  /** Keep the caller's environment (default: a clean one with PATH and HOME). */
  readonly inheritEnv?: boolean;
}

/** A clean environment, so the developer's own COOLOCK_* settings never leak in. */
export function cleanEnv(
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("COOLOCK_TEST_HOME") ?? "/nonexistent-home",
    DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
    NO_COLOR: "1",
    ...extra,
  };
}

/** Starts the CLI; the caller reads or kills it. */
export function spawnCli(
  args: readonly string[],
  options: CliOptions = {},
): Deno.ChildProcess {
  return new Deno.Command(CLI_COMMAND[0], {
    args: [...CLI_COMMAND.slice(1), ...args],
    env: options.inheritEnv ? options.env : cleanEnv(options.env),
    clearEnv: !options.inheritEnv,
    cwd: options.cwd,
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs the CLI to completion. */
export async function runCli(
  args: readonly string[],
  options: CliOptions = {},
): Promise<CliResult> {
  const started = performance.now();
  const child = spawnCli(args, options);
  if (options.stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(options.stdin);
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    ms: performance.now() - started,
  };
}

/** Asserts that stderr is one line that names the problem, and no stack trace. */
export function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  if (
    lines.length !== 1 || !lines[0].startsWith("coolock: ") ||
    /\n\s+at /.test(stderr)
  ) {
    throw new Error(
      `Expected one 'coolock: …' line on stderr, got:\n${stderr}`,
    );
  }
  return lines[0];
}

/** Polls until `check` is true, or throws after `ms`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const HAS_PROC = (() => {
  try {
    return Deno.statSync("/proc/self/stat").isFile;
  } catch {
    return false;
  }
})();

/** Whether a process is still alive. */
export function alive(pid: number): boolean {
  // A killed process whose parent died is reaped by PID 1 whenever PID 1
  // gets to it; until then it is a zombie, dead but still signalable.
  if (!HAS_PROC) {
    try {
      Deno.kill(pid, "SIGCONT");
      return true;
    } catch {
      return false;
    }
  }
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return false;
  }
}
