/**
 * A lock holder for the file backend's own tests, run as its own process so
 * that a test can SIGKILL it: takes `lock` in `dir`, starts a job in a
 * process group of its own that beats into `beats` every 50 ms and ignores
 * SIGTERM (no watchdog: the job outlives this process on purpose), records
 * the group unless told not to, prints `<token> <pgid>` and waits.
 *
 * deno run -A tests/backends/file/holder.ts <dir> <lock> <beats> <group|nogroup> <ttl>
 */

import { file } from "../../../backends/file/mod.ts";
import { acquire } from "../../../src/lease.ts";

const [dir, lock, beats, mode, ttl] = Deno.args;
const backend = file(dir);
const lease = await acquire({
  backend,
  lock,
  ttl: Number(ttl),
  guardTime: 0,
});
const job = new Deno.Command("/bin/sh", {
  args: [
    "-c",
    `trap '' TERM; ( while :; do date +%s%3N >> ${beats}; sleep 0.05; done ) & while :; do date +%s%3N >> ${beats}; sleep 0.05; done`,
  ],
  detached: true,
  stdin: "null",
  stdout: "null",
  stderr: "null",
}).spawn();
if (mode === "group") await lease.holdWhileGroup(job.pid);
console.log(`${lease.token} ${job.pid}`);
await new Promise(() => {});
