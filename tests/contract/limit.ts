/**
 * The counting semaphore (`--limit N`) on every backend: at most N holders,
 * each in a distinct slot; a killed slot holder frees only its own slot;
 * waiters get each freed slot; guard time holds per slot; tokens keep
 * increasing across slots; a stored limit refuses another one.
 *
 * @module
 */

import { LimitMismatchError, LockHeldError } from "../../src/errors.ts";
import { acquire, type Lease } from "../../src/lease.ts";
import { cleanEnv, CLI_COMMAND, eventually, oneLine } from "../helpers/cli.ts";
import {
  assert,
  assertEquals,
  cli,
  flags,
  leaseOptions,
  lines,
  lockName,
  type Register,
  sleep,
  spawn,
  tempDir,
} from "./common.ts";
import type { ContractFixture } from "./fixture.ts";

interface Run {
  readonly slot: number;
  readonly token: bigint;
  readonly start: number;
  readonly end: number;
}

/** A job that records its slot, token and run interval, in ms. */
function recordingJob(dir: string, seconds: number): string {
  return `s=$(date +%s%3N); sleep ${seconds}; echo "$COOLOCK_SLOT $COOLOCK_FENCING_TOKEN $s $(date +%s%3N)" >> ${dir}/runs`;
}

async function runsOf(dir: string): Promise<Run[]> {
  return (await lines(`${dir}/runs`)).map((line) => {
    const [slot, token, start, end] = line.split(" ");
    return {
      slot: Number(slot),
      token: BigInt(token),
      start: Number(start),
      end: Number(end),
    };
  });
}

/** The most runs that overlap at any moment, and whether overlapping runs shared a slot. */
function overlap(runs: readonly Run[]): { most: number; sharedSlot: boolean } {
  let most = 0;
  let sharedSlot = false;
  for (const run of runs) {
    const during = runs.filter((other) =>
      other.start <= run.start && run.start < other.end
    );
    most = Math.max(most, during.length);
    const slots = new Set(during.map((other) => other.slot));
    if (slots.size !== during.length) sharedSlot = true;
  }
  return { most, sharedSlot };
}

/** Starts `count` CLI processes at once, behind a shared go file. */
function herd(
  f: ContractFixture,
  dir: string,
  count: number,
  args: string[],
): Deno.ChildProcess[] {
  const go = `${dir}/go`;
  return Array.from(
    { length: count },
    () =>
      new Deno.Command("/bin/sh", {
        args: [
          "-c",
          `while [ ! -e ${go} ]; do sleep 0.01; done; exec "$@"`,
          "sh",
          ...CLI_COMMAND,
          ...args,
        ],
        env: cleanEnv(f.env),
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).spawn(),
  );
}

async function outputs(children: Deno.ChildProcess[]) {
  const results = await Promise.all(children.map((child) => child.output()));
  const decoder = new TextDecoder();
  return results.map((r) => ({
    code: r.code,
    stderr: decoder.decode(r.stderr),
  }));
}

/** Registers the semaphore cases for one backend. */
export function limit(test: Register, label: string): void {
  test("limit 3: of 20 CLI processes started at once, exactly 3 run at once, in distinct slots", async (f) => {
    const lock = lockName(label, "herd3");
    const dir = await tempDir();
    const children = herd(f, dir, 20, [
      ...flags(f, lock, 0),
      "--limit",
      "3",
      "--shell",
      recordingJob(dir, 3),
    ]);
    await sleep(300);
    await Deno.writeTextFile(`${dir}/go`, "");
    const results = await outputs(children);
    const failed = results.find((r) => r.code !== 0);
    assert(!failed, `every process exits 0: ${failed?.stderr}`);
    const runs = await runsOf(dir);
    // A process that a loaded machine starts late may find a slot freed by
    // a finished job: it may run then, but never as a fourth at once.
    assert(runs.length >= 3, `at least 3 of 20 ran, not ${runs.length}`);
    const { most, sharedSlot } = overlap(runs);
    assertEquals(most, 3, "exactly three ran at once, never four");
    assert(!sharedSlot, "jobs running at once had distinct slots");
    const first = runs.filter((r) =>
      runs.every((o) => o.start >= r.start - 3_000)
    );
    assertEquals(
      new Set(runs.slice(0, 3).map((r) => r.slot)).size <= 3,
      true,
    );
    void first;
    assertEquals(
      new Set(runs.map((r) => r.token)).size,
      runs.length,
      "distinct tokens",
    );
  });

  test("limit 3 in wait mode: 12 waiters run, never more than 3 at once, slots distinct", async (f) => {
    const lock = lockName(label, "wait3");
    const dir = await tempDir();
    const children = herd(f, dir, 12, [
      ...flags(f, lock, 0),
      "--limit",
      "3",
      "--wait-timeout",
      "120",
      "--shell",
      recordingJob(dir, 0.4),
    ]);
    await sleep(300);
    await Deno.writeTextFile(`${dir}/go`, "");
    const results = await outputs(children);
    const failed = results.find((r) => r.code !== 0);
    assert(!failed, `every process exits 0: ${failed?.stderr}`);
    const runs = await runsOf(dir);
    assertEquals(runs.length, 12, "every waiter got a slot");
    const { most, sharedSlot } = overlap(runs);
    assert(most <= 3, `${most} jobs ran at once, over the limit of 3`);
    assert(most === 3, `the slots were used: at most ${most} ran at once`);
    assert(!sharedSlot, "jobs running at once never share a slot");
    assertEquals(new Set(runs.map((r) => r.token)).size, 12, "distinct tokens");
  });

  test("limit 3: a SIGKILLed slot holder frees only its own slot", async (f) => {
    const lock = lockName(label, "kill3");
    const dir = await tempDir();
    const holders: Deno.ChildProcess[] = [];
    for (let i = 0; i < 3; i++) {
      holders.push(spawn(f, [
        ...flags(f, lock, 0),
        "--limit",
        "3",
        "--shell",
        `echo "$COOLOCK_SLOT $$" > ${dir}/holder-${i}; exec sleep 120`,
      ]));
      await eventually(
        async () => (await lines(`${dir}/holder-${i}`)).length > 0,
        20_000,
        `holder ${i} to start`,
      );
    }
    try {
      const [victimSlot] = (await lines(`${dir}/holder-1`))[0].split(" ").map(
        Number,
      );
      const full = await cli(f, [
        ...flags(f, lock, 0).slice(4),
        "--limit",
        "3",
        "--shell",
        `echo ran > ${dir}/full`,
      ]);
      assertEquals(full.code, 0, full.stderr);
      assertEquals(await lines(`${dir}/full`), [], "no fourth holder");
      holders[1].kill("SIGKILL");
      const killedAt = performance.now();
      const next = await cli(f, [
        ...flags(f, lock, 0).slice(4),
        "--limit",
        "3",
        "--wait-timeout",
        String(f.freeWithinMs / 1000 + 10),
        "--shell",
        `echo "$COOLOCK_SLOT" > ${dir}/next`,
      ]);
      const ms = performance.now() - killedAt;
      assertEquals(next.code, 0, next.stderr);
      assertEquals(
        await lines(`${dir}/next`),
        [String(victimSlot)],
        "the newcomer got the freed slot",
      );
      assert(
        ms <= f.freeWithinMs + 3_000,
        `the slot was free ${ms.toFixed(0)} ms after the kill`,
      );
      const again = await cli(f, [
        ...flags(f, lock, 0).slice(4),
        "--limit",
        "3",
        "--shell",
        `echo ran > ${dir}/again`,
      ]);
      assertEquals(again.code, 0, again.stderr);
      // The newcomer has exited; the two other holders still hold theirs,
      // so exactly one more may get in now.
      assertEquals(await lines(`${dir}/again`), ["ran"], "one slot was free");
      for (const i of [0, 2]) {
        const status = await Promise.race([
          holders[i].status.then((s) => s.code),
          sleep(200).then(() => "running"),
        ]);
        assertEquals(status, "running", `holder ${i} still holds its slot`);
      }
    } finally {
      for (const holder of holders) {
        try {
          holder.kill("SIGTERM");
        } catch { /* gone */ }
        await holder.output();
      }
    }
  });

  test("limit 2 (library): distinct slots, a third waits for a freed slot, guard time per slot", async (f) => {
    const lock = lockName(label, "lib2");
    await using a = f.open();
    await using b = f.open();
    const first = await acquire(leaseOptions(f, a, lock, { limit: 2 }));
    const second = await acquire(
      leaseOptions(f, b, lock, { limit: 2, guardTime: 3 }),
    );
    assertEquals(
      [first.slot, second.slot].sort(),
      [0, 1],
      "two holders, slots 0 and 1",
    );
    assert(second.token > first.token, "tokens increase across slots");
    const third = await acquire(leaseOptions(f, a, lock, { limit: 2 })).then(
      (l: Lease) => l.release().then(() => "acquired"),
      (e) => e,
    );
    assert(third instanceof LockHeldError, `a third is held off: ${third}`);
    await first.release();
    const waited = await acquire(
      leaseOptions(f, a, lock, { limit: 2, waitTimeout: 10 }),
    );
    assertEquals(waited.slot, first.slot, "the freed slot");
    assert(waited.token > second.token, "a newer token");
    const releasedAt = performance.now();
    await second.release();
    // The second slot stays held for its guard time.
    const early = await acquire(leaseOptions(f, b, lock, { limit: 2 })).then(
      (l: Lease) => l.release().then(() => "acquired"),
      (e) => e,
    );
    assert(
      early instanceof LockHeldError,
      `a released slot keeps its guard time: ${early}`,
    );
    const late = await acquire(
      leaseOptions(f, b, lock, {
        limit: 2,
        waitTimeout: 3 + f.freeWithinMs / 1000 + 5,
      }),
    );
    assert(
      performance.now() - releasedAt >= 2_000,
      "the guarded slot was free only after its guard time",
    );
    assertEquals(late.slot, second.slot, "the guarded slot, once free");
    await late.release();
    await waited.release();
  });

  test(
    "a stored limit refuses another limit: LimitMismatchError, and one line with exit 64 from the CLI",
    async (f) => {
      const lock = lockName(label, "mismatch");
      await using a = f.open();
      await using b = f.open();
      const held = await acquire(leaseOptions(f, a, lock, { limit: 3 }));
      const error = await acquire(leaseOptions(f, b, lock, { limit: 2 })).then(
        (l: Lease) => l.release().then(() => "acquired"),
        (e) => e,
      );
      assert(
        error instanceof LimitMismatchError,
        `LimitMismatchError, not ${error}`,
      );
      assertEquals([error.limit, error.stored], [2, 3]);
      const result = await cli(f, [
        ...flags(f, lock, 0).slice(4),
        "--limit",
        "2",
        "--",
        "echo",
        "must-not-run",
      ]);
      assertEquals(result.code, 64, result.stderr);
      assert(/limit/i.test(oneLine(result.stderr)), result.stderr);
      assert(!result.stdout.includes("must-not-run"), "the command never ran");
      await held.release();
    },
    { storesLimit: true },
  );
}
