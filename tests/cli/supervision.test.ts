/**
 * The supervised job, as an operator meets it: the watchdog is no child of
 * the job, it ends the job's whole group when coolock dies, turns into a
 * zombie, is stopped or stops renewing, signals stop the job in bounded
 * time, leftovers never outlive the lock, and the job's environment holds
 * none of coolock's settings. Real processes and signals, on the file
 * backend unless a test needs a server; the assertions are on what the
 * processes did (timestamps, liveness), never on coolock's log.
 */

import {
  alive,
  cleanEnv,
  CLI_COMMAND,
  eventually,
  oneLine,
  runCli,
  spawnCli,
} from "../helpers/cli.ts";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { redisServer } from "../helpers/servers/redis.ts";
import { available, startServer } from "../helpers/servers/server.ts";

const dir = await Deno.makeTempDir({ prefix: "coolock-supervision-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch { /* best effort */ }
});
let count = 0;

/** A fresh lock on a private file backend, logging to a file. */
function base(guardTime = 0, lock = `sv-${count++}`): string[] {
  return [
    "--backend",
    `file://${dir}/locks`,
    "--lock",
    lock,
    "--guard-time",
    String(guardTime),
    "--log-file",
    `${dir}/coolock.log`,
  ];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const decoder = new TextDecoder();

async function read(path: string): Promise<string> {
  return await Deno.readTextFile(path).catch(() => "");
}

/** Waits until `path` holds a line, and returns its first line. */
async function firstLine(path: string, ms = 10_000): Promise<string> {
  await eventually(async () => (await read(path)).includes("\n"), ms, path);
  return (await read(path)).split("\n")[0];
}

/** The state letter of `pid` (`S`, `T`, `Z`, …), or undefined when it is gone. */
function stateOf(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0];
  } catch {
    return undefined;
  }
}

/** Live (non-zombie) processes of process group `pgid`. */
function group(pgid: number): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[2]) === pgid) {
        found.push(Number(entry.name));
      }
    } catch { /* gone meanwhile */ }
  }
  return found;
}

function cmdline(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").slice(
      0,
      -1,
    );
  } catch {
    return [];
  }
}

function parentOf(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return 0;
  }
}

/** CPU time (user + system) of `pid` in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** Runs a command directly, for comparison with the same under coolock. */
async function direct(argv: string[]): Promise<{ code: number; out: string }> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    out: decoder.decode(out.stdout) + decoder.decode(out.stderr),
  };
}

/** Milliseconds since the epoch, as `date +%s%3N` prints them in a job. */
const NOW_MS = "date +%s%3N";

Deno.test("supervision: jobs that reap every child behave exactly as without coolock", async () => {
  const jobs = [
    [
      "perl",
      "-e",
      'my $p=fork(); if(!$p){sleep 1;exit 0} 1 while wait()!=-1; print "done\\n"',
    ],
    [
      "python3",
      "-c",
      "import os\ntry:\n  os.wait()\nexcept ChildProcessError as e:\n  print('ECHILD', e.errno)",
    ],
    ["sh", "-c", "sleep 1 & wait; echo waited $?"],
  ];
  for (const job of jobs) {
    const alone = await direct(job);
    const started = performance.now();
    const under = await runCli([...base(), "--", ...job]);
    assertEquals(
      { code: under.code, out: under.stdout + under.stderr },
      alone,
      `${job[0]} under coolock`,
    );
    assert(
      performance.now() - started < 8_000,
      `${job[0]} did not hang (${(performance.now() - started).toFixed(0)} ms)`,
    );
  }
});

Deno.test("supervision: the job's children are exactly the ones it started", async () => {
  const pidFile = `${dir}/tree-pid`;
  const holder = spawnCli([
    ...base(),
    "--shell",
    `sleep 5 & echo $$ > ${pidFile}; wait`,
  ]);
  const job = Number(await firstLine(pidFile));
  await sleep(100);
  const ps = await new Deno.Command("ps", {
    args: ["-o", "comm=", "--ppid", String(job)],
    stdout: "piped",
  }).output();
  assertEquals(decoder.decode(ps.stdout).trim().split("\n"), ["sleep"]);
  // The guard is in the job's group, but no child of the job.
  const members = group(job).filter((pid) => pid !== job);
  assert(members.length >= 2, `sleep and the guard: ${members}`);
  holder.kill("SIGTERM");
  await holder.status;
});

Deno.test("supervision: SIGKILL of coolock sends SIGTERM to the group within milliseconds; a job that ignores it gets SIGKILL after kill-after", async () => {
  const times = `${dir}/kill-times`;
  const holder = spawnCli([
    ...base(),
    "--kill-after",
    "1",
    "--shell",
    `trap 'echo term $(${NOW_MS}) >> ${times}' TERM; echo $$ > ${times}.pid; ` +
    `while :; do sleep 0.05; done`,
  ]);
  const job = Number(await firstLine(`${times}.pid`));
  await sleep(200);
  const killedAt = Date.now();
  holder.kill("SIGKILL");
  await holder.status;
  const term = Number((await firstLine(times)).split(" ")[1]);
  const reaction = term - killedAt;
  console.log(`SIGKILL of coolock → SIGTERM of the group: ${reaction} ms`);
  assert(reaction < 250, `SIGTERM came ${reaction} ms after the SIGKILL`);
  await eventually(() => !alive(job), 5_000, "the job to die by SIGKILL");
  const gone = Date.now() - killedAt;
  assert(
    gone >= 1_000 && gone < 1_000 + 1_000,
    `the TERM-trapping job died ${gone} ms after the kill (kill-after 1 s)`,
  );
  // One SIGKILL went to the whole group; the rest die with the job.
  await eventually(() => group(job).length === 0, 1_000, "the whole group");
});

Deno.test("supervision: a zombie coolock (its parent never reaps it) still has its job ended", async () => {
  const pidFile = `${dir}/zombie-job`;
  // A parent that starts coolock and never waits for it, as a container
  // whose PID 1 doesn't reap.
  const parent = new Deno.Command("python3", {
    args: [
      "-c",
      "import subprocess,sys,time\np=subprocess.Popen(sys.argv[1:])\nprint(p.pid, flush=True)\ntime.sleep(60)",
      ...CLI_COMMAND,
      ...base(),
      "--kill-after",
      "0.5",
      "--shell",
      `echo $$ > ${pidFile}; exec sleep 60`,
    ],
    env: cleanEnv(),
    clearEnv: true,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = parent.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const coolock = Number((await reader.read()).value);
  const job = Number(await firstLine(pidFile));
  Deno.kill(coolock, "SIGKILL");
  await eventually(() => stateOf(coolock) === "Z", 5_000, "coolock a zombie");
  await eventually(() => !alive(job), 3_000, "the job to end");
  assertEquals(stateOf(coolock), "Z", "coolock is still an unreaped zombie");
  parent.kill("SIGKILL");
  await parent.status;
  await reader.cancel();
});

Deno.test("supervision: a SIGSTOPped coolock has its job ended at the lost-lock deadline", async () => {
  const times = `${dir}/stop-times`;
  // ttl 3, kill-after 0.5: the deadline is 3 − (0.5 + 0.3) = 2.2 s after
  // the lock was taken, and no renewal comes before 1 s.
  const holder = spawnCli([
    ...base(),
    "--ttl",
    "3",
    "--kill-after",
    "0.5",
    "--shell",
    `echo $(${NOW_MS}) $$ > ${times}; trap 'echo term $(${NOW_MS}) >> ${times}; exit 0' TERM; ` +
    `while :; do sleep 0.05; done`,
  ]);
  const [startedAt, job] = (await firstLine(times)).split(" ").map(Number);
  Deno.kill(holder.pid, "SIGSTOP");
  const stoppedAt = Date.now();
  assert(stoppedAt - startedAt < 900, "stopped before the first renewal");
  await eventually(
    async () => (await read(times)).includes("term"),
    5_000,
    "the guard's SIGTERM",
  );
  const term = Number((await read(times)).split("\n")[1].split(" ")[1]);
  console.log(
    `SIGSTOP: SIGTERM came ${
      term - startedAt
    } ms after the job started (deadline ≤ 2200 ms)`,
  );
  // The deadline counts from the lock's acquisition, a little before the
  // job's start; the job must be gone before the TTL (3 s) could free it.
  assert(
    term - startedAt <= 2_200 + 150 && term - startedAt >= 1_500,
    `SIGTERM at ${term - startedAt} ms, the deadline was at most 2200 ms`,
  );
  await eventually(() => !alive(job), 2_000, "the job to end");
  Deno.kill(holder.pid, "SIGCONT");
  const status = await holder.status;
  assertEquals(status.code, 75, "the resumed coolock reports the lost lock");
});

Deno.test({
  name:
    "supervision: redis, --ttl 3 and a SIGSTOPped holder: the contender's job never overlaps the first",
  ignore: !available(redisServer),
  async fn() {
    const server = await startServer(redisServer);
    const uri = `redis://127.0.0.1:${server.port}`;
    const lock = `stop-${count++}`;
    const beats = `${dir}/beats-${lock}`;
    const args = [
      "-b",
      uri,
      "-l",
      lock,
      "-g",
      "0",
      "--ttl",
      "3",
      "--kill-after",
      "0.5",
      "--log-file",
      `${dir}/coolock.log`,
    ];
    // A redis server up for less than the lease grants no lock at first.
    const holder = spawnCli([
      ...args,
      "-w",
      "10",
      "--shell",
      `trap '' TERM; echo $$ > ${beats}.pid; while :; do echo $(${NOW_MS}) >> ${beats}; sleep 0.05; done`,
    ]);
    const job = Number(await firstLine(`${beats}.pid`));
    await sleep(1_500);
    Deno.kill(holder.pid, "SIGSTOP");
    const stoppedAt = Date.now();
    let contenderStart = 0;
    let groupAliveAtStart = true;
    while (Date.now() - stoppedAt < 8_000) {
      const marker = `${beats}.contender`;
      const result = await runCli([
        ...args,
        "-w",
        "0",
        "--",
        "sh",
        "-c",
        `echo $(${NOW_MS}) > ${marker}`,
      ]);
      if (result.code === 0 && (await read(marker)) !== "") {
        groupAliveAtStart = group(job).length > 0;
        contenderStart = Number((await read(marker)).trim());
        break;
      }
      await sleep(100);
    }
    Deno.kill(holder.pid, "SIGCONT");
    await holder.status;
    assert(contenderStart > 0, "the contender got the lock in the end");
    const lastBeat = Math.max(
      ...(await read(beats)).trim().split("\n").map(Number),
    );
    assert(
      lastBeat < contenderStart,
      `the first job's last heartbeat (${lastBeat}) is before the contender's start (${contenderStart})`,
    );
    assert(!groupAliveAtStart, "no process of the first group was alive");
    await server.kill();
  },
});

Deno.test("supervision: with PATH=/empty the watchdog works and uses no CPU", async () => {
  const holder = new Deno.Command(CLI_COMMAND[0], {
    args: [...CLI_COMMAND.slice(1), ...base(), "--", "/bin/sleep", "3"],
    env: { ...cleanEnv(), PATH: "/empty" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let job = 0;
  await eventually(
    () => {
      for (const entry of Deno.readDirSync("/proc")) {
        if (!/^\d+$/.test(entry.name)) continue;
        const argv = cmdline(Number(entry.name));
        const pid = Number(entry.name);
        if (argv[0] === "/bin/sleep" && parentOf(pid) === holder.pid) {
          job = pid;
          return true;
        }
      }
      return false;
    },
    10_000,
    "the job",
  );
  await sleep(300);
  const guard = group(job).find((pid) => pid !== job);
  assert(guard !== undefined, "the guard is in the job's group");
  const fifo = cmdline(guard)[4];
  const id = fifo.match(/coolock-([0-9a-f]+)\/watchdog$/)![1];
  const clock = [...Deno.readDirSync("/proc")].map((e) => Number(e.name))
    .find((pid) => cmdline(pid)[4] === id);
  assert(clock !== undefined, "the clock runs");
  const before = cpuTicks(guard) + cpuTicks(clock);
  await sleep(1_500);
  const used = cpuTicks(guard) + cpuTicks(clock) - before;
  assert(used <= 2, `the watchdog used ${used} CPU ticks in 1.5 s`);
  const out = await holder.output();
  assertEquals(out.code, 0, decoder.decode(out.stderr));
});

Deno.test("supervision: coolock killed the instant its job starts never leaves the job running", async () => {
  for (let i = 0; i < 10; i++) {
    const pidFile = `${dir}/instant-${i}`;
    const holder = spawnCli([
      ...base(),
      "--kill-after",
      "0.3",
      "--shell",
      `echo $$ > ${pidFile}; trap '' TERM; sleep 60`,
    ]);
    const job = Number(await firstLine(pidFile));
    holder.kill("SIGKILL");
    await holder.status;
    await eventually(
      () => group(job).length === 0,
      3_000,
      `the job's group ${job} to end (run ${i})`,
    );
  }
});

Deno.test("supervision: TERM, INT, HUP and QUIT reach the job's group", async () => {
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"] as const) {
    const marker = `${dir}/sig-${signal}`;
    const child = spawnCli([
      ...base(),
      "--shell",
      `trap 'echo got > ${marker}; exit 9' ${
        signal.slice(3)
      }; touch ${marker}.ready; while :; do sleep 0.05; done`,
    ]);
    await eventually(
      () => Deno.stat(`${marker}.ready`).then(() => true, () => false),
      10_000,
      "start",
    );
    child.kill(signal);
    const status = await child.status;
    assertEquals(await read(marker), "got\n", `${signal} reached the command`);
    assertEquals(status.code, 9, `the command's own code after ${signal}`);
  }
});

Deno.test("supervision: a job that ignores the signal is SIGKILLed after kill-after, and coolock exits 128+N", async () => {
  for (const [signal, number] of [["SIGTERM", 15], ["SIGINT", 2]] as const) {
    const pidFile = `${dir}/stubborn-${signal}`;
    const child = spawnCli([
      ...base(),
      "--kill-after",
      "0.8",
      "--shell",
      `trap '' TERM INT; echo $$ > ${pidFile}; sleep 30 & wait; sleep 30`,
    ]);
    const job = Number(await firstLine(pidFile));
    await sleep(100);
    const sentAt = performance.now();
    child.kill(signal);
    const status = await child.status;
    const took = performance.now() - sentAt;
    assertEquals(status.code, 128 + number);
    assert(took >= 800 && took < 800 + 1_000, `coolock took ${took} ms`);
    assertEquals(group(job), [], "the whole group is gone");
  }
});

Deno.test("supervision: a second signal SIGKILLs the group at once", async () => {
  const pidFile = `${dir}/second`;
  const child = spawnCli([
    ...base(),
    "--kill-after",
    "20",
    "--ttl",
    "60",
    "--shell",
    `trap '' TERM; echo $$ > ${pidFile}; sleep 30`,
  ]);
  const job = Number(await firstLine(pidFile));
  await sleep(100);
  child.kill("SIGTERM");
  await sleep(500);
  assert(alive(job), "the job ignores the first SIGTERM");
  const secondAt = performance.now();
  child.kill("SIGTERM");
  const status = await child.status;
  const took = performance.now() - secondAt;
  assertEquals(status.code, 143);
  assert(took < 1_000, `coolock exited ${took} ms after the second signal`);
  assertEquals(group(job), []);
});

Deno.test({
  name:
    "supervision: a signal while connecting to a hung server ends coolock within 0.5 s",
  ignore: !available(redisServer),
  async fn() {
    const server = await startServer(redisServer);
    server.pause();
    try {
      for (const signal of ["SIGTERM", "SIGINT"] as const) {
        const child = spawnCli([
          "-b",
          `redis://127.0.0.1:${server.port}`,
          "-l",
          `hung-${count++}`,
          "--log-file",
          `${dir}/coolock.log`,
          "--",
          "true",
        ]);
        await sleep(1_500);
        const sentAt = performance.now();
        child.kill(signal);
        const out = await child.output();
        const took = performance.now() - sentAt;
        assertEquals(out.code, signal === "SIGTERM" ? 143 : 130);
        assert(
          took < 500,
          `coolock exited ${took.toFixed(0)} ms after ${signal}`,
        );
      }
    } finally {
      server.resume();
      await server.kill();
    }
  },
});

/** A job line that prints how many live processes group `$pg` still has. */
const COUNT_GROUP = `n=0; for f in /proc/[0-9]*/stat; do ` +
  `IFS= read -r l < "$f" 2>/dev/null || continue; set -- \${l##*) }; ` +
  `[ "$1" != Z ] && [ "$3" = "$pg" ] && n=$((n+1)); done; echo "alive:$n"`;

Deno.test("supervision: processes left in the job's group are gone before the next holder's job starts", async () => {
  for (const leftover of ["sleep 3", "(trap '' TERM; sleep 3; sleep 3)"]) {
    const lock = `leftover-${count++}`;
    const pgFile = `${dir}/${lock}`;
    const first = spawnCli([
      ...base(0, lock),
      "--kill-after",
      "0.5",
      "--shell",
      `echo $$ > ${pgFile}; ${leftover} & exit 0`,
    ]);
    const pg = Number(await firstLine(pgFile));
    const startedAt = performance.now();
    const second = await runCli([
      ...base(0, lock),
      "-w",
      "10",
      "--shell",
      `pg=${pg}; ${COUNT_GROUP}`,
    ]);
    const waited = performance.now() - startedAt;
    const firstStatus = await first.status;
    assertEquals(firstStatus.code, 0, "the first job's own code");
    assertEquals(second.code, 0, second.stderr);
    assertEquals(
      second.stdout,
      "alive:0\n",
      `nothing of '${leftover}' lived when the next job started`,
    );
    assert(
      waited < 3_000,
      `the leftover was ended, not waited for (${waited} ms)`,
    );
  }
});

Deno.test("supervision: a command that can't start leaves no guard time, with coolock's own words", async () => {
  const script = `${dir}/badinterp.sh`;
  await Deno.writeTextFile(script, "#!/nonexistent/interpreter\necho hi\n");
  await Deno.chmod(script, 0o755);
  const crlf = `${dir}/crlf.sh`;
  await Deno.writeTextFile(crlf, "#!/bin/sh\r\necho hi\r\n");
  await Deno.chmod(crlf, 0o755);
  const plain = `${dir}/not-executable`;
  await Deno.writeTextFile(plain, "echo hi\n");
  await Deno.chmod(plain, 0o644);
  const cases: Array<[string[], number, RegExp]> = [
    [["/nonexistent"], 127, /^coolock: Command '\/nonexistent' not found$/],
    [["no-such-command-x"], 127, /not found$/],
    [[plain], 126, /can't be executed: permission denied$/],
    [
      [script],
      127,
      /its interpreter '\/nonexistent\/interpreter' was not found$/,
    ],
    [
      [crlf],
      127,
      /interpreter '\/bin\/sh\\r' was not found \(the script has Windows line endings\)$/,
    ],
  ];
  for (const [command, code, message] of cases) {
    const lock = `cannot-${count++}`;
    const a = await runCli([
      ...base(30, lock),
      "--node",
      "a",
      "--",
      ...command,
    ]);
    assertEquals(a.code, code, a.stderr);
    assertMatch(oneLine(a.stderr), message);
    assert(!a.stderr.includes("coolock-job"), a.stderr);
    const b = await runCli([
      ...base(30, lock),
      "--node",
      "b",
      "--",
      "echo",
      "ran",
    ]);
    assertEquals(b.stdout, "ran\n", "another node runs the job at once");
  }
});

Deno.test("supervision: the job's environment has none of coolock's settings and no secret", async () => {
  const secret = "R3dSecret-xyz";
  const result = await runCli([...base(), "--node", "n1", "--", "env"], {
    env: {
      COOLOCK_BACKEND: `redis://:${secret}@127.0.0.1:1`,
      COOLOCK_GUARD_TIME: "0",
      COOLOCK_LOG_LEVEL: "info",
      COOLOCK_FENCING_TOKEN: "999",
      KEEP_ME: "yes",
    },
  });
  assertEquals(result.code, 0, result.stderr);
  assert(!result.stdout.includes(secret), "no secret in the job's env");
  const names = result.stdout.trim().split("\n").map((line) =>
    line.slice(0, line.indexOf("="))
  ).filter((name) => name.startsWith("COOLOCK_")).sort();
  assertEquals(names, [
    "COOLOCK_FENCING_TOKEN",
    "COOLOCK_LOCK",
    "COOLOCK_NODE",
    "COOLOCK_SLOT",
  ]);
  assertMatch(result.stdout, /^KEEP_ME=yes$/m);
  assertMatch(result.stdout, /^COOLOCK_SLOT=0$/m);
  assert(!/^COOLOCK_FENCING_TOKEN=999$/m.test(result.stdout), "our token");
});

Deno.test("supervision: without a watchdog coolock stops before the lock (77), unless --unguarded", async () => {
  const lock = `no-watchdog-${count++}`;
  const token = ["--shell", 'echo "token $COOLOCK_FENCING_TOKEN"'];
  // No writable place for the watchdog's FIFO.
  const noDir = await runCli([...base(0, lock), ...token], {
    env: { TMPDIR: "/proc/coolock-nowhere" },
  });
  assertEquals(noDir.code, 77, noDir.stderr);
  assertMatch(
    oneLine(noDir.stderr),
    /watchdog can't make its private directory/,
  );
  // No permission to start /bin/sh.
  const scoped = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      "--allow-run=/usr/bin/env",
      CLI_COMMAND[CLI_COMMAND.length - 1],
      ...base(0, lock),
      "--",
      "/usr/bin/env",
    ],
    env: cleanEnv(),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(scoped.code, 77);
  assertMatch(
    oneLine(decoder.decode(scoped.stderr)),
    /^coolock: A Deno permission is missing: --allow-run=\/bin\/sh \((.*, )?the watchdog\)$/,
  );
  // Neither took the lock: the first run that does gets the first token.
  const ran = await runCli([...base(0, lock), ...token]);
  assertEquals(ran.stdout, "token 1\n", ran.stderr);
  // --unguarded runs without one, and the job's tree is Deno's child alone.
  const unguarded = await runCli([
    ...base(0, lock),
    "--unguarded",
    ...token,
  ], { env: { TMPDIR: "/proc/coolock-nowhere" } });
  assertEquals(unguarded.code, 0, unguarded.stderr);
  assertEquals(unguarded.stdout, "token 2\n");
});
