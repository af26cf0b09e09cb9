/**
 * The README works as printed: every TypeScript example type-checks, the
 * config files load, every `coolock` line of a shell example is accepted,
 * the crontab lines and the systemd units run their command, and the units
 * pass `systemd-analyze verify` where it is installed. Network backends are
 * swapped for a file backend in a temp dir, and the job scripts for ones
 * that record that they ran; everything else is the README's text.
 */

import { parseArgs } from "../../src/cli/args.ts";
import { type Environment, loadSettings } from "../../src/cli/config/load.ts";
import { cleanEnv, CLI_COMMAND } from "../helpers/cli.ts";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { textOutput } from "../helpers/output.ts";

const ROOT = new URL("../../", import.meta.url);
const README = await Deno.readTextFile(new URL("README.md", ROOT));

interface Block {
  readonly lang: string;
  readonly body: string;
  /** The first line, which names the file for config and unit examples. */
  readonly title: string;
}

const BLOCKS: Block[] = [...README.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)]
  .map(([, lang, body]) => ({ lang, body, title: body.split("\n")[0] }));

function block(lang: string, title: RegExp): Block {
  const found = BLOCKS.find((b) => b.lang === lang && title.test(b.title));
  assert(found, `the README has a ${lang} block titled ${title}`);
  return found;
}

/** Shell words of one line, as sh splits them (quotes, no expansion). */
function words(line: string): string[] {
  const out: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      assert(end > i, `closed quote in ${line}`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === " " || c === "\t") {
      if (word !== undefined) out.push(word);
      word = undefined;
    } else if ((c === "#" && word === undefined) || c === "|") break;
    else word = (word ?? "") + c;
  }
  if (word !== undefined) out.push(word);
  return out;
}

/** A scratch area: a file backend, a `coolock` on PATH, and job scripts. */
async function sandbox() {
  const dir = await Deno.makeTempDir({ prefix: "coolock-readme-" });
  const bin = `${dir}/bin`;
  await Deno.mkdir(bin);
  await Deno.writeTextFile(
    `${bin}/coolock`,
    `#!/bin/sh\nexec ${
      CLI_COMMAND.map((word) => `'${word}'`).join(" ")
    } "$@"\n`,
    { mode: 0o755 },
  );
  for (const job of ["backup.sh", "report.sh"]) {
    await Deno.writeTextFile(
      `${bin}/${job}`,
      `#!/bin/sh\necho "${job} ran as lock $COOLOCK_LOCK: $*" >> '${dir}/ran'\n`,
      { mode: 0o755 },
    );
  }
  await Deno.mkdir(`${dir}/home`);
  await Deno.writeTextFile(
    `${dir}/home/.coolock`,
    `backend: file://${dir}/locks\n`,
    { mode: 0o600 },
  );
  /** The README's paths, pointed into the sandbox. */
  const local = (text: string) =>
    text.replaceAll("/usr/local/bin/coolock", `${bin}/coolock`)
      .replaceAll("/usr/local/bin/", `${bin}/`)
      .replaceAll("/var/log/coolock/", `${dir}/`);
  const ran = async () => await Deno.readTextFile(`${dir}/ran`).catch(() => "");
  return {
    dir,
    bin,
    local,
    ran,
    env: (extra: Record<string, string> = {}) =>
      cleanEnv({
        HOME: `${dir}/home`,
        PATH: `${bin}:${Deno.env.get("PATH")}`,
        ...extra,
      }),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function sh(command: string, env: Record<string, string>) {
  return await textOutput(
    new Deno.Command("/bin/sh", {
      args: ["-c", command],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }),
  );
}

Deno.test("readme: every TypeScript example type-checks", async () => {
  const examples = BLOCKS.filter((b) => b.lang === "ts");
  assert(examples.length >= 4, `found ${examples.length} TypeScript examples`);
  const dir = await Deno.makeTempDir({ prefix: "coolock-readme-ts-" });
  try {
    const files: string[] = [];
    for (const [index, { body }] of examples.entries()) {
      // The examples import the repo by a relative path or by its release
      // URL; both mean this checkout.
      const source = body
        .replaceAll(
          /"https:\/\/raw\.githubusercontent\.com\/coolock\/coolock\/v[\d.]+\//g,
          `"${ROOT.href}`,
        )
        .replaceAll('"./', `"${ROOT.href}`);
      const file = `${dir}/example-${index + 1}.ts`;
      await Deno.writeTextFile(file, source);
      files.push(file);
    }
    const out = await textOutput(
      new Deno.Command(Deno.execPath(), {
        args: [
          "check",
          "--quiet",
          `--config=${new URL("deno.json", ROOT).pathname}`,
          ...files,
        ],
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }),
    );
    assertEquals(out.code, 0, out.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function environment(files: Record<string, string>): Environment {
  return {
    get: () => undefined,
    names: () => [],
    home: "/nonexistent",
    readConfig: (path) =>
      Promise.resolve(
        files[path] === undefined
          ? undefined
          : { text: files[path], mode: 0o600 },
      ),
  };
}

Deno.test("readme: the config file examples load, in YAML and in the Python coolock's syntax", async () => {
  const yaml = block("yaml", /^# \/etc\/coolock$/);
  const { settings } = await loadSettings(
    { values: new Map() },
    environment({ "/etc/coolock": yaml.body }),
  );
  assertEquals(settings.lock.value, "0777", "the text written");
  assertEquals(settings["guard-time"].value, 60);
  assertEquals(settings.backend.origin.where, "/etc/coolock");
  const seed = block("ini", /^# \/etc\/coolock, as the Python coolock/);
  const old = await loadSettings(
    { values: new Map() },
    environment({ "/etc/coolock": seed.body }),
  );
  assertEquals(old.settings.backend.value, "redis://db.internal:6379/0");
  assertEquals(old.settings.lock.value, "nightly");
  assertEquals(old.settings["guard-time"].value, 60);
});

Deno.test("readme: every coolock line of the shell examples is accepted as printed", async () => {
  await using box = await sandbox();
  const lines = BLOCKS.filter((b) => b.lang === "sh")
    .flatMap((b) => b.body.split("\n"))
    .map((line) => line.replace(/^\$ /, ""))
    .filter((line) => /^coolock\b/.test(line));
  assert(lines.length >= 6, `found ${lines.length} coolock lines`);
  for (const line of lines) {
    const argv = words(line).slice(1);
    const parsed = parseArgs(argv);
    if (parsed.kind === "run") {
      // The options, checked as a run would check them: no network, no job.
      const options = argv.slice(0, argv.length - parsed.command.length)
        .filter((word) => !["--", "--shell", "--print-config"].includes(word));
      const out = await textOutput(
        new Deno.Command(CLI_COMMAND[0], {
          args: [...CLI_COMMAND.slice(1), ...options, "--print-config"],
          env: box.env(),
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }),
      );
      assertEquals(out.code, 0, `${line}: ${out.stderr}`);
      assertEquals(out.stderr, "", line);
    } else {
      // A subcommand, really run, against the file backend.
      const local = argv.map((word, i) =>
        argv[i - 1] === "-b" || argv[i - 1] === "--backend"
          ? `file://${box.dir}/locks`
          : word
      );
      const out = await textOutput(
        new Deno.Command(CLI_COMMAND[0], {
          args: [...CLI_COMMAND.slice(1), ...local],
          env: box.env(),
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }),
      );
      assert([0, 1].includes(out.code), `${line}: ${out.code} ${out.stderr}`);
    }
  }
});

Deno.test("readme: the crontab line runs its command under a lock", async () => {
  await using box = await sandbox();
  const crontab = block("crontab", /^# m h dom mon dow/);
  const [entry] = crontab.body.split("\n").filter((line) =>
    line !== "" && !line.startsWith("#")
  );
  const fields = entry.trim().split(/\s+/);
  assertMatch(fields.slice(0, 5).join(" "), /^[\d*,/-]+( [\d*,/-]+){4}$/);
  const command = box.local(entry.trim().replace(/^(\S+\s+){5}/, ""));
  // As cron runs it: /bin/sh -c, with cron's short PATH.
  const out = await sh(command, box.env({ PATH: "/usr/bin:/bin" }));
  assertEquals(out.code, 0, out.stderr);
  assertEquals(out.stderr, "", "nothing for cron to mail");
  assertEquals(
    await box.ran(),
    "report.sh ran as lock nightly-report: --daily\n",
  );
});

Deno.test("readme: the /etc/cron.d file runs its command under a lock, with its environment", async () => {
  await using box = await sandbox();
  const file = block("crontab", /^# \/etc\/cron\.d\//);
  const env: Record<string, string> = {};
  let entry = "";
  for (const line of file.body.split("\n")) {
    const assignment = /^([A-Z]+)=(.*)$/.exec(line);
    if (assignment) env[assignment[1]] = assignment[2];
    else if (line !== "" && !line.startsWith("#")) entry = line;
  }
  assertEquals(env.SHELL, "/bin/sh");
  const fields = entry.split(/\s+/);
  assertMatch(fields[5], /^[a-z_][a-z0-9_-]*$/, "a user name");
  const command = box.local(entry.replace(/^(\S+\s+){6}/, ""));
  await Deno.writeTextFile(
    `${box.dir}/etc-coolock`,
    `backend: file://${box.dir}/locks\n`,
  );
  const out = await sh(
    command,
    box.env({
      PATH: `${box.bin}:${env.PATH}`,
      COOLOCK_CONFIG: `${box.dir}/etc-coolock`,
    }),
  );
  assertEquals(out.code, 0, out.stderr);
  assertEquals(out.stderr, "");
  assertEquals(await box.ran(), "backup.sh ran as lock nightly-backup: \n");
  assertMatch(
    await Deno.readTextFile(`${box.dir}/backup.log`),
    /Lock 'nightly-backup' acquired/,
  );
});

Deno.test("readme: the systemd units verify, and the service's command runs", async () => {
  await using box = await sandbox();
  const service = block("ini", /^# \/etc\/systemd\/system\/.*\.service$/);
  const timer = block("ini", /^# \/etc\/systemd\/system\/.*\.timer$/);
  const name = (b: Block) => b.title.replace(/^# \/etc\/systemd\/system\//, "");
  assertEquals(
    name(service).replace(/\.service$/, ""),
    name(timer).replace(/\.timer$/, ""),
    "the timer starts the service",
  );
  const units = `${box.dir}/units`;
  await Deno.mkdir(units);
  await Deno.writeTextFile(
    `${units}/${name(service)}`,
    box.local(service.body),
  );
  await Deno.writeTextFile(`${units}/${name(timer)}`, timer.body);
  const analyze = "/usr/bin/systemd-analyze";
  if (await Deno.stat(analyze).then(() => true, () => false)) {
    const out = await textOutput(
      new Deno.Command(analyze, {
        args: [
          "verify",
          "--man=no",
          `${units}/${name(service)}`,
          `${units}/${name(timer)}`,
        ],
        stdout: "piped",
        stderr: "piped",
      }),
    );
    const about = (out.stdout + out.stderr).split("\n")
      .filter((line) => line.includes(units) || line.includes(name(service)));
    assertEquals(out.code, 0, out.stderr);
    assertEquals(about, [], "no complaint about the units");
  }
  const exec = /^ExecStart=(.*)$/m.exec(service.body)?.[1];
  assert(exec, "the service has an ExecStart");
  const out = await sh(
    box.local(exec),
    box.env({ COOLOCK_BACKEND: `file://${box.dir}/locks` }),
  );
  assertEquals(out.code, 0, out.stderr);
  assertEquals(await box.ran(), "backup.sh ran as lock nightly-backup: \n");
  assertMatch(
    out.stderr,
    /INFO - Lock 'nightly-backup' acquired/,
    "the journal",
  );
});

Deno.test("readme: the 'In a Deno script' example runs with exactly the permissions printed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coolock-readme-script-" });
  try {
    const remote = "https://raw.githubusercontent.com/coolock/coolock/v0.1.0/";
    const example = BLOCKS.find((b) =>
      b.lang === "ts" && b.body.includes(`${remote}mod.ts`)
    );
    assert(example, "the README has the script example");
    const local = new URL("./", ROOT).href;
    const script = example.body.replaceAll(remote, local)
      .replaceAll("/var/lib/coolock", `${dir}/locks`) +
      "\nconsole.log(JSON.stringify(result));\n";
    await Deno.writeTextFile(`${dir}/job.ts`, script);
    await Deno.mkdir(`${dir}/locks`, { mode: 0o700 });
    const line = /`(deno run [^`]*job\.ts)`/.exec(README)?.[1];
    assert(line, "the README says how to run it");
    const args = words(line.replaceAll("/var/lib/coolock", `${dir}/locks`))
      .slice(1);
    const out = await textOutput(
      new Deno.Command(Deno.execPath(), {
        args,
        cwd: dir,
        env: cleanEnv(),
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }),
    );
    assertEquals(out.code, 0, out.stderr);
    const result = JSON.parse(out.stdout.trim());
    assertEquals(result.acquired, true);
    assertMatch(result.value, /^ran with token \d+$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
