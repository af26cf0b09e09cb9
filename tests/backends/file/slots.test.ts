/**
 * The file backend's semaphore layout: a mutex is still the one file
 * `<name>.lock` (so a coolock of an earlier release, which flocks that file,
 * still excludes this one), slots are `<name>+<k>.lock`, and a stored limit
 * gives way to another only once none of its slots is held.
 */

import { file } from "../../../backends/file/mod.ts";
import { LimitMismatchError, LockHeldError } from "../../../src/errors.ts";
import { acquire } from "../../../src/lease.ts";
import { assert, assertEquals } from "../../helpers/assert.ts";
import { scratchDir } from "./fixture.ts";

const take = (backend: ReturnType<typeof file>, limit: number, guardTime = 0) =>
  acquire({ backend, lock: "jobs", ttl: 2, guardTime, limit });

Deno.test("a mutex is one file, as before; slots add <name>+<k>.lock", async () => {
  const dir = await scratchDir("coolock-file-slots-");
  await using backend = file(dir);
  await (await take(backend, 1)).release();
  const files = () => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assertEquals(files(), ["jobs.lock", "jobs.meta"]);
  // An earlier release's coolock holds the flock of the same file.
  const old = await Deno.open(`${dir}/jobs.lock`, { read: true });
  assert(await old.tryLock(true), "the old coolock's flock");
  const error = await take(backend, 1).then((l) => l.release(), (e) => e);
  assert(error instanceof LockHeldError, `excluded by the old flock: ${error}`);
  old.close();
  const leases = [await take(backend, 3), await take(backend, 3)];
  assertEquals(files(), ["jobs+1.lock", "jobs.lock", "jobs.meta"]);
  assertEquals(leases.map((l) => l.slot), [0, 1]);
  for (const lease of leases) await lease.release();
});

Deno.test("another limit is refused while a slot is held or guarded, and accepted once all are free", async () => {
  const dir = await scratchDir("coolock-file-slots-");
  await using backend = file(dir);
  const held = await take(backend, 3);
  const refused = await take(backend, 2).then((l) => l.release(), (e) => e);
  assert(
    refused instanceof LimitMismatchError &&
      refused.limit === 2 && refused.stored === 3,
    `refused while held: ${refused}`,
  );
  await held.release();
  const guarded = await take(backend, 3, 2);
  await guarded.release();
  const early = await take(backend, 2).then((l) => l.release(), (e) => e);
  assert(
    early instanceof LimitMismatchError,
    `refused while guarded: ${early}`,
  );
  await new Promise((ok) => setTimeout(ok, 2_100));
  const changed = await take(backend, 2);
  assert(changed.token > guarded.token, "tokens go on across the change");
  const old = await take(backend, 3).then((l) => l.release(), (e) => e);
  assert(old instanceof LimitMismatchError && old.stored === 2, `${old}`);
  await changed.release();
});
