/**
 * scripts/build.ts: it fails fast, with one line naming DENORT_BIN, where
 * Deno's runtime can't be downloaded; its smoke test tells a real coolock
 * from a wrong binary; and its pure parts (targets, names, checksums).
 */

import {
  assetName,
  BUILD_EXIT,
  checksumLine,
  includedModules,
  parseBuildArgs,
  smokeTest,
  TARGETS,
} from "../../scripts/build.ts";
import { FAMILY_MODULES, loadBackend } from "../../backends/load.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../helpers/assert.ts";
import { textOutput } from "../helpers/output.ts";
import denoJson from "../../deno.json" with { type: "json" };

const SCRIPT = new URL("../../scripts/build.ts", import.meta.url).pathname;
const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

/** Runs the build script with this environment and `extra`, less DENORT_BIN unless given. */
async function build(
  args: string[],
  extra: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const env = Deno.env.toObject();
  delete env.DENORT_BIN;
  const started = performance.now();
  const out = await textOutput(
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", SCRIPT, ...args],
      env: { ...env, NO_COLOR: "1", ...extra },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }),
  );
  return { ...out, ms: performance.now() - started };
}

function oneLineNamingDenortBin(stderr: string): void {
  const lines = stderr.trimEnd().split("\n");
  assertEquals(lines.length, 1, `one line on stderr, got:\n${stderr}`);
  assertMatch(lines[0], /^coolock build: Can't download Deno's runtime from /);
  assertMatch(lines[0], /set DENORT_BIN to a local denort binary/);
}

Deno.test("build: where denort can't be downloaded, fails fast with one line naming DENORT_BIN and exit 69", async () => {
  const out = await Deno.makeTempDir({ prefix: "coolock-build-" });
  // An empty DENO_DIR, so that a cached denort can't hide the download.
  const denoDir = await Deno.makeTempDir({ prefix: "coolock-build-deno-" });
  const result = await build(
    ["--target", Deno.build.target, "--out", out],
    { DENO_DIR: denoDir },
  );
  try {
    if (result.code === 0) {
      // Only where dl.deno.land is reachable: then the host binary was built
      // and passed its smoke test.
      const name = assetName(Deno.build.target);
      await Deno.stat(`${out}/${name}`);
      await Deno.stat(`${out}/${name}.sha256`);
      return;
    }
    assertEquals(result.code, BUILD_EXIT.noRuntime, result.stderr);
    oneLineNamingDenortBin(result.stderr);
    assert(!/\n\s+at |Stack backtrace/.test(result.stderr), "no stack trace");
    assert(result.ms < 10_000, `failed fast (${result.ms.toFixed(0)} ms)`);
    assertEquals([...Deno.readDirSync(out)], [], "nothing was written");
  } finally {
    for (const dir of [out, denoDir]) {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("build: a download that hangs is given up after the probe's timeout, not waited for", async () => {
  // A proxy that accepts and never answers: fetch's CONNECT hangs.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  const proxy = `http://127.0.0.1:${listener.addr.port}`;
  const denoDir = await Deno.makeTempDir({ prefix: "coolock-build-deno-" });
  try {
    const result = await build(
      ["--target", "aarch64-apple-darwin", "--out", denoDir],
      { DENO_DIR: denoDir, HTTPS_PROXY: proxy, https_proxy: proxy },
    );
    assertEquals(result.code, BUILD_EXIT.noRuntime, result.stderr);
    oneLineNamingDenortBin(result.stderr);
    assertMatch(result.stderr, /\(no answer in 5 s\)/);
    assert(result.ms < 15_000, `gave up in time (${result.ms.toFixed(0)} ms)`);
    assert(held.length > 0, "the probe went through the proxy");
  } finally {
    listener.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
    await Deno.remove(denoDir, { recursive: true });
  }
});

Deno.test("build: usage errors are one line and exit 64", async () => {
  const unknown = await build(["--target", "sparc-sun-solaris"]);
  assertEquals(unknown.code, BUILD_EXIT.usage);
  assertEquals(
    unknown.stderr.trimEnd(),
    `coolock build: Unknown target 'sparc-sun-solaris': use one of ${
      TARGETS.join(", ")
    }`,
  );
  const several = await build([], { DENORT_BIN: Deno.execPath() });
  assertEquals(several.code, BUILD_EXIT.usage);
  assertMatch(several.stderr, /DENORT_BIN is one runtime for one target/);
});

Deno.test("build: a binary that is not coolock fails the smoke test, and is removed", async () => {
  // deno itself as the "runtime": deno compile accepts it, but the result
  // runs deno's own CLI, not the embedded coolock.
  const out = await Deno.makeTempDir({ prefix: "coolock-build-" });
  const result = await build(
    ["--target", Deno.build.target, "--out", out],
    { DENORT_BIN: Deno.execPath() },
  );
  assertEquals(result.code, BUILD_EXIT.failed, result.stderr);
  const last = result.stderr.trimEnd().split("\n").at(-1)!;
  assertMatch(
    last,
    /^coolock build: Smoke test of '.*' failed: '--version' printed 'deno \d/,
  );
  assertEquals([...Deno.readDirSync(out)], [], "the failed binary is gone");
  await Deno.remove(out, { recursive: true });
});

Deno.test("build: the smoke test passes a real coolock: --version and a file-backend lock", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coolock-smoke-bin-" });
  const denoDir = Deno.env.get("DENO_DIR") ??
    `${Deno.env.get("HOME")}/.cache/deno`;
  const binary = `${dir}/coolock`;
  // The CLI from source behind a wrapper: what the compiled binary runs.
  await Deno.writeTextFile(
    binary,
    `#!/bin/sh\nDENO_DIR='${denoDir}' exec '${Deno.execPath()}' run --quiet --allow-read --allow-write --allow-env --allow-run --allow-sys --allow-net '${CLI}' "$@"\n`,
    { mode: 0o755 },
  );
  await smokeTest(binary);
  // And it does check the command's output: a binary that runs nothing fails.
  await Deno.writeTextFile(
    binary,
    `#!/bin/sh\n[ "$1" = --version ] && echo coolock ${denoJson.version}\nexit 0\n`,
  );
  const error = await assertRejects(() => smokeTest(binary));
  assertMatch(error.message, /the locked command printed ''/);
  // A compiled binary must say what it was built for.
  const built = await assertRejects(() =>
    smokeTest(binary, "x86_64-unknown-linux-gnu")
  );
  assertMatch(
    built.message,
    /'--version' does not say 'built for x86_64-unknown-linux-gnu \(standalone binary\)'/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("build: the targets are exactly deno compile's", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["compile", "--target", "no-such-target", CLI],
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  const possible = /possible values: ([^\n]+)/.exec(decoder.decode(out.stderr));
  assert(possible, "deno compile lists its targets");
  assertEquals(
    [...TARGETS].sort(),
    possible[1].split(", ").map((t) => t.trim()).sort(),
  );
});

Deno.test("build: output names: one per target, .exe on Windows only", () => {
  const names = TARGETS.map(assetName);
  assertEquals(new Set(names).size, TARGETS.length);
  assertEquals(
    assetName("x86_64-unknown-linux-gnu"),
    "coolock-x86_64-unknown-linux-gnu",
  );
  assertEquals(
    assetName("aarch64-pc-windows-msvc"),
    "coolock-aarch64-pc-windows-msvc.exe",
  );
  for (const name of names) {
    assertEquals(name.endsWith(".exe"), name.includes("windows"), name);
  }
});

Deno.test("build: arguments: all targets by default, --target repeats, --out", () => {
  assertEquals(parseBuildArgs([]), { targets: [...TARGETS], out: "dist" });
  assertEquals(
    parseBuildArgs([
      "--target",
      "aarch64-apple-darwin",
      "--target",
      "x86_64-apple-darwin",
      "--out",
      "/tmp/x",
    ]),
    { targets: ["aarch64-apple-darwin", "x86_64-apple-darwin"], out: "/tmp/x" },
  );
  assertThrows(() => parseBuildArgs(["--out"]));
  assertThrows(() => parseBuildArgs(["extra"]));
});

Deno.test("build: the .sha256 file is what sha256sum -c accepts, and it refuses a changed file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coolock-sum-" });
  const bytes = new TextEncoder().encode("hello\n");
  const line = await checksumLine(bytes, "coolock-test");
  assertEquals(
    line,
    "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  coolock-test\n",
  );
  await Deno.writeFile(`${dir}/coolock-test`, bytes);
  await Deno.writeTextFile(`${dir}/coolock-test.sha256`, line);
  const check = () =>
    new Deno.Command("sha256sum", {
      args: ["-c", "coolock-test.sha256"],
      cwd: dir,
      stdout: "piped",
      stderr: "null",
    }).output();
  const good = await check();
  assertEquals(good.code, 0);
  assertEquals(decoder.decode(good.stdout), "coolock-test: OK\n");
  await Deno.writeTextFile(`${dir}/coolock-test`, "tampered\n");
  assert((await check()).code !== 0, "a changed file fails the check");
  await Deno.remove(dir, { recursive: true });
});

/** The modules of `deno info --json` for `entry`, with their dependencies. */
async function graphOf(entry: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(decoder.decode(out.stdout)) as {
    modules: {
      specifier: string;
      dependencies?: { specifier: string; code?: { specifier: string } }[];
    }[];
  };
}

async function* sources(dir: URL): AsyncGenerator<[string, string]> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* sources(url);
    else if (entry.name.endsWith(".ts")) {
      yield [url.pathname, await Deno.readTextFile(url)];
    }
  }
}

Deno.test("build: every npm package coolock loads is in deno.lock, which deno compile embeds whole", async () => {
  // The clients are imported by specifiers Deno can't see ahead (src/npm.ts
  // says why); deno compile embeds deno.lock's whole npm snapshot, since
  // scripts/build.ts never passes --exclude-unused-npm.
  const lock = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.lock", import.meta.url)),
  );
  const locked = new Set(Object.keys(lock.specifiers ?? {}));
  let packages = 0;
  for (const dir of ["../../backends/", "../../src/"]) {
    for await (
      const [path, source] of sources(new URL(dir, import.meta.url))
    ) {
      for (const [, specifier] of source.matchAll(/= "(npm:[^"]+)"/g)) {
        packages++;
        const name = specifier.replace(/\/promise$/, "");
        assert(locked.has(name), `'${specifier}' of '${path}' is in deno.lock`);
      }
      assert(
        !/(?<!typeof )import\(\s*"npm:/.test(source),
        `'${path}' imports npm by a literal specifier, which Deno resolves at start-up`,
      );
    }
  }
  assert(packages >= 8, `found the npm packages coolock loads (${packages})`);
  const build = await Deno.readTextFile(
    new URL("../../scripts/build.ts", import.meta.url),
  );
  assert(
    !build.includes('"--exclude-unused-npm"'),
    "the whole snapshot is embedded",
  );
});

Deno.test("build: cli.ts's start-up graph holds no backend client and no node: module", async () => {
  // Deno resolves every literal import() of the graph at start-up, npm
  // packages included: that is what backends/load.ts avoids.
  const found = new Set<string>();
  for (const module of (await graphOf(CLI)).modules) {
    for (const dependency of module.dependencies ?? []) {
      const target = dependency.code?.specifier ?? "";
      if (/^(npm|node):/.test(target)) {
        found.add(target.replace(/@[^@/]+$/, ""));
      }
    }
  }
  assertEquals([...found], [], "nothing npm or node: at start-up");
});

Deno.test("build: backends/load.ts opens the same backend as backends/mod.ts for every scheme, and --include has each family", async () => {
  const { openBackend, SCHEMES } = await import("../../backends/mod.ts");
  assertEquals(Object.keys(FAMILY_MODULES).sort(), [...SCHEMES].sort());
  const samples: Record<string, string> = { file: "file:///tmp/coolock-same" };
  for (const scheme of SCHEMES) {
    const uri = samples[scheme] ?? `${scheme}://127.0.0.1:1/`;
    let eager: unknown;
    let lazy: unknown;
    try {
      eager = Object.getPrototypeOf(openBackend(uri));
    } catch (error) {
      eager = (error as Error).message;
    }
    try {
      lazy = Object.getPrototypeOf(await loadBackend(uri));
    } catch (error) {
      lazy = (error as Error).message;
    }
    assert(eager === lazy, `${scheme}: the same backend class or error`);
  }
  for (const uri of ["gopher://x", "no scheme", "db:6379"]) {
    let eager = "";
    let lazy = "";
    try {
      openBackend(uri);
    } catch (error) {
      eager = (error as Error).message;
    }
    try {
      await loadBackend(uri);
    } catch (error) {
      lazy = (error as Error).message;
    }
    assertEquals(lazy, eager, uri);
  }
  const modules = includedModules();
  for (const { module } of Object.values(FAMILY_MODULES)) {
    const path = new URL(module, new URL("../../backends/", import.meta.url))
      .pathname;
    assert(modules.includes(path), `--include ${path}`);
  }
});
