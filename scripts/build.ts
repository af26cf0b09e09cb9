/**
 * Builds the standalone `coolock` binaries with `deno compile`, one per
 * target, each with a `.sha256` beside it, and smoke-tests the one built for
 * this host.
 *
 * ```sh
 * deno task build                                        # every target, into dist/
 * deno task build --target x86_64-unknown-linux-gnu --out /tmp/dist
 * ```
 *
 * Exit codes: 0 built; 1 `deno compile` or the smoke test failed; 64 usage
 * error; 69 Deno's runtime (denort) can't be had: no `DENORT_BIN`, not cached,
 * and its download is unreachable.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { basename, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import denoJson from "../deno.json" with { type: "json" };
import { FAMILY_MODULES } from "../backends/load.ts";

/** Deno's compile targets, as `deno compile --target` names them. */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
  "aarch64-pc-windows-msvc",
];

/** The permissions baked into every binary: scoped flags, never `-A`. */
export const PERMISSIONS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
  "--allow-net",
];

/** Exit codes of this script. */
export const BUILD_EXIT = { failed: 1, usage: 64, noRuntime: 69 } as const;

/** How long the denort download probe may take before the build gives up. */
const PROBE_TIMEOUT_MS = 5_000;
const CLI = new URL("../cli.ts", import.meta.url);

/**
 * The backend families, which cli.ts imports with specifiers that
 * `deno compile` can't see (backends/load.ts says why): each is passed to
 * `--include`, so every family and its npm client are in the binary.
 */
export function includedModules(): string[] {
  const modules = Object.values(FAMILY_MODULES).map(({ module }) =>
    fileURLToPath(
      new URL(module, new URL("../backends/load.ts", import.meta.url)),
    )
  );
  return [...new Set(modules)].sort();
}

/** A failure that ends the build with one line and an exit code. */
class BuildError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/**
 * The file name of the binary for `target`, as the release and install.sh
 * name it.
 *
 * @example
 * ```ts
 * import { assetName } from "./build.ts";
 * assetName("x86_64-pc-windows-msvc"); // "coolock-x86_64-pc-windows-msvc.exe"
 * ```
 */
export function assetName(target: string): string {
  return `coolock-${target}${target.includes("windows") ? ".exe" : ""}`;
}

/**
 * The `.sha256` file's text for a file named `name`, in the format that
 * `sha256sum -c` and `shasum -a 256 -c` accept.
 *
 * @example
 * ```ts
 * import { checksumLine } from "./build.ts";
 * const text = await checksumLine(new TextEncoder().encode("hi"), "hi.txt");
 * ```
 */
export async function checksumLine(
  bytes: Uint8Array<ArrayBuffer>,
  name: string,
): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0"));
  return `${hex.join("")}  ${name}\n`;
}

/**
 * Where `deno compile` downloads its runtime for `target`.
 *
 * @example
 * ```ts
 * import { denortUrl } from "./build.ts";
 * denortUrl("aarch64-apple-darwin", "2.9.6");
 * // "https://dl.deno.land/release/v2.9.6/denort-aarch64-apple-darwin.zip"
 * ```
 */
export function denortUrl(target: string, denoVersion: string): string {
  return `https://dl.deno.land/release/v${denoVersion}/denort-${target}.zip`;
}

/**
 * Reads `--target <triple>` (repeatable; default all) and `--out <dir>`
 * (default `dist`). Throws `BuildError` (64) for anything else.
 *
 * @example
 * ```ts
 * import { parseBuildArgs } from "./build.ts";
 * parseBuildArgs(["--target", "aarch64-apple-darwin"]);
 * // { targets: ["aarch64-apple-darwin"], out: "dist" }
 * ```
 */
export function parseBuildArgs(
  args: readonly string[],
): { targets: string[]; out: string } {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        target: { type: "string", multiple: true },
        out: { type: "string", default: "dist" },
      },
    }));
  } catch (error) {
    throw new BuildError((error as Error).message, BUILD_EXIT.usage);
  }
  const targets = values.target ?? [...TARGETS];
  const unknown = targets.find((target) => !TARGETS.includes(target));
  if (unknown !== undefined) {
    throw new BuildError(
      `Unknown target '${unknown}': use one of ${TARGETS.join(", ")}`,
      BUILD_EXIT.usage,
    );
  }
  return { targets: [...new Set(targets)], out: values.out ?? "dist" };
}

async function denoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

/** The innermost message of a fetch error, without the URL again. */
function reason(error: Error): string {
  const cause = error.cause instanceof Error ? error.cause : error;
  return cause.message.split("\n")[0]
    .replace(/^error sending request for url \([^)]*\): /, "");
}

/** Throws `BuildError` (69) unless `deno compile` can get denort for every target. */
async function checkRuntime(targets: readonly string[]): Promise<void> {
  if (Deno.env.get("DENORT_BIN")) {
    // DENORT_BIN is one binary, used whatever --target says.
    if (targets.length === 1) return;
    throw new BuildError(
      `DENORT_BIN is one runtime for one target: pass exactly one --target, not ${targets.length}`,
      BUILD_EXIT.usage,
    );
  }
  const version = Deno.version.deno;
  const cache = join(await denoDir(), "dl", "release", `v${version}`);
  for (const target of targets) {
    try {
      await Deno.stat(join(cache, `denort-${target}.zip`));
      continue;
    } catch { /* not cached: deno compile would download it */ }
    const url = denortUrl(target, version);
    let why: string | undefined;
    try {
      const response = await fetch(url, {
        method: "HEAD",
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      });
      if (response.status >= 400) why = `HTTP ${response.status}`;
    } catch (error) {
      why = (error as Error).name === "TimeoutError"
        ? `no answer in ${PROBE_TIMEOUT_MS / 1000} s`
        : reason(error as Error);
    }
    if (why === undefined) continue;
    throw new BuildError(
      `Can't download Deno's runtime from '${url}' (${why}): set DENORT_BIN to a local denort binary for '${target}' and pass --target ${target}, or build where dl.deno.land is reachable`,
      BUILD_EXIT.noRuntime,
    );
  }
}

async function compile(target: string, output: string): Promise<void> {
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      ...PERMISSIONS,
      ...includedModules().flatMap((module) => ["--include", module]),
      "--target",
      target,
      "--output",
      output,
      fileURLToPath(CLI),
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) {
    throw new BuildError(
      `'deno compile' for '${target}' failed with exit code ${code}`,
      BUILD_EXIT.failed,
    );
  }
}

async function run(
  argv: string[],
  env: Record<string, string>,
): Promise<
  { code: number; stdout: string; stderr: string; lines: string[] }
> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  // Only the first line, so that a failure stays one line.
  const text = (bytes: Uint8Array) => {
    const lines = new TextDecoder().decode(bytes).trim().split("\n");
    return lines.length > 1 ? `${lines[0]} …` : lines[0];
  };
  return {
    code: out.code,
    stdout: text(out.stdout),
    stderr: text(out.stderr),
    lines: new TextDecoder().decode(out.stdout).trim().split("\n"),
  };
}

/**
 * Runs the binary as a user would: `--version` prints deno.json's version
 * and, for a compiled binary, the target it was built for; a lock on a fresh
 * file backend runs a command. Throws `BuildError` (1).
 *
 * @example
 * ```ts ignore
 * import { smokeTest } from "./build.ts";
 * await smokeTest("dist/coolock-x86_64-unknown-linux-gnu");
 * ```
 */
export async function smokeTest(
  binary: string,
  target?: string,
): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "coolock-smoke-" });
  // A fresh HOME and no COOLOCK_* variables: no developer config leaks in.
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) =>
      !k.startsWith("COOLOCK_")
    ),
  );
  Object.assign(env, { HOME: home, USERPROFILE: home, NO_COLOR: "1" });
  const fail = (what: string, got: { code: number; stderr: string }) =>
    new BuildError(
      `Smoke test of '${binary}' failed: ${what} (exit code ${got.code}, stderr '${got.stderr}')`,
      BUILD_EXIT.failed,
    );
  try {
    const version = await run([binary, "--version"], env);
    const expected = `coolock ${denoJson.version}`;
    if (version.code !== 0 || version.lines[0] !== expected) {
      throw fail(
        `'--version' printed '${version.stdout}', not '${expected}'`,
        version,
      );
    }
    const built = `built for ${target} (standalone binary)`;
    if (target !== undefined && !version.lines.includes(built)) {
      throw fail(`'--version' does not say '${built}'`, version);
    }
    const marker = "coolock smoke test ran";
    const locked = await run([
      binary,
      ...["--backend", pathToFileURL(join(home, "locks")).href],
      ...["--lock", "smoke", "--guard-time", "0", "--log-file", "-"],
      // Windows has no watchdog: coolock runs there only when told to.
      ...(Deno.build.os === "windows" ? ["--unguarded"] : []),
      "--",
      ...[Deno.execPath(), "eval", `console.log(${JSON.stringify(marker)})`],
    ], env);
    if (locked.code !== 0 || locked.stdout !== marker) {
      throw fail(`the locked command printed '${locked.stdout}'`, locked);
    }
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/**
 * Runs the build with `args`; resolves the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./build.ts";
 * Deno.exit(await main(["--target", "aarch64-apple-darwin", "--out", "dist"]));
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  try {
    const { targets, out } = parseBuildArgs(args);
    await checkRuntime(targets);
    await Deno.mkdir(out, { recursive: true });
    for (const target of targets) {
      const output = join(out, assetName(target));
      await compile(target, output);
      const bytes = await Deno.readFile(output);
      await Deno.writeTextFile(
        `${output}.sha256`,
        await checksumLine(bytes, basename(output)),
      );
      if (target !== Deno.build.target) {
        console.log(
          `Built '${output}' (${denoJson.version}), not smoke-tested: not this host's target`,
        );
        continue;
      }
      try {
        await smokeTest(output, target);
      } catch (error) {
        // A binary that fails its smoke test must not be shipped by mistake.
        await Deno.remove(output);
        await Deno.remove(`${output}.sha256`);
        throw error;
      }
      console.log(`Built and smoke-tested '${output}' (${denoJson.version})`);
    }
    return 0;
  } catch (error) {
    if (!(error instanceof BuildError)) throw error;
    console.error(`coolock build: ${error.message}`);
    return error.exitCode;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
