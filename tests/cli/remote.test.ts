/**
 * coolock run from a URL, as `deno run https://…/cli.ts` and as an import of
 * `…/mod.ts`: the repo served on 127.0.0.1, a DENO_DIR of the test's own so
 * the remote modules really are fetched, no config file (an empty HOME), and
 * the npm registry unreachable (a proxy on a closed port), with only the
 * npm packages copied in that the run may need.
 */

import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { textOutput } from "../helpers/output.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const decoder = new TextDecoder();
const TYPES: Record<string, string> = {
  ts: "application/typescript",
  json: "application/json",
};

/** The repo's files over HTTP on a free loopback port; records each path. */
function serveRepo() {
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = decodeURIComponent(new URL(request.url).pathname);
      requests.push(path);
      if (path.split("/").includes("..")) {
        return new Response("Forbidden", { status: 403 });
      }
      try {
        const body = await Deno.readFile(`${ROOT}${path.slice(1)}`);
        const type = TYPES[path.split(".").pop()!] ?? "text/plain";
        return new Response(body, { headers: { "content-type": type } });
      } catch {
        return new Response("Not found", { status: 404 });
      }
    },
  );
  const host = `127.0.0.1:${server.addr.port}`;
  return {
    host,
    url: `http://${host}`,
    requests,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

async function npmCache(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
  }).output();
  return JSON.parse(decoder.decode(out.stdout)).npmCache;
}

/** A fresh DENO_DIR holding only these npm packages, from this one's cache. */
async function denoDirWith(packages: readonly string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "coolock-url-deno-" });
  const registry = `${dir}/npm/registry.npmjs.org`;
  await Deno.mkdir(registry, { recursive: true });
  // On a fresh machine, fill this Deno's own cache first (a no-op when warm).
  await new Deno.Command(Deno.execPath(), {
    args: ["cache", "--quiet", `${ROOT}cli.ts`],
    stdout: "null",
    stderr: "null",
  }).output();
  const source = `${await npmCache()}/registry.npmjs.org`;
  for (const name of packages) {
    const { code } = await new Deno.Command("cp", {
      args: ["-R", `${source}/${name}`, `${registry}/${name}`],
    }).output();
    assertEquals(code, 0, `copied npm package '${name}'`);
  }
  return dir;
}

function npmPackagesIn(denoDir: string): string[] {
  return [...Deno.readDirSync(`${denoDir}/npm/registry.npmjs.org`)]
    .map((entry) => entry.name).sort();
}

/** A loopback port that nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Runs deno with a clean environment: empty HOME, own DENO_DIR, no npm registry. */
async function deno(
  args: string[],
  options: { home: string; denoDir: string; cwd?: string },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const proxy = `http://127.0.0.1:${closedPort()}`;
  return await textOutput(
    new Deno.Command(Deno.execPath(), {
      args,
      cwd: options.cwd ?? options.home,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: options.home,
        DENO_DIR: options.denoDir,
        NO_COLOR: "1",
        // HTTPS only: the repo's own modules come over plain HTTP, directly.
        HTTPS_PROXY: proxy,
        https_proxy: proxy,
        NO_PROXY: "127.0.0.1",
      },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }),
  );
}

/** The scoped permissions the README documents for the file backend. */
function cliPermissions(home: string, locks: string, log: string): string[] {
  return [
    `--allow-read=/etc/coolock,${home}/.coolock,${home}/coolock,${locks},${log},/proc`,
    `--allow-write=${locks},${log}`,
    "--allow-env=HOME,XDG_STATE_HOME,COOLOCK_*",
    "--allow-run=/bin/sh,sh",
    "--allow-sys=hostname,uid",
  ];
}

Deno.test("url: cli.ts run from a URL takes a file-backend lock and runs the command, without the npm clients of other backends", async () => {
  await using server = serveRepo();
  const home = await Deno.makeTempDir({ prefix: "coolock-url-home-" });
  const tmp = await Deno.makeTempDir({ prefix: "coolock-url-" });
  const locks = `${tmp}/locks`;
  const log = `${tmp}/coolock.log`;
  // cli.ts imports nothing from npm: no parser, no backend client.
  const denoDir = await denoDirWith([]);
  const result = await deno([
    "run",
    "--quiet",
    `--allow-import=${server.host}`,
    ...cliPermissions(home, locks, log),
    `${server.url}/cli.ts`,
    ...["--backend", `file://${locks}`, "--lock", "x", "--guard-time", "0"],
    ...[
      "--log-file",
      log,
      "--",
      "sh",
      "-c",
      'echo "ran with $COOLOCK_LOCK"; exit 3',
    ],
  ], { home, denoDir });
  assertEquals(result.code, 3, result.stderr);
  assertEquals(result.stdout, "ran with x\n");
  assertEquals(result.stderr, "");
  assertMatch(
    await Deno.readTextFile(log),
    /Lock 'x' acquired with fencing token 1\./,
  );
  await Deno.stat(`${locks}/x.lock`);
  // The modules came from the server, into the test's own DENO_DIR.
  for (
    const path of ["/cli.ts", "/deno.json", "/backends/file/mod.ts", "/mod.ts"]
  ) {
    if (path === "/mod.ts") {
      assert(
        !server.requests.includes(path),
        "cli.ts does not need mod.ts",
      );
    } else assert(server.requests.includes(path), `fetched '${path}'`);
  }
  await Deno.stat(`${denoDir}/remote`);
  // Nothing more was downloaded, and none of it was needed.
  assertEquals(npmPackagesIn(denoDir), []);
  for (const dir of [home, tmp, denoDir]) {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("url: the same run from the local checkout needs no npm package either", async () => {
  // deno.lock names every backend's client, but Deno fetches only what the
  // module graph of the run needs, and cli.ts loads backend families lazily
  // (backends/load.ts): with nothing cached and no registry, it runs.
  const home = await Deno.makeTempDir({ prefix: "coolock-url-home-" });
  const tmp = await Deno.makeTempDir({ prefix: "coolock-url-" });
  const denoDir = await denoDirWith([]);
  const result = await deno([
    "run",
    "--quiet",
    ...cliPermissions(home, `${tmp}/locks`, `${tmp}/coolock.log`),
    `${ROOT}cli.ts`,
    ...["--backend", `file://${tmp}/locks`, "--guard-time", "0"],
    ...["--log-file", `${tmp}/coolock.log`, "--", "sh", "-c", "echo local"],
  ], { home, denoDir, cwd: ROOT });
  assertEquals(result.code, 0, result.stderr);
  assertEquals(result.stdout, "local\n");
  assertEquals(npmPackagesIn(denoDir), []);
  for (const dir of [home, tmp, denoDir]) {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("url: a Deno script imports mod.ts by URL and runs withLock on the file backend", async () => {
  await using server = serveRepo();
  const home = await Deno.makeTempDir({ prefix: "coolock-url-home-" });
  const locks = `${home}/locks`;
  const denoDir = await denoDirWith([]);
  await Deno.writeTextFile(
    `${home}/job.ts`,
    `import { withLock, LockHeldError } from "${server.url}/mod.ts";
const options = { backend: "file://${locks}", lock: "url-job", guardTime: 60 };
const first = await withLock(options, (lease) => \`ran with token \${lease.token}\`);
const second = await withLock(options, () => "ran twice");
console.log(JSON.stringify([first, second, typeof LockHeldError]));
`,
  );
  const result = await deno([
    "run",
    "--quiet",
    `--allow-import=${server.host}`,
    `--allow-read=${locks}`,
    `--allow-write=${locks}`,
    "--allow-sys=hostname,uid",
    "job.ts",
  ], { home, denoDir });
  assertEquals(result.code, 0, result.stderr);
  assertEquals(JSON.parse(result.stdout), [
    // Results serialise themselves (toJSON): the token as a string.
    { acquired: true, value: "ran with token 1", token: "1", slot: 0 },
    { acquired: false, reason: "held" },
    "function",
  ]);
  assert(server.requests.includes("/mod.ts"), "mod.ts came from the server");
  assertEquals(npmPackagesIn(denoDir), [], "no npm package was needed");
  for (const dir of [home, denoDir]) {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("url: every module reachable from cli.ts and mod.ts imports with full, versioned specifiers", async () => {
  for (const entry of ["cli.ts", "mod.ts"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", `${ROOT}${entry}`],
      stdout: "piped",
      stderr: "null",
    }).output();
    const graph = JSON.parse(decoder.decode(out.stdout)) as {
      modules: { specifier: string; dependencies?: { specifier: string }[] }[];
    };
    const local = graph.modules.filter((m) => m.specifier.startsWith("file:"));
    assert(local.length > 5, `found ${entry}'s modules`);
    for (const module of local) {
      for (const { specifier } of module.dependencies ?? []) {
        assert(
          /^\.\.?\//.test(specifier) || specifier.startsWith("node:") ||
            /^npm:(@[\w.-]+\/)?[\w.-]+@\d+\.\d+\.\d+/.test(specifier),
          `'${specifier}' in '${module.specifier}' is relative, node: or a versioned npm:`,
        );
      }
    }
  }
});
