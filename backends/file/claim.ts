/**
 * One slot of a file lock: taking it, and holding it.
 *
 * A contender opens the slot file read-only and takes its `flock(2)`
 * without blocking; read-only, so that its attempt wakes no other waiter
 * (a watch sees a close only after a write). With the flock, the stamp's
 * last writer is gone, and `judge` (stamp.ts) says whether a guard, a
 * still-living job's process group, or the lease end of a holder that died
 * before it could record its group still keeps the slot. A free slot gets
 * the name's next token (meta.ts), a second, writable descriptor, and a
 * stamp that says who holds it until when.
 *
 * The holder keeps both descriptors open. Each renewal first checks that
 * the file at the path is still the one it locked (`forceRelease` replaces
 * it by a rename, and an operator may delete it), then renews the stamp's
 * lease end. A release stamps the slot as released with the guard end, then
 * closes the flock's descriptor before the writable one, so a waiter woken
 * by that last close finds the flock free.
 *
 * @module
 */

import type { Claim, LockRequest } from "../../src/backend.ts";
import { LockLostError } from "../../src/errors.ts";
import { isAt, openLockFile } from "./dir.ts";
import { groupAlive, type GroupRecord, recordGroup } from "./group.ts";
import type { Layout } from "./keys.ts";
import { nextToken } from "./meta.ts";
import {
  type Contents,
  judge,
  readContents,
  slotRecord,
  type SlotStamp,
  slotStampOf,
  type Verdict,
  writeNext,
} from "./stamp.ts";

/** What an attempt on one slot found, when it did not get the slot. */
export type Miss =
  | { readonly kind: "live" }
  | { readonly kind: "judged"; readonly verdict: Verdict }
  | { readonly kind: "corrupt"; readonly path: string; readonly why: string };

function closeAll(...files: Array<Deno.FsFile | undefined>): void {
  for (const file of files) {
    try {
      file?.close();
    } catch { /* closed already */ }
  }
}

/**
 * Looks at slot `slot` as a contender would, and lets go: `undefined` when
 * it is free (or has no file), else what holds it.
 */
export async function probeSlot(path: string): Promise<Miss | undefined> {
  const file = openLockFile(path);
  if (!file) return undefined;
  try {
    if (!file.tryLockSync(true)) return { kind: "live" };
    const stamp = slotStampOf(readContents(file));
    if (typeof stamp === "string") return { kind: "corrupt", path, why: stamp };
    const verdict = await judge(stamp, Date.now(), groupAlive);
    return verdict.free ? undefined : { kind: "judged", verdict };
  } finally {
    closeAll(file);
  }
}

/** Tries to take slot `slot` of the lock; resolves the claim or the miss. */
export async function takeSlot(
  dir: string,
  layout: Layout,
  slot: number,
  request: LockRequest,
): Promise<FileClaim | Miss> {
  const path = layout.slotPath(slot);
  const lockFile = openLockFile(path, { create: true })!;
  let writeFile: Deno.FsFile | undefined;
  let kept = false;
  try {
    // Another holder may have replaced the file between open and flock.
    if (!lockFile.tryLockSync(true) || !isAt(path, lockFile)) {
      return { kind: "live" };
    }
    const contents = readContents(lockFile);
    const stamp = slotStampOf(contents);
    if (typeof stamp === "string") return { kind: "corrupt", path, why: stamp };
    const verdict = await judge(stamp, Date.now(), groupAlive);
    if (!verdict.free) return { kind: "judged", verdict };
    const token = await nextToken(
      dir,
      layout,
      request.limit,
      stamp.fence,
      request.signal,
      async (stored) => {
        for (let other = 0; other < stored; other++) {
          if (other !== slot && await probeSlot(layout.slotPath(other))) {
            return false;
          }
        }
        return true;
      },
    );
    writeFile = openLockFile(path, { write: true })!;
    const locked = lockFile.statSync();
    const writable = writeFile.statSync();
    if (locked.ino !== writable.ino || locked.dev !== writable.dev) {
      return { kind: "live" };
    }
    const now = Date.now();
    const mine: SlotStamp = {
      fence: token,
      owner: request.owner,
      node: request.node,
      since: now,
      leaseUntil: now + request.expiresInMs,
      guardUntil: now + request.guardMs,
      released: false,
    };
    const written = writeNext(writeFile, contents, slotRecord(mine));
    // A forced release may have renamed a fresh file in meanwhile.
    if (!isAt(path, lockFile)) return { kind: "live" };
    kept = true;
    return new FileClaim(
      request.name,
      slot,
      path,
      lockFile,
      writeFile,
      mine,
      written,
    );
  } finally {
    if (!kept) closeAll(lockFile, writeFile);
  }
}

/** A held slot of a file lock. */
export class FileClaim implements Claim {
  readonly token: bigint;
  #stamp: SlotStamp;
  #contents: Contents;
  #released = false;
  /** One file operation at a time: renewals, the group record and release share the descriptors. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Called once the descriptors are closed. */
  onClose: () => void = () => {};

  constructor(
    private readonly name: string,
    readonly slot: number,
    private readonly path: string,
    private readonly lockFile: Deno.FsFile,
    private readonly writeFile: Deno.FsFile,
    stamp: SlotStamp,
    contents: Contents,
  ) {
    this.token = stamp.fence;
    this.#stamp = stamp;
    this.#contents = contents;
  }

  #serial<T>(step: () => T | Promise<T>): Promise<T> {
    const run = this.#queue.then(step, step);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Checks that the slot is still this claim's; throws `LockLostError`. */
  #check(): void {
    if (this.#released) throw new LockLostError(this.name, "it was released");
    if (!isAt(this.path, this.lockFile)) {
      throw new LockLostError(
        this.name,
        "its lock file was removed or replaced (a forced release)",
      );
    }
    const now = readContents(this.writeFile);
    const stamp = slotStampOf(now);
    if (typeof stamp === "string" || stamp.owner !== this.#stamp.owner) {
      throw new LockLostError(this.name, "its lock file was rewritten");
    }
    this.#contents = now;
  }

  #write(stamp: SlotStamp): void {
    this.#contents = writeNext(
      this.writeFile,
      this.#contents,
      slotRecord(stamp),
    );
    this.#stamp = stamp;
  }

  renew(expiresInMs: number): Promise<void> {
    return this.#serial(() => {
      this.#check();
      this.#write({
        ...this.#stamp,
        leaseUntil: Date.now() + expiresInMs,
      });
    });
  }

  holdWhileGroup(pgid: number): Promise<void> {
    if (!Number.isSafeInteger(pgid) || pgid <= 1) {
      return Promise.reject(
        new RangeError(`A process group id must be above 1, not ${pgid}`),
      );
    }
    return this.#serial(async () => {
      const group: GroupRecord = await recordGroup(pgid);
      this.#check();
      this.#write({ ...this.#stamp, group });
    });
  }

  release(holdMs: number): Promise<void> {
    if (this.#released) return Promise.resolve();
    return this.#serial(() => {
      if (this.#released) return;
      try {
        this.#check();
        const now = Date.now();
        this.#write({
          ...this.#stamp,
          released: true,
          guardUntil: now + Math.max(0, holdMs),
          leaseUntil: undefined,
          group: undefined,
        });
      } finally {
        this.#released = true;
        // The flock goes first: a waiter woken by the last close finds it free.
        closeAll(this.lockFile, this.writeFile);
        this.onClose();
      }
    });
  }
}
