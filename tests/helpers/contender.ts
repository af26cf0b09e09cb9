/**
 * One of the processes of the contended-sections test: takes the lock
 * `count` times in wait mode and appends `start`/`end` lines with fencing
 * tokens and times to a shared log.
 *
 * deno run -A tests/helpers/contender.ts <uri> <lock> <count> <log> <ttl>
 */

import { openBackend } from "../../backends/mod.ts";
import { withLock } from "../../src/with_lock.ts";

const [uri, lock, count, logPath, ttl] = Deno.args;
const log = await Deno.open(logPath, {
  append: true,
  create: true,
  write: true,
});
const encoder = new TextEncoder();
const now = () => (performance.timeOrigin + performance.now()).toFixed(3);
await using backend = openBackend(uri);
for (let i = 0; i < Number(count); i++) {
  const result = await withLock(
    { backend, lock, ttl: Number(ttl), guardTime: 0, waitTimeout: 120 },
    async (lease) => {
      log.writeSync(
        encoder.encode(`start ${lease.token} ${now()} ${Deno.pid}\n`),
      );
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
      log.writeSync(
        encoder.encode(`end ${lease.token} ${now()} ${Deno.pid}\n`),
      );
    },
  );
  if (!result.acquired) {
    throw new Error(`Section ${i} not acquired: ${result.reason}`);
  }
}
log.close();
