/**
 * The file backend's own safety rule, raced without the CLI's watchdog: a
 * holder that recorded its job's process group and was SIGKILLed keeps the
 * lock for exactly as long as some non-zombie process of that group lives;
 * one killed before it recorded a group keeps it until its lease end. And
 * the group check itself, on real processes: zombies, a reused pgid, another
 * boot, and the /bin/sh path that scoped Deno permissions need.
 */

import { file } from "../../../backends/file/mod.ts";
import { groupAlive, recordGroup } from "../../../backends/file/group.ts";
import { LockHeldError } from "../../../src/errors.ts";
import { acquire } from "../../../src/lease.ts";
import { assert, assertEquals } from "../../helpers/assert.ts";
import { eventually } from "../../helpers/cli.ts";
import { scratchDir } from "./fixture.ts";

const HOLDER = new URL("./holder.ts", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

function members(pgid: number): number {
  let count = 0;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[2]) === pgid) count++;
    } catch { /* gone */ }
  }
  return count;
}

async function lastBeat(path: string): Promise<number> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return Math.max(0, ...text.split("\n").filter(Boolean).map(Number));
}

async function startHolder(dir: string, lock: string, mode: string) {
  const beats = `${dir}/beats-${lock}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", HOLDER, dir, lock, beats, mode, "2"],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  const [token, pgid] = new TextDecoder().decode(value).trim().split(" ");
  return { child, beats, token: BigInt(token), pgid: Number(pgid) };
}

Deno.test("a SIGKILLed holder's lock stays held while its job's group lives, and frees when it ends", async () => {
  const dir = await scratchDir("coolock-file-group-");
  const lock = "orphaned-job";
  const holder = await startHolder(dir, lock, "group");
  await using backend = file(dir);
  try {
    holder.child.kill("SIGKILL");
    await holder.child.status;
    // The job ignores SIGTERM and has no watchdog: it runs on, orphaned,
    // past the 2 s lease end that would cover a holder without a group.
    const refusedUntil = performance.now() + 3_000;
    while (performance.now() < refusedUntil) {
      const error = await acquire({ backend, lock, ttl: 2, guardTime: 0 })
        .then((lease) => lease.release().then(() => "acquired"), (e) => e);
      assert(
        error instanceof LockHeldError,
        `the lock must stay held while the group lives: ${error}`,
      );
      assert(members(holder.pgid) > 0, "the job still runs");
      await sleep(50);
    }
    Deno.kill(-holder.pgid, "SIGKILL");
    const killedAt = Date.now();
    const lease = await acquire({
      backend,
      lock,
      ttl: 2,
      guardTime: 0,
      waitTimeout: 10,
    });
    const startedAt = Date.now();
    assert(lease.token > holder.token, "a higher token");
    assertEquals(members(holder.pgid), 0, "no process of the group is left");
    assert(
      startedAt >= await lastBeat(holder.beats),
      "the lock was taken after the job's last heartbeat",
    );
    console.log(
      `file: free ${startedAt - killedAt} ms after the group was killed`,
    );
    assert(startedAt - killedAt < 1_000, "free within 1 s of the group's end");
    await lease.release();
  } finally {
    try {
      Deno.kill(-holder.pgid, "SIGKILL");
    } catch { /* gone */ }
  }
});

Deno.test("a holder killed before it recorded its job's group keeps the lock until its lease end", async () => {
  const dir = await scratchDir("coolock-file-group-");
  const lock = "no-group-yet";
  const holder = await startHolder(dir, lock, "nogroup");
  Deno.kill(-holder.pgid, "SIGKILL");
  holder.child.kill("SIGKILL");
  const killedAt = performance.now();
  await holder.child.status;
  await using backend = file(dir);
  const error = await acquire({ backend, lock, ttl: 2, guardTime: 0 }).then(
    (lease) => lease.release().then(() => "acquired"),
    (e) => e,
  );
  assert(error instanceof LockHeldError, `held by the lease end: ${error}`);
  const lease = await acquire({
    backend,
    lock,
    ttl: 2,
    guardTime: 0,
    waitTimeout: 10,
  });
  const ms = performance.now() - killedAt;
  assert(ms > 500 && ms < 3_500, `free at the lease end (2 s), not ${ms} ms`);
  await lease.release();
});

/** A process group whose leader has exited but left a zombie and, maybe, a live child. */
async function groupWithZombie(keepChild: boolean) {
  // The subshell exits at once; its parent becomes `sleep`, which never
  // reaps it: a zombie in the group. PID 1 here does not reap either.
  const child = new Deno.Command("/bin/sh", {
    args: [
      "-c",
      `(exit 0) & ${keepChild ? "sleep 30 & " : ""}exec sleep 30`,
    ],
    detached: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await sleep(200);
  return child;
}

Deno.test("group liveness: a live member counts, zombies don't, nor a reused pgid or another boot", async () => {
  const child = await groupWithZombie(true);
  const pgid = child.pid;
  try {
    const record = await recordGroup(pgid);
    assert(
      record.start && record.boot,
      `start and boot are recorded: ${JSON.stringify(record)}`,
    );
    assertEquals(await groupAlive(record), true, "the live group");
    assertEquals(
      await groupAlive({ ...record, start: String(Number(record.start) + 1) }),
      false,
      "a leader with another start time: the pgid was reused",
    );
    assertEquals(
      await groupAlive({ ...record, boot: "another-boot" }),
      false,
      "a record from another boot",
    );
    child.kill("SIGKILL");
    await child.status;
    assertEquals(
      await groupAlive(record),
      true,
      "the leader is gone, a member lives",
    );
    Deno.kill(-pgid, "SIGKILL");
    await eventually(() => members(pgid) === 0, 5_000, "the group to end");
    assertEquals(await groupAlive(record), false, "only zombies are left");
  } finally {
    try {
      Deno.kill(-pgid, "SIGKILL");
    } catch { /* gone */ }
  }
});

Deno.test("group liveness through /bin/sh, as under scoped Deno permissions (no --allow-all)", async () => {
  const child = await groupWithZombie(false);
  const pgid = child.pid;
  const module =
    new URL("../../../backends/file/group.ts", import.meta.url).href;
  const script = `
    const { groupAlive, recordGroup, groupTracking } = await import(${
    JSON.stringify(module)
  });
    const record = await recordGroup(${pgid});
    const alive = await groupAlive(record);
    console.log(JSON.stringify({ mode: groupTracking(), record, alive }));`;
  const run = async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", script],
      env: { DENO_NO_PROMPT: "1" },
    }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    return JSON.parse(new TextDecoder().decode(out.stdout));
  };
  try {
    // `deno eval` has all permissions; narrow them as a recipe would.
    const scoped = async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-prompt",
          "--allow-read=/proc",
          "--allow-run=/bin/sh",
          `data:application/typescript,${encodeURIComponent(script)}`,
        ],
      }).output();
      assert(out.success, new TextDecoder().decode(out.stderr));
      return JSON.parse(new TextDecoder().decode(out.stdout));
    };
    const all = await run();
    const viaSh = await scoped();
    assertEquals(all.mode, "deno");
    assertEquals(
      viaSh.mode,
      "sh",
      "without --allow-all, /proc is read by /bin/sh",
    );
    assertEquals(viaSh.record, all.record, "the same record either way");
    assertEquals([all.alive, viaSh.alive], [true, true]);
    child.kill("SIGKILL");
    await child.status;
    const after = await scoped();
    assertEquals(
      after.alive,
      false,
      "only a zombie is left, through /bin/sh too",
    );
  } finally {
    try {
      Deno.kill(-pgid, "SIGKILL");
    } catch { /* gone */ }
  }
});
