/**
 * The CLI as an operator uses it, on the embedded file backend: real
 * processes, real signals, real pipes.
 */

import {
  alive,
  cleanEnv,
  CLI_COMMAND,
  eventually,
  runCli,
  spawnCli,
} from "../helpers/cli.ts";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { exists } from "../helpers/fs.ts";
import denoJson from "../../deno.json" with { type: "json" };

const dir = await Deno.makeTempDir({ prefix: "coolock-cli-" });
let count = 0;
/** Common flags: a fresh lock on a private file backend, logging to a file. */
function base(guardTime = 0, log = `${dir}/coolock.log`): string[] {
  return [
    "--backend",
    `file://${dir}/locks`,
    "--lock",
    `cli-${count++}`,
    "--guard-time",
    String(guardTime),
    "--log-file",
    log,
  ];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function read(path: string): Promise<string> {
  return await Deno.readTextFile(path).catch(() => "");
}

Deno.test("cli: two instances started at once, exactly one runs", async () => {
  const args = [...base(5), "--shell", `echo ran >> ${dir}/two; sleep 0.5`];
  const [a, b] = await Promise.all([runCli(args), runCli(args)]);
  assertEquals([a.code, b.code], [0, 0]);
  assertEquals(await read(`${dir}/two`), "ran\n");
});

Deno.test("cli: wait-timeout waits and gets the lock, or times out with the conflict code", async () => {
  const args = base(0);
  const holder = spawnCli([...args, "--", "sleep", "1"]);
  await sleep(400);
  const timedOut = await runCli([
    ...args,
    "--wait-timeout",
    "0.2",
    "--conflict-exit-code",
    "3",
    "--",
    "true",
  ]);
  assertEquals(timedOut.code, 3, timedOut.stderr);
  const waited = await runCli([
    ...args,
    "--wait-timeout",
    "10",
    "--",
    "echo",
    "got it",
  ]);
  assertEquals(waited.code, 0, waited.stderr);
  assertEquals(waited.stdout, "got it\n");
  await holder.output();
});

Deno.test("cli: guard time holds after the first process has exited, which did not sleep", async () => {
  const args = [...base(3), "--shell"];
  const first = await runCli([...args, `echo first >> ${dir}/guard`]);
  assert(
    first.ms < 3_000,
    `the first run returned at once (${first.ms.toFixed(0)} ms)`,
  );
  const second = await runCli([...args, `echo second >> ${dir}/guard`]);
  assertEquals(second.code, 0);
  assertEquals(await read(`${dir}/guard`), "first\n");
  await sleep(3_200 - second.ms);
  await runCli([...args, `echo third >> ${dir}/guard`]);
  assertEquals(await read(`${dir}/guard`), "first\nthird\n");
});

Deno.test("cli: the command's exit code passes through, and 128+N for a signal", async () => {
  assertEquals((await runCli([...base(), "--", "sh", "-c", "exit 7"])).code, 7);
  assertEquals((await runCli([...base(), "--", "false"])).code, 1);
  assertEquals(
    (await runCli([...base(), "--shell", "kill -TERM $$"])).code,
    143,
  );
  assertEquals(
    (await runCli([...base(), "--shell", "kill -KILL $$"])).code,
    137,
  );
});

Deno.test("cli: the command runs without a shell, with its argv exactly as given", async () => {
  const args = ["a b", "$HOME", "*", "", "--lock", "'q'"];
  const result = await runCli([...base(), "--", "printf", "[%s]", ...args]);
  assertEquals(result.stdout, args.map((a) => `[${a}]`).join(""));
});

Deno.test("cli: the child gets COOLOCK_LOCK, COOLOCK_NODE and increasing fencing tokens", async () => {
  const args = [
    ...base(),
    "--node",
    "node-7",
    "--shell",
    'echo "$COOLOCK_LOCK $COOLOCK_NODE $COOLOCK_FENCING_TOKEN"',
  ];
  const tokens: bigint[] = [];
  for (let i = 0; i < 3; i++) {
    const { stdout } = await runCli(args);
    const [lock, node, token] = stdout.trim().split(" ");
    assertEquals([lock, node], [args[3], "node-7"]);
    tokens.push(BigInt(token));
  }
  assert(
    tokens[0] < tokens[1] && tokens[1] < tokens[2],
    `tokens increase: ${tokens}`,
  );
});

Deno.test("cli: SIGTERM, SIGINT and SIGHUP are forwarded to the command", async () => {
  for (
    const [signal, number] of [["SIGTERM", 15], ["SIGINT", 2], [
      "SIGHUP",
      1,
    ]] as const
  ) {
    const marker = `${dir}/forwarded-${signal}`;
    const child = spawnCli([
      ...base(),
      "--shell",
      `trap 'echo got > ${marker}; exit 9' ${
        signal.slice(3)
      }; touch ${marker}.ready; while :; do sleep 0.05; done`,
    ]);
    await eventually(
      async () =>
        (await read(`${marker}.ready`)) !== "" ||
        await exists(`${marker}.ready`),
      10_000,
      "start",
    );
    child.kill(signal);
    const status = await child.status;
    assertEquals(await read(marker), "got\n", `${signal} reached the command`);
    assertEquals(
      status.code,
      9,
      `coolock exits with the command's own code after ${signal} (${number})`,
    );
  }
});

Deno.test("cli: a signal while waiting for the lock exits 128+N without running", async () => {
  const args = base();
  const holder = spawnCli([...args, "--", "sleep", "2"]);
  await sleep(400);
  const waiter = spawnCli([
    ...args,
    "--wait-timeout",
    "30",
    "--",
    "touch",
    `${dir}/waiter-ran`,
  ]);
  await sleep(400);
  waiter.kill("SIGTERM");
  assertEquals((await waiter.status).code, 143);
  assert(
    !(await exists(`${dir}/waiter-ran`)),
    "the waiter must not run the command",
  );
  await holder.output();
});

Deno.test("cli: 20 MB of binary stdout and stdin pass through byte-identical", async () => {
  const data = new Uint8Array(20 * 1024 * 1024);
  for (let offset = 0; offset < data.length; offset += 65536) {
    crypto.getRandomValues(data.subarray(offset, offset + 65536));
  }
  const path = `${dir}/blob`;
  await Deno.writeFile(path, data);
  const out = await new Deno.Command(CLI_COMMAND[0], {
    args: [...CLI_COMMAND.slice(1), ...base(), "--", "cat", path],
    env: cleanEnv(),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0);
  assertEquals(out.stdout.length, data.length);
  assert(
    out.stdout.every((byte, i) => byte === data[i]),
    "stdout is byte-identical",
  );
  const piped = await runCli([...base(), "--", "wc", "-c"], {
    stdin: data.subarray(0, 1_000_000),
  });
  assertEquals(piped.stdout.trim(), "1000000");
});

Deno.test("cli: SIGKILL of coolock ends the job's whole group and leaves no stuck lock", async () => {
  const args = [...base(), "--kill-after", "1"];
  const pids = `${dir}/group-pids`;
  const holder = spawnCli([
    ...args,
    "--shell",
    `sleep 60 & echo $! > ${pids}; echo $$ >> ${pids}; wait`,
  ]);
  await eventually(
    async () => (await read(pids)).trim().split("\n").length === 2,
    10_000,
    "the job to start",
  );
  const [background, shell] = (await read(pids)).trim().split("\n").map(Number);
  holder.kill("SIGKILL");
  await holder.status;
  await eventually(
    () => !alive(background) && !alive(shell),
    5_000,
    "the watchdog to end the job's group",
  );
  const next = await runCli([...args, "--", "echo", "free"]);
  assertEquals(
    next.stdout,
    "free\n",
    "the lock is free at once after the holder died",
  );
});

Deno.test("cli: coolock killed the moment its job starts never leaves the job running", async () => {
  for (let i = 0; i < 8; i++) {
    const pid = `${dir}/early-${i}`;
    const holder = spawnCli([
      ...base(),
      "--kill-after",
      "0.5",
      "--shell",
      `echo $$ > ${pid}; exec sleep 60`,
    ]);
    await eventually(
      async () => (await read(pid)) !== "",
      10_000,
      "the job to start",
    );
    holder.kill("SIGKILL");
    await holder.status;
    const job = Number(await read(pid));
    await eventually(
      () => !alive(job),
      3_000,
      `the watchdog to end job ${job} (run ${i})`,
    );
  }
});

Deno.test("cli: the watchdog goes away with a job that ends normally", async () => {
  const marker = `coolock-watchdog-test-${crypto.randomUUID()}`;
  const result = await runCli([...base(), "--", "sh", "-c", "true", marker]);
  assertEquals(result.code, 0);
  await eventually(
    async () => {
      const out = await new Deno.Command("pgrep", {
        args: ["-f", marker],
        stdout: "piped",
      }).output();
      return !out.success;
    },
    3_000,
    "no process of the finished job to remain",
  );
});

Deno.test("cli: a lost lock ends the command and exits 75", async () => {
  const args = [...base(), "--ttl", "1.5", "--kill-after", "0.3"];
  const lock = args[3];
  const holder = spawnCli([
    ...args,
    "--shell",
    `touch ${dir}/lost-started; exec sleep 60`,
  ]);
  await eventually(
    () => exists(`${dir}/lost-started`),
    10_000,
    "the job to start",
  );
  for await (const entry of Deno.readDir(`${dir}/locks`)) {
    if (entry.name === `${lock}.lock`) {
      await Deno.remove(`${dir}/locks/${entry.name}`);
    }
  }
  const started = performance.now();
  const out = await holder.output();
  assertEquals(out.code, 75, new TextDecoder().decode(out.stderr));
  assert(
    performance.now() - started < 3_000,
    "the loss was noticed within the TTL",
  );
  assertMatch(
    new TextDecoder().decode(out.stderr),
    /^coolock: Lock '.*' was lost: .*terminating the command\n$/,
  );
});

Deno.test("cli: the log has the original's line format and rotates", async () => {
  const log = `${dir}/rotating.log`;
  const args = [
    ...base(0, log),
    "--log-max-size",
    "400",
    "--rotate-log-copies",
    "2",
    "--",
    "true",
  ];
  for (let i = 0; i < 6; i++) await runCli(args);
  const text = await read(log);
  assertMatch(
    text.split("\n")[0],
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - coolock \(\d+\) - (INFO|DEBUG|WARNING|ERROR) - .+$/,
  );
  assert(
    await exists(`${log}.1`) && await exists(`${log}.2`),
    "two rotated copies",
  );
  assert(!(await exists(`${log}.3`)), "no more than two copies");
  for (const path of [log, `${log}.1`]) {
    assert(
      (await Deno.stat(path)).size <= 400 + 200,
      `${path} stays near the size limit`,
    );
  }
});

Deno.test("cli: a log file that can't be opened means stderr, with one warning", async () => {
  const result = await runCli([
    ...base(0, "/nonexistent/dir/coolock.log"),
    "--",
    "echo",
    "ok",
  ]);
  assertEquals(result.code, 0);
  assertEquals(result.stdout, "ok\n");
  const lines = result.stderr.trim().split("\n");
  assertMatch(
    lines[0],
    /^coolock: can't write log file '\/nonexistent\/dir\/coolock.log' \(its directory does not exist\); logging to stderr$/,
  );
  assert(
    lines.slice(1).every((line) => / - coolock \(\d+\) - INFO - /.test(line)),
    result.stderr,
  );
});

Deno.test("cli: --print-config shows each setting's source; --version and --help", async () => {
  const home = await Deno.makeTempDir();
  await Deno.writeTextFile(`${home}/.coolock`, "lock: from-home\n");
  const printed = await runCli(["--print-config", "--ttl", "9"], {
    env: { HOME: home, COOLOCK_NODE: "envnode" },
  });
  assertEquals(printed.code, 0);
  assertMatch(printed.stdout, /^lock: from-home +# from .*\/\.coolock$/m);
  assertMatch(printed.stdout, /^ttl: 9 +# from --ttl$/m);
  assertMatch(printed.stdout, /^node: envnode +# from COOLOCK_NODE$/m);
  const version = await runCli(["--version"]);
  assertEquals(version.code, 0);
  // From source, no build target: only a compiled binary has one.
  assertEquals(
    version.stdout,
    `coolock ${denoJson.version}\ndeno ${Deno.version.deno} (v8 ${Deno.version.v8}, typescript ${Deno.version.typescript})\n`,
  );
  const help = await runCli(["--help"]);
  assertEquals(help.code, 0);
  assert(
    help.stdout.includes("Examples:") &&
      help.stdout.includes("--coordination-backend") &&
      help.stdout.includes("coolock -- status"),
    help.stdout,
  );
});

Deno.test("cli: a command named like a subcommand runs after --, or after any option", async () => {
  const bin = await Deno.makeTempDir({ prefix: "coolock-bin-" });
  for (const name of ["status", "release", "check"]) {
    await Deno.writeTextFile(
      `${bin}/${name}`,
      `#!/bin/sh\necho "the $0 command ran: $*"\n`,
      { mode: 0o755 },
    );
  }
  const env = { PATH: `${bin}:${Deno.env.get("PATH")}` };
  for (const name of ["status", "release", "check"]) {
    const dashed = await runCli(["--", name, "--all"], {
      env: {
        ...env,
        COOLOCK_BACKEND: `file://${dir}/locks`,
        COOLOCK_GUARD_TIME: "0",
        COOLOCK_LOG_FILE: `${dir}/coolock.log`,
      },
    });
    assertEquals(dashed.code, 0, dashed.stderr);
    assertEquals(dashed.stdout, `the ${bin}/${name} command ran: --all\n`);
    // The seed's style: options, then the command, no `--`.
    const seed = await runCli([...base(), name, "x"], { env });
    assertEquals(seed.code, 0, seed.stderr);
    assertEquals(seed.stdout, `the ${bin}/${name} command ran: x\n`);
  }
  await Deno.remove(bin, { recursive: true });
});

Deno.test("cli: a user's default log is quiet and in its state directory, never relative to the cwd", async () => {
  // As nobody, as a user's crontab would run it: no /var/log/coolock.log
  // noise on stderr, the log in ~/.local/state/coolock/, and a relative
  // XDG_STATE_HOME ignored.
  const home = await Deno.makeTempDir({ prefix: "coolock-user-" });
  const cwd = await Deno.makeTempDir({ prefix: "coolock-cwd-" });
  const denoDir = await Deno.makeTempDir({ prefix: "coolock-user-deno-" });
  for (const path of [home, cwd, denoDir]) await Deno.chown(path, 65534, 65534);
  const out = await new Deno.Command("setpriv", {
    args: [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      Deno.execPath(),
      "run",
      "--allow-all",
      "--quiet",
      "--no-lock",
      new URL("../../cli.ts", import.meta.url).pathname,
      ...["--backend", `file://${home}/locks`, "--guard-time", "0"],
      ...["--", "sh", "-c", "echo ran as $(id -u)"],
    ],
    cwd,
    env: cleanEnv({ HOME: home, XDG_STATE_HOME: "state", DENO_DIR: denoDir }),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  try {
    assertEquals(out.code, 0, decoder.decode(out.stderr));
    assertEquals(decoder.decode(out.stdout), "ran as 65534\n");
    assertEquals(decoder.decode(out.stderr), "", "nothing for cron to mail");
    const log = await read(`${home}/.local/state/coolock/coolock.log`);
    assertMatch(log, /INFO - Lock 'coolock' acquired/);
    assertEquals([...Deno.readDirSync(cwd)], [], "nothing in the cwd");
  } finally {
    for (const path of [home, cwd, denoDir]) {
      await Deno.remove(path, { recursive: true });
    }
  }
});

Deno.test("cli: an unknown COOLOCK_* variable is one warning, and the run goes on", async () => {
  const result = await runCli([...base(), "--", "echo", "ok"], {
    env: { COOLOCK_GAURD_TIME: "5", COOLOCK_SLOT: "2" },
  });
  assertEquals(result.code, 0);
  assertEquals(result.stdout, "ok\n");
  assertEquals(
    result.stderr,
    "coolock: warning: Environment variable 'COOLOCK_GAURD_TIME' is not a coolock setting and is ignored: did you mean 'COOLOCK_GUARD_TIME'?\n",
  );
});

Deno.test("cli: a readable config file with a password is warned about once, on stderr and in the log", async () => {
  const config = `${dir}/secret.yaml`;
  const log = `${dir}/secret.log`;
  await Deno.writeTextFile(
    config,
    `backend: redis://:pa%23ss@127.0.0.1:1\nlog-file: ${log}\nlock: secret\n`,
  );
  await Deno.chmod(config, 0o644);
  const printed = await runCli(["--config", config, "--print-config"]);
  assertEquals(printed.code, 0, printed.stderr);
  const warning =
    /^coolock: warning: Config file '.*secret\.yaml' holds a password or token and can be read by other users \(mode 0644\)/;
  assertMatch(printed.stderr, warning);
  assertEquals(printed.stderr.trimEnd().split("\n").length, 1);
  // A run: the warning on stderr once, and in the log (the backend is not
  // there, so the run itself ends with 69).
  const run = await runCli(["--config", config, "--", "true"]);
  assertEquals(run.code, 69, run.stderr);
  assertMatch(run.stderr, warning);
  assertEquals(
    run.stderr.split("\n").filter((line) => line.includes("warning")).length,
    1,
  );
  assertMatch(
    await read(log),
    /WARNING - Config file '.*secret\.yaml' holds a password/,
  );
  for (
    const text of [printed.stderr, printed.stdout, run.stderr, await read(log)]
  ) {
    assert(!text.includes("pa%23ss") && !text.includes("pa#ss"), text);
  }
  await Deno.chmod(config, 0o600);
  const closed = await runCli(["--config", config, "--print-config"]);
  assertEquals(closed.stderr, "");
});

Deno.test("cli: a config file in the Python coolock's syntax drives a run", async () => {
  const config = `${dir}/seed.conf`;
  await Deno.writeTextFile(
    config,
    [
      "# the Python coolock's /etc/coolock",
      `coordination-backend = file://${dir}/locks   # this host only`,
      "lock = 0777",
      "guard-time 0",
      `--log-file ${dir}/seed.log`,
      "",
    ].join("\n"),
  );
  const result = await runCli([
    "-c",
    config,
    "--shell",
    'echo "$COOLOCK_LOCK"',
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(result.stdout, "0777\n");
  assertMatch(await read(`${dir}/seed.log`), /Lock '0777' acquired/);
});

Deno.test("cli: YAML keeps a lock name that looks like a number, as the flag does", async () => {
  const config = `${dir}/octal.yaml`;
  await Deno.writeTextFile(
    config,
    `backend: file://${dir}/locks\nlock: 0777\nnode: 0x1F\nguard-time: 0\n`,
  );
  const fromFile = await runCli(
    ["-c", config, "--shell", 'echo "$COOLOCK_LOCK $COOLOCK_NODE"'],
  );
  assertEquals(fromFile.stdout, "0777 0x1F\n", fromFile.stderr);
});

Deno.test("cli: a guard time of 600h is valid: the run works, and holds the lock", async () => {
  const lock = `long-guard-${count++}`;
  const common = [
    "--backend",
    `file://${dir}/locks`,
    "--lock",
    lock,
    "--log-file",
    `${dir}/coolock.log`,
  ];
  const first = await runCli([...common, "-g", "600h", "--", "echo", "ran"]);
  assertEquals([first.code, first.stdout], [0, "ran\n"], first.stderr);
  const second = await runCli([...common, "--", "echo", "ran again"]);
  assertEquals([second.code, second.stdout], [0, ""], "held by guard time");
});

Deno.test("cli: --log-format json writes one JSON object per line", async () => {
  const result = await runCli([
    "--backend",
    `file://${dir}/locks`,
    "--lock",
    `json-${count++}`,
    "-g",
    "0",
    "-f",
    "-",
    "--log-format",
    "json",
    "--",
    "true",
  ]);
  assertEquals(result.code, 0, result.stderr);
  const lines = result.stderr.trimEnd().split("\n");
  assert(lines.length >= 2, result.stderr);
  for (const line of lines) {
    const entry = JSON.parse(line);
    assertEquals(typeof entry, "object", line);
  }
});

Deno.test("cli: without a backend, the embedded file backend is used and said so", async () => {
  const home = await Deno.makeTempDir();
  const result = await runCli([
    "--log-file",
    "-",
    "--guard-time",
    "0",
    "--",
    "echo",
    "hi",
  ], { env: { HOME: home } });
  assertEquals(result.stdout, "hi\n");
  assertMatch(
    result.stderr,
    /INFO - No backend configured: using the embedded file backend in 'file:\/\/.*coolock', which coordinates this host only/,
  );
});

Deno.test("cli: a config file drives a run", async () => {
  const config = `${dir}/job.yaml`;
  await Deno.writeTextFile(
    config,
    `coordination-backend: file://${dir}/locks\nlock: from-config\nguard-time: 0\nlog-file: ${dir}/c.log\n`,
  );
  const result = await runCli([
    "--config",
    config,
    "--shell",
    'echo "$COOLOCK_LOCK"',
  ]);
  assertEquals(result.stdout, "from-config\n");
  assert(
    (await read(`${dir}/c.log`)).includes("Lock 'from-config' acquired"),
    "logged to the configured file",
  );
});

Deno.test("cli: a limit that differs from the stored one is bad input: 64 from a flag, 78 from the environment", async () => {
  const common = [
    "--backend",
    `file://${dir}/locks`,
    "--lock",
    `limit-${count++}`,
    "--log-file",
    `${dir}/coolock.log`,
  ];
  const first = await runCli([
    ...common,
    "--limit",
    "2",
    "-g",
    "60",
    "--",
    "true",
  ]);
  assertEquals(first.code, 0, first.stderr);
  const flag = await runCli([...common, "--limit", "3", "--", "echo", "no"]);
  assertEquals(flag.code, 64, flag.stderr);
  assertMatch(
    flag.stderr,
    /^coolock: Option '--limit': Lock '.*' is used with limit 2, not 3: every node must use the same limit\n$/,
  );
  const env = await runCli([...common, "--", "echo", "no"], {
    env: { COOLOCK_LIMIT: "3" },
  });
  assertEquals(env.code, 78, env.stderr);
  assertMatch(env.stderr, /^coolock: Environment variable 'COOLOCK_LIMIT': /);
  assertEquals(flag.stdout + env.stdout, "", "the command never ran");
});
