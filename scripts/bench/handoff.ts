/**
 * The handoff, end to end, in whole processes: `limit` holders each run a
 * job that waits on its stdin, a waiter is started and left to wait, then
 * one holder's job is let go. Three clocks, all `date +%s%N` (CLOCK_REALTIME,
 * the same for every process):
 *
 * - `end`: the last instruction of the holder's job (`exec date`), which
 *   waits for the bench's word on a FIFO of its own;
 * - `exit`: the holder's own exit, printed by a shell wrapped around it;
 * - `start`: the first instruction of the waiter's job (its argv is `date`).
 *
 * handoff = start − end, holder exit = exit − end. Both include every stage
 * between them: noticing that the job exited, ending its group, the release
 * round trips, waking the waiter, the waiter's acquire, and the spawn of its
 * job through the watchdog's trampoline.
 *
 * @module
 */

import { Proc } from "./procs.ts";
import type { Tool } from "./subjects.ts";

/** One handoff, in ms. */
export interface HandoffSample {
  readonly handoff: number;
  readonly holderExit: number;
}

/**
 * The holder's job: say it runs, wait for a line on its FIFO (not stdin,
 * which etcdctl does not pass on), stamp its end.
 */
const holderJob = (fifo: string) => [
  "/bin/sh",
  "-c",
  'echo ready; read line <"$1"; exec date "+end %s%N"',
  "sh",
  fifo,
];
/** The waiter's job: its first instruction is the stamp. */
const WAITER_JOB = ["date", "+start %s%N"];
/** Stamps the holder's exit, after whatever ran as "$@". */
const wrap = (argv: readonly string[]) => [
  "/bin/sh",
  "-c",
  '"$@"; date "+exit %s%N"',
  "sh",
  ...argv,
];

/** How long the waiter has waited before the holder lets go. */
const SETTLE_MS = 100;
/** The longest one sample may take. */
const SAMPLE_TIMEOUT_MS = 60_000;

const nanos = async (proc: Proc, word: string, signal: AbortSignal) =>
  BigInt(
    (await proc.stdout.find(new RegExp(`^${word} (\\d+)$`), signal))[1],
  );
const between = (from: bigint, to: bigint) => Number(to - from) / 1e6;

/** Lets a holder's job go: one line into its FIFO (which its job has open). */
async function letGo(fifo: string): Promise<void> {
  await Deno.writeTextFile(fifo, "go\n");
}

/** One handoff sample on `lock` with `limit` slots; FIFOs go in `scratch`. */
export async function handoffSample(
  tool: Tool,
  lock: string,
  limit: number,
  scratch: string,
): Promise<HandoffSample> {
  const locked = tool.locked!;
  const signal = AbortSignal.timeout(SAMPLE_TIMEOUT_MS);
  const holders: Proc[] = [];
  const fifos: string[] = [];
  const waiting = new Set<string>();
  let waiter: Proc | undefined;
  try {
    for (let slot = 0; slot < limit; slot++) {
      const fifo = `${scratch}/fifo-${crypto.randomUUID()}`;
      await new Deno.Command("mkfifo", { args: ["-m", "600", fifo] }).output();
      fifos.push(fifo);
      const holder = new Proc(wrap(locked(lock, holderJob(fifo), limit)));
      holders.push(holder);
      await holder.stdout.find(/^ready$/, signal);
      waiting.add(fifo);
    }
    waiter = new Proc(locked(lock, WAITER_JOB, limit));
    await tool.waiting!(waiter, signal);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const [first] = holders;
    waiting.delete(fifos[0]);
    await letGo(fifos[0]);
    const end = await nanos(first, "end", signal);
    const [exit, start] = await Promise.all([
      nanos(first, "exit", signal),
      nanos(waiter, "start", signal),
    ]);
    return { handoff: between(end, start), holderExit: between(end, exit) };
  } finally {
    // Only jobs known to be reading their FIFO: opening one nobody reads
    // would block.
    for (const fifo of waiting) await letGo(fifo).catch(() => {});
    const all = [...holders, ...(waiter ? [waiter] : [])];
    const statuses = await Promise.all(all.map((proc) => proc.end()));
    const failed = statuses.findIndex((status) => !status.success);
    if (failed >= 0 && !signal.aborted) {
      const proc = all[failed];
      console.error(
        `bench: a handoff process exited ${statuses[failed].code}: ${
          proc.stderr.lines.slice(-2).join(" | ")
        }`,
      );
    }
    for (const fifo of fifos) await Deno.remove(fifo).catch(() => {});
  }
}
