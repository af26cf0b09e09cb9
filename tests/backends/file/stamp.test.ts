/**
 * Fencing tokens never go back, and no guard is dropped, whatever a SIGKILL
 * (or a power cut) leaves in a lock file: the tests tear records by hand,
 * exactly as a write cut short would, and check what the next contender
 * gets. Also the files of an earlier release, and a lost or damaged meta
 * file.
 */

import { file } from "../../../backends/file/mod.ts";
import { layoutOf } from "../../../backends/file/keys.ts";
import {
  contentsOf,
  encodeRecord,
  RECORD_SIZE,
} from "../../../backends/file/stamp.ts";
import { BackendUnavailableError, LockHeldError } from "../../../src/errors.ts";
import { acquire } from "../../../src/lease.ts";
import { forceRelease } from "../../../src/operate.ts";
import { assert, assertEquals } from "../../helpers/assert.ts";
import { scratchDir } from "./fixture.ts";

async function setup(lock: string) {
  const dir = await scratchDir("coolock-file-stamp-");
  const layout = await layoutOf(await Deno.realPath(dir), lock);
  const backend = file(dir);
  const take = (guardTime = 0, waitTimeout = 0) =>
    acquire({ backend, lock, ttl: 2, guardTime, waitTimeout });
  const attempt = () =>
    take().then((lease) => lease.release().then(() => lease.token), (e) => e);
  return { dir, layout, backend, take, attempt };
}

/** Writes `bytes` at `offset` of `path`, as a write cut short would leave them. */
async function scribble(path: string, offset: number, bytes: Uint8Array) {
  const f = await Deno.open(path, { write: true });
  await f.seek(offset, Deno.SeekMode.Start);
  await f.write(bytes);
  f.close();
}

/** Where the next record goes: the place that does not hold the newest one. */
async function nextPlace(path: string): Promise<number> {
  const contents = contentsOf(await Deno.readFile(path));
  assertEquals(contents.kind, "record");
  return contents.kind === "record" && contents.at === 0 ? RECORD_SIZE : 0;
}

Deno.test("a record torn mid-write: the token carries on and the guard holds", async () => {
  const { layout, backend, take, attempt } = await setup("torn");
  for (let i = 0; i < 10; i++) await (await take()).release();
  const guarded = await take(60);
  assertEquals(guarded.token, 11n);
  await guarded.release();
  const path = layout.slotPath(0);
  // A write cut short inside the record's JSON: what a later state (here
  // one that would free the slot) looked like, up to the cut.
  const record = encodeRecord(99, {
    fence: "11",
    released: true,
    guardUntil: 0,
  });
  const cut = record.indexOf(0x0a) + 12;
  await scribble(path, await nextPlace(path), record.subarray(0, cut));
  const early = await attempt();
  assert(
    early instanceof LockHeldError,
    `the 60 s guard still holds: ${early}`,
  );
  // Garbage in the whole place, as a power cut may leave.
  await scribble(path, await nextPlace(path), new Uint8Array(RECORD_SIZE));
  assert((await attempt()) instanceof LockHeldError, "still guarded");
  await forceRelease(backend, "torn");
  const next = await take();
  assertEquals(next.token, 12n, "token 12 follows 11, not 1");
  await next.release();
  await backend.close();
});

Deno.test("a stamp with no readable record is never taken as free: a clear error until forced", async () => {
  const { layout, backend, take, attempt } = await setup("garbage");
  for (let i = 0; i < 4; i++) await (await take()).release();
  const path = layout.slotPath(0);
  for (const junk of ["not json at all\n", '{"fence":', "\0".repeat(100)]) {
    await Deno.writeFile(
      path,
      new TextEncoder().encode(junk.padEnd(2 * RECORD_SIZE, " ")),
    );
    const error = await attempt();
    assert(
      error instanceof BackendUnavailableError &&
        /can't be read.*release --force/.test(error.message),
      `an unreadable stamp is an error that says what to do: ${error}`,
    );
  }
  const removed = await forceRelease(backend, "garbage");
  assertEquals(removed.map((r) => r.what), ["unreadable stamp"]);
  const next = await take();
  assertEquals(next.token, 5n, "the meta file's counter carries the token");
  await next.release();
  await backend.close();
});

Deno.test("an empty slot file (killed right after creating it) is free, and the token still goes up", async () => {
  const { layout, backend, take } = await setup("empty");
  for (let i = 0; i < 3; i++) await (await take()).release();
  await Deno.writeFile(layout.slotPath(0), new Uint8Array());
  const next = await take();
  assertEquals(next.token, 4n);
  await next.release();
  await backend.close();
});

Deno.test("a lost or damaged meta file: tokens continue from the slot files", async () => {
  const { layout, backend, take } = await setup("meta");
  for (let i = 0; i < 7; i++) await (await take()).release();
  await Deno.writeFile(
    layout.metaPath,
    new Uint8Array(2 * RECORD_SIZE).fill(0x41),
  );
  const afterDamage = await take();
  assertEquals(afterDamage.token, 8n, "rebuilt from the slot's last token");
  await afterDamage.release();
  await Deno.remove(layout.metaPath);
  const afterLoss = await take();
  assertEquals(
    afterLoss.token,
    9n,
    "the slot's own token, when the meta file is gone",
  );
  await afterLoss.release();
  await backend.close();
});

Deno.test("removing the lock file out of band doesn't reset the token", async () => {
  const { layout, backend, take } = await setup("removed");
  for (let i = 0; i < 5; i++) await (await take()).release();
  await Deno.remove(layout.slotPath(0));
  const next = await take();
  assertEquals(next.token, 6n);
  await next.release();
  await backend.close();
});

Deno.test("an earlier release's JSON stamp: its guard and token are kept, and its file stays readable", async () => {
  const { layout, backend, take, attempt } = await setup("legacy");
  const path = layout.slotPath(0);
  const guardUntil = Date.now() + 1_500;
  await Deno.writeTextFile(
    path,
    JSON.stringify({ owner: "old:1:ab", guardUntil, fence: "41" }) + "\n",
    { mode: 0o600 },
  );
  assert((await attempt()) instanceof LockHeldError, "the old guard holds");
  const lease = await take(0, 5);
  assert(Date.now() >= guardUntil, "taken after the old guard");
  assertEquals(lease.token, 42n);
  // The old line stays in place until a record is complete beside it.
  const text = new TextDecoder().decode(await Deno.readFile(path));
  assert(text.startsWith('{"owner":"old:1:ab"'), "the old line is kept at 0");
  await lease.release();
  await backend.close();
});

Deno.test("records are small, whole and checksummed", () => {
  const record = encodeRecord(7, { fence: "3", released: true, guardUntil: 0 });
  assertEquals(record.length, RECORD_SIZE);
  const contents = contentsOf(record);
  assertEquals(contents.kind, "record");
  const flipped = record.slice();
  flipped[60] ^= 1;
  assertEquals(contentsOf(flipped).kind, "corrupt", "a flipped bit is caught");
});
