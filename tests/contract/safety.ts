/**
 * The one promise, raced: no job ever runs without its lock. A first
 * coolock runs a stubborn job (it ignores SIGTERM, leaves a grandchild in
 * its process group and writes a heartbeat every 50 ms); a fault strikes
 * (the wrapper is SIGKILLed or SIGSTOPped, the server restarts, the session
 * is dropped); a contender keeps trying with `-w 0` every 100 ms. What the
 * contender actually did, by timestamps and process liveness, is judged:
 * its job never starts before the first job's last heartbeat, nor while any
 * process of the first group lives; the first group is gone in bounded
 * time; and the contender does get the lock within the backend's bound.
 *
 * @module
 */

import { eventually } from "../helpers/cli.ts";
import {
  assert,
  cli,
  flags,
  lines,
  lockName,
  type Needs,
  type Register,
  sleep,
  spawn,
  tempDir,
  wallMs,
  watchGroup,
} from "./common.ts";
import type { ContractFixture } from "./fixture.ts";

/** The fault, and what the test needs for it. */
interface Fault {
  readonly name: string;
  readonly needs: Needs;
  /** Strikes; resolves a cleanup for after the test. */
  strike(f: ContractFixture, holder: Deno.ChildProcess, lock: string): Promise<
    () => Promise<void>
  >;
  /** Bound on the first group's end, from the fault, in ms. */
  groupGoneWithinMs(f: ContractFixture): number;
  /** Whether the contender must get the lock afterwards (a stopped file holder keeps its flock). */
  contenderGetsIn(f: ContractFixture): boolean;
  /**
   * Whether the holder may keep its lock through the fault (a server that
   * restarts with its state, such as etcd): then its job must run on
   * undisturbed and alone until the holder is stopped by hand.
   */
  mayKeep?(f: ContractFixture): boolean;
}

/** The watchdog's stated reaction bound to coolock's death, plus slack for this shared machine. */
const WATCHDOG_MS = 500;
const KILL_AFTER_MS = 500;

const FAULTS: readonly Fault[] = [
  {
    name: "SIGKILLed wrapper",
    needs: {},
    strike(_f, holder) {
      holder.kill("SIGKILL");
      return Promise.resolve(async () => {});
    },
    groupGoneWithinMs: () => WATCHDOG_MS + KILL_AFTER_MS + 1_000,
    contenderGetsIn: () => true,
  },
  {
    name: "SIGSTOPped wrapper",
    needs: {},
    strike(_f, holder) {
      holder.kill("SIGSTOP");
      return Promise.resolve(async () => {
        holder.kill("SIGKILL");
        holder.kill("SIGCONT");
        await holder.status;
      });
    },
    // The watchdog ends the group at the lease's local deadline (TTL minus
    // the safety margin after the last confirmed renewal), before the TTL.
    groupGoneWithinMs: (f) => f.ttl * 1000 + 1_000,
    contenderGetsIn: (f) => f.server !== undefined,
  },
  {
    name: "server restart",
    needs: { restart: true },
    async strike(f) {
      await f.server!.kill();
      await f.server!.restart();
      return async () => {};
    },
    // The holder notices the loss at once or by its deadline.
    groupGoneWithinMs: (f) => f.ttl * 1000 + KILL_AFTER_MS + 1_500,
    contenderGetsIn: () => true,
    mayKeep: (f) => f.faults.restart === "keeps",
  },
  {
    name: "dropped server session",
    needs: { dropSession: true },
    async strike(f, _holder, lock) {
      await f.faults.dropSession!(lock);
      return async () => {};
    },
    groupGoneWithinMs: (f) => f.ttl * 1000 + KILL_AFTER_MS + 1_000,
    contenderGetsIn: () => true,
  },
];

/** The stubborn job: ignores TERM, keeps a grandchild, beats every 50 ms. */
function stubbornJob(dir: string): string {
  return [
    `trap '' TERM`,
    `echo "$$ $COOLOCK_FENCING_TOKEN" > ${dir}/first`,
    `( while :; do echo "$(date +%s%3N) child" >> ${dir}/beats; sleep 0.05; done ) &`,
    `while :; do echo "$(date +%s%3N) main" >> ${dir}/beats; sleep 0.05; done`,
  ].join("\n");
}

/** Registers the safety races for one backend. */
export function safety(test: Register, label: string): void {
  for (const fault of FAULTS) {
    test(
      `no second job while the first lives: ${fault.name}, stubborn job`,
      async (f) => {
        const lock = lockName(label, "stubborn");
        const dir = await tempDir();
        const holder = spawn(f, [
          ...flags(f, lock, 0),
          "--shell",
          stubbornJob(dir),
        ]);
        await eventually(
          async () => (await lines(`${dir}/beats`)).length >= 4,
          20_000,
          "the first job to beat",
        );
        const [pgid, firstToken] = (await Deno.readTextFile(`${dir}/first`))
          .trim().split(" ").map(Number);
        const group = watchGroup(pgid);
        let stopContender = false;
        const contenderJob =
          `echo "$(date +%s%3N) $COOLOCK_FENCING_TOKEN" > ${dir}/second`;
        const contending = (async () => {
          while (!stopContender) {
            await cli(f, [
              "--wait-timeout",
              "0",
              ...flags(f, lock, 0).slice(4),
              "--shell",
              contenderJob,
            ]);
            if ((await lines(`${dir}/second`)).length > 0) return;
            await sleep(100);
          }
        })();
        // Let the contender fail a few times against the live holder first.
        await sleep(600);
        assert(
          (await lines(`${dir}/second`)).length === 0,
          "the contender got in while the first job ran normally",
        );
        const struckAt = wallMs();
        const cleanup = await fault.strike(f, holder, lock);
        try {
          const goneWithin = fault.groupGoneWithinMs(f);
          let stoppedAt = struckAt;
          if (fault.mayKeep?.(f)) {
            // Kept through the fault, or lost: both are fine, two jobs are not.
            await group.gone(goneWithin).catch(() => {});
            if (group.goneAt === undefined) {
              assert(
                (await lines(`${dir}/second`)).length === 0,
                "the lock was kept through the fault, yet a contender ran",
              );
              holder.kill("SIGTERM");
              stoppedAt = wallMs();
            }
          }
          await group.gone(goneWithin + 5_000);
          const goneAfter = group.goneAt! - stoppedAt;
          assert(
            goneAfter <= goneWithin,
            `the first group lived ${goneAfter} ms after the fault, over ${goneWithin} ms`,
          );
          if (fault.contenderGetsIn(f)) {
            const bound = f.freeWithinMs + 3_000;
            await eventually(
              async () => (await lines(`${dir}/second`)).length > 0,
              goneWithin + bound + 10_000,
              "the contender to get the lock",
            );
            const [second] = await lines(`${dir}/second`);
            const [startedAt, secondToken] = second.split(" ").map(Number);
            const beats = await lines(`${dir}/beats`);
            const lastBeat = Math.max(
              ...beats.map((line) => Number(line.split(" ")[0])),
            );
            assert(
              startedAt > lastBeat,
              `the contender's job started ${
                lastBeat - startedAt
              } ms before the first job's last heartbeat`,
            );
            assert(
              startedAt > group.lastSeenAlive,
              `the contender's job started while the first group (${pgid}) was alive`,
            );
            assert(
              secondToken > firstToken,
              `the contender's token ${secondToken} is above the first's ${firstToken}`,
            );
            const freeAfter = startedAt - group.goneAt!;
            assert(
              freeAfter <= bound,
              `the contender got in ${freeAfter} ms after the first group ended, over ${bound} ms`,
            );
            console.log(
              `${label}: ${fault.name}: first group gone after ${goneAfter} ms, contender in ${
                startedAt - struckAt
              } ms after the fault`,
            );
          } else {
            await sleep(f.ttl * 1000 + 1_000);
            const beats = await lines(`${dir}/beats`);
            const lastBeat = Math.max(
              ...beats.map((line) => Number(line.split(" ")[0])),
            );
            const [second] = await lines(`${dir}/second`);
            assert(
              second === undefined || Number(second.split(" ")[0]) > lastBeat,
              "no contender job ran while the first one beat",
            );
          }
        } finally {
          stopContender = true;
          group.stop();
          await contending;
          await cleanup();
          try {
            holder.kill("SIGKILL");
          } catch { /* already gone */ }
          await holder.status;
        }
      },
      fault.needs,
    );
  }
}
