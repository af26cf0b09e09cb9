/**
 * install.sh against a fake release served on 127.0.0.1: it installs the
 * right binary after checking its .sha256, and refuses a tampered one, a
 * failed download and an unsupported platform with one line each.
 */

import { assetName, checksumLine } from "../../scripts/build.ts";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { textOutput } from "../helpers/output.ts";
import denoJson from "../../deno.json" with { type: "json" };

const INSTALL = new URL("../../install.sh", import.meta.url).pathname;
const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const ASSET = assetName(Deno.build.target);
const VERSION = denoJson.version;
const decoder = new TextDecoder();

/** A release's files by URL path, served on a free loopback port. */
function serveRelease(files: Map<string, Uint8Array<ArrayBuffer>>) {
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const path = new URL(request.url).pathname;
      requests.push(path);
      const body = files.get(path);
      return body
        ? new Response(body)
        : new Response("Not found", { status: 404 });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/releases`,
    requests,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** The CLI from source behind a wrapper: a coolock that really runs. */
function fakeBinary(): Uint8Array<ArrayBuffer> {
  const denoDir = Deno.env.get("DENO_DIR") ??
    `${Deno.env.get("HOME")}/.cache/deno`;
  return new TextEncoder().encode(
    `#!/bin/sh\nDENO_DIR='${denoDir}' exec '${Deno.execPath()}' run --quiet --allow-read --allow-write --allow-env --allow-run --allow-sys --allow-net '${CLI}' "$@"\n`,
  );
}

/** A release of `binary` at both the versioned and the latest paths. */
async function release(
  binary: Uint8Array<ArrayBuffer>,
  served = binary,
): Promise<Map<string, Uint8Array<ArrayBuffer>>> {
  const sum = new TextEncoder().encode(await checksumLine(binary, ASSET));
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const prefix of [`download/v${VERSION}`, "latest/download"]) {
    files.set(`/releases/${prefix}/${ASSET}`, served);
    files.set(`/releases/${prefix}/${ASSET}.sha256`, sum);
  }
  return files;
}

async function install(
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await textOutput(
    new Deno.Command("/bin/sh", {
      args: [INSTALL],
      env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...env },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }),
  );
}

function oneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split("\n");
  assertEquals(lines.length, 1, `one line on stderr, got:\n${stderr}`);
  assertMatch(lines[0], pattern);
}

function entries(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((entry) => entry.name);
  } catch {
    return [];
  }
}

Deno.test("install.sh: the latest release installs, is executable and runs", async () => {
  await using server = serveRelease(await release(fakeBinary()));
  const dir = await Deno.makeTempDir({ prefix: "coolock-install-" });
  const result = await install({
    COOLOCK_DOWNLOAD_URL: server.url,
    COOLOCK_INSTALL_DIR: `${dir}/bin`,
  });
  assertEquals(result.code, 0, result.stderr);
  assertEquals(
    result.stdout,
    `Installed coolock ${VERSION} to '${dir}/bin/coolock'\n`,
  );
  assertEquals(server.requests.slice(0, 2), [
    `/releases/latest/download/${ASSET}`,
    `/releases/latest/download/${ASSET}.sha256`,
  ]);
  assertEquals(entries(`${dir}/bin`), ["coolock"]);
  assertEquals((await Deno.stat(`${dir}/bin/coolock`)).mode! & 0o777, 0o755);
  // The installed binary takes a lock on the file backend and runs a command.
  const run = await new Deno.Command(`${dir}/bin/coolock`, {
    args: [
      ...["--backend", `file://${dir}/locks`, "--lock", "installed"],
      ...["--guard-time", "0", "--log-file", "-", "--", "echo", "ran"],
    ],
    env: { HOME: dir, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(run.code, 0, decoder.decode(run.stderr));
  assertEquals(decoder.decode(run.stdout), "ran\n");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("install.sh: COOLOCK_VERSION picks the release, with or without its v", async () => {
  await using server = serveRelease(await release(fakeBinary()));
  for (const version of [VERSION, `v${VERSION}`]) {
    const dir = await Deno.makeTempDir({ prefix: "coolock-install-" });
    server.requests.length = 0;
    const result = await install({
      COOLOCK_DOWNLOAD_URL: server.url,
      COOLOCK_INSTALL_DIR: dir,
      COOLOCK_VERSION: version,
    });
    assertEquals(result.code, 0, result.stderr);
    assertEquals(server.requests.slice(0, 2), [
      `/releases/download/v${VERSION}/${ASSET}`,
      `/releases/download/v${VERSION}/${ASSET}.sha256`,
    ]);
    assertEquals(entries(dir), ["coolock"]);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("install.sh: a tampered binary is refused, and nothing is installed", async () => {
  const good = fakeBinary();
  const tampered = new Uint8Array([...good, ...new TextEncoder().encode("#")]);
  await using server = serveRelease(await release(good, tampered));
  const dir = await Deno.makeTempDir({ prefix: "coolock-install-" });
  const result = await install({
    COOLOCK_DOWNLOAD_URL: server.url,
    COOLOCK_INSTALL_DIR: dir,
  });
  assert(result.code !== 0, "a nonzero exit");
  oneLine(
    result.stderr,
    /^coolock install: Checksum mismatch for 'http:\/\/127\.0\.0\.1:\d+\/releases\/latest\/download\/coolock-[^']+': expected '[0-9a-f]{64}', got '[0-9a-f]{64}'; nothing was installed$/,
  );
  assertEquals(result.stdout, "");
  assertEquals(entries(dir), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("install.sh: a failed download is one line naming the URL, and installs nothing", async () => {
  await using server = serveRelease(await release(fakeBinary()));
  const dir = await Deno.makeTempDir({ prefix: "coolock-install-" });
  const missing = await install({
    COOLOCK_DOWNLOAD_URL: server.url,
    COOLOCK_INSTALL_DIR: dir,
    COOLOCK_VERSION: "9.9.9",
  });
  assertEquals(missing.code, 1);
  oneLine(
    missing.stderr,
    new RegExp(
      `^coolock install: Download of '${server.url}/download/v9\\.9\\.9/${ASSET}' failed: HTTP 404$`,
    ),
  );
  // Nothing listens on a port just closed.
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  const refused = await install({
    COOLOCK_DOWNLOAD_URL: `http://127.0.0.1:${port}/releases`,
    COOLOCK_INSTALL_DIR: dir,
  });
  assertEquals(refused.code, 1);
  oneLine(refused.stderr, /failed: no connection$/);
  assertEquals(entries(dir), []);
  await Deno.remove(dir, { recursive: true });
});

/** A PATH directory whose `uname` reports this system and machine. */
async function fakeUname(system: string, machine: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "coolock-uname-" });
  await Deno.writeTextFile(
    `${dir}/uname`,
    `#!/bin/sh\ncase "$1" in -s) echo '${system}' ;; -m) echo '${machine}' ;; esac\n`,
    { mode: 0o755 },
  );
  return dir;
}

Deno.test("install.sh: an unsupported platform is one line, before any download", async () => {
  await using server = serveRelease(await release(fakeBinary()));
  const cases = [
    ["SunOS", "x86_64", /Unsupported operating system 'SunOS'/],
    ["Linux", "riscv64", /Unsupported architecture 'riscv64'/],
  ] as const;
  for (const [system, machine, pattern] of cases) {
    const bin = await fakeUname(system, machine);
    const dir = await Deno.makeTempDir({ prefix: "coolock-install-" });
    const result = await install({
      PATH: `${bin}:${Deno.env.get("PATH")}`,
      COOLOCK_DOWNLOAD_URL: server.url,
      COOLOCK_INSTALL_DIR: dir,
    });
    assertEquals(result.code, 1);
    oneLine(result.stderr, pattern);
    assertEquals(entries(dir), []);
    await Deno.remove(bin, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
  assertEquals(server.requests, []);
});

Deno.test({
  name: "install.sh: without curl and sha256sum, wget and shasum -a 256 do it",
  ignore: !["wget", "shasum"].every((tool) => which(tool)),
  async fn() {
    // A PATH with only the tools install.sh needs, less curl and sha256sum.
    const bin = await Deno.makeTempDir({ prefix: "coolock-path-" });
    const tools = ["uname", "mktemp", "rm", "cut", "mkdir", "cp", "chmod"];
    for (const tool of [...tools, "mv", "ls", "wget", "shasum", "perl"]) {
      await Deno.symlink(which(tool)!, `${bin}/${tool}`);
    }
    await using server = serveRelease(await release(fakeBinary()));
    const dir = await Deno.makeTempDir({ prefix: "coolock-install-" });
    const good = await install({
      PATH: bin,
      COOLOCK_DOWNLOAD_URL: server.url,
      COOLOCK_INSTALL_DIR: dir,
    });
    assertEquals(good.code, 0, good.stderr);
    assertEquals(entries(dir), ["coolock"]);
    await Deno.remove(`${dir}/coolock`);
    const missing = await install({
      PATH: bin,
      COOLOCK_DOWNLOAD_URL: server.url,
      COOLOCK_INSTALL_DIR: dir,
      COOLOCK_VERSION: "9.9.9",
    });
    assertEquals(missing.code, 1);
    oneLine(missing.stderr, /^coolock install: Download of '.*' failed: wget/);
    assertEquals(entries(dir), []);
    await Deno.remove(bin, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  },
});

function which(tool: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${tool}`).isFile) return `${dir}/${tool}`;
    } catch { /* not in this directory */ }
  }
  return undefined;
}
