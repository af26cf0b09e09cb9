/**
 * The operator's calls on the file backend: `status` (read only, it takes
 * no flock, so it never makes a contender miss), `forceRelease` and
 * `check`.
 *
 * `status` judges each slot's stamp as a contender would, and asks
 * /proc/locks whether a live process holds its flock. "Lease left" is shown
 * only for a holder without a recorded job group (a library caller): that
 * is how long the slot would stay held if it died now; a recorded group
 * holds the slot for as long as it lives.
 *
 * `forceRelease` can't break another process's flock. A slot whose flock it
 * gets (its holder is dead) is stamped released in place, dropping a guard,
 * a lease end and a group record. A slot whose flock is held is replaced by
 * a fresh file (a rename) stamped released with the same token, so the
 * holder's next renewal finds another file at the path and loses the lock.
 * The fencing counter in the meta file is never touched.
 *
 * @module
 */

import type {
  CheckResult,
  HolderStatus,
  LockStatus,
  Removal,
} from "../../src/backend.ts";
import { UntrustedPathError } from "../../src/errors.ts";
import {
  currentUid,
  openLockFile,
  peekLockFile,
  replaceFile,
  trustDirectory,
} from "./dir.ts";
import { flockKey, groupAlive, groupTracking, heldFlocks } from "./group.ts";
import { type Layout, layoutOf, nameOfBase, parseEntry } from "./keys.ts";
import { type Meta, readMeta } from "./meta.ts";
import {
  encodeRecord,
  FRESH,
  judge,
  readContents,
  slotRecord,
  type SlotStamp,
  slotStampOf,
  writeNext,
} from "./stamp.ts";

/** The slots worth looking at: the stored limit, and at least slot 0. */
function slotsOf(layout: Layout): {
  limit?: number;
  fence: bigint;
  count: number;
} {
  let meta: Meta | undefined;
  try {
    meta = readMeta(layout);
  } catch { /* unreadable: as if absent */ }
  return {
    limit: meta?.limit,
    fence: meta?.fence ?? 0n,
    count: Math.max(1, meta?.limit ?? 1),
  };
}

function describe(stamp: SlotStamp): string {
  return `node ${stamp.node ?? "?"}, owner ${stamp.owner ?? "?"}`;
}

/** `status` of one lock. */
export async function statusOf(dir: string, name: string): Promise<LockStatus> {
  const layout = await layoutOf(dir, name);
  const { limit, fence, count } = slotsOf(layout);
  const flocks = await heldFlocks();
  const holders: HolderStatus[] = [];
  let lastToken = fence;
  const now = Date.now();
  for (let slot = 0; slot < count; slot++) {
    const file = openLockFile(layout.slotPath(slot));
    if (!file) continue;
    try {
      const live = flocks?.has(flockKey(await file.stat())) ?? false;
      const stamp = slotStampOf(readContents(file));
      if (typeof stamp === "string") {
        // Unreadable: nobody may take it until it is forced free.
        holders.push({ slot, state: "held" });
        continue;
      }
      if (stamp.fence > lastToken) lastToken = stamp.fence;
      const verdict = await judge(stamp, now, groupAlive);
      const liveHolder = live && !stamp.released;
      if (!liveHolder && verdict.free) continue;
      const state = liveHolder || verdict.free ? "held" : verdict.state;
      const leaseLeft = !stamp.released && !stamp.group
        ? (stamp.leaseUntil ?? 0) - now
        : 0;
      holders.push({
        slot,
        state,
        node: stamp.node,
        owner: stamp.owner,
        since: stamp.since === undefined ? undefined : new Date(stamp.since),
        token: stamp.fence > 0n ? stamp.fence : undefined,
        leaseLeftMs: state === "held" && leaseLeft > 0 ? leaseLeft : undefined,
        guardLeftMs: stamp.guardUntil > now
          ? stamp.guardUntil - now
          : undefined,
      });
    } finally {
      file.close();
    }
  }
  return {
    name,
    limit,
    holders,
    lastToken: lastToken > 0n ? lastToken : undefined,
  };
}

/** The names of every lock in `dir`, from meta files and older slot files. */
export async function lockNames(dir: string): Promise<string[]> {
  const names = new Set<string>();
  try {
    for await (const entry of Deno.readDir(dir)) {
      const parsed = parseEntry(entry.name);
      if (!parsed) continue;
      if (parsed.kind === "meta") {
        const file = peekLockFile(`${dir}/${entry.name}`);
        if (!file) continue;
        try {
          const contents = readContents(file);
          const name = contents.kind === "record" ? contents.value.name : "";
          if (typeof name === "string" && name !== "") names.add(name);
        } finally {
          file.close();
        }
      } else if (parsed.slot === 0) {
        const name = nameOfBase(parsed.base);
        if (name !== undefined) names.add(name);
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return [...names].sort();
}

/** `forceRelease` of one lock. */
export async function forceReleaseOf(
  dir: string,
  name: string,
): Promise<Removal[]> {
  const layout = await layoutOf(dir, name);
  const { fence, count } = slotsOf(layout);
  const removed: Removal[] = [];
  const now = Date.now();
  for (let slot = 0; slot < count; slot++) {
    const path = layout.slotPath(slot);
    const lockFile = openLockFile(path);
    if (!lockFile) continue;
    let writeFile: Deno.FsFile | undefined;
    try {
      const contents = readContents(lockFile);
      const parsed = slotStampOf(contents);
      const stamp = typeof parsed === "string" ? FRESH : parsed;
      const carried = stamp.fence > fence ? stamp.fence : fence;
      const freed: SlotStamp = {
        ...stamp,
        fence: carried,
        released: true,
        forced: true,
        guardUntil: 0,
        leaseUntil: undefined,
        group: undefined,
      };
      const where = count > 1 ? `slot ${slot} of '${name}'` : `'${name}'`;
      if (!(await lockFile.tryLock(true))) {
        if (stamp.group) {
          removed.push({
            what: "job group",
            detail:
              `process group ${stamp.group.pgid} of ${where}: it is ended when its coolock loses the lock`,
          });
        }
        removed.push({
          what: "lease",
          detail: `${where}, held by ${
            describe(stamp)
          }: it loses the lock at its next renewal`,
        });
        await replaceFile(dir, path, encodeRecord(1, slotRecord(freed)));
        continue;
      }
      if (typeof parsed === "string") {
        removed.push({
          what: "unreadable stamp",
          detail: `${path}: ${parsed}`,
        });
      } else {
        const verdict = await judge(stamp, now, groupAlive);
        if (verdict.free) continue;
        if (verdict.state === "held" && verdict.group) {
          removed.push({
            what: "job group",
            detail:
              `process group ${verdict.group.pgid} of ${where}, still running, of dead ${
                describe(stamp)
              }`,
          });
        } else if (verdict.state === "held") {
          removed.push({
            what: "lease",
            detail: `${where}, of dead ${describe(stamp)}, ${
              Math.ceil((stamp.leaseUntil! - now) / 1000)
            } s left`,
          });
        }
        if (stamp.guardUntil > now) {
          removed.push({
            what: "guard",
            detail: `${where}, ${
              Math.ceil((stamp.guardUntil - now) / 1000)
            } s left, set by ${describe(stamp)}`,
          });
        }
      }
      writeFile = openLockFile(path, { write: true })!;
      writeNext(writeFile, contents, slotRecord(freed));
    } finally {
      // The flock first: a waiter woken by the writable close finds it free.
      lockFile.close();
      writeFile?.close();
    }
  }
  return removed;
}

/** `check`: the directory, its trust, flock, group tracking, the host. */
export async function checkDir(dir: string): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const started = performance.now();
  let real: string;
  try {
    real = trustDirectory(dir);
  } catch (error) {
    if (!(error instanceof UntrustedPathError)) {
      return [{
        name: "reachable",
        status: "fail",
        detail: `lock directory '${dir}' can't be created or read: ${
          (error as Error).message
        }`,
      }];
    }
    return [
      {
        name: "reachable",
        status: "ok",
        detail: `lock directory '${dir}' exists`,
      },
      { name: "permissions", status: "fail", detail: error.message },
    ];
  }
  results.push({
    name: "reachable",
    status: "ok",
    detail: `lock directory '${real}' exists`,
    ms: performance.now() - started,
  });
  results.push({
    name: "credentials",
    status: "ok",
    detail: `none needed: lock files belong to uid ${currentUid() ?? "?"}`,
  });
  results.push(await probe(real));
  results.push(groupCheck());
  results.push(versionCheck());
  results.push({
    name: "clock",
    status: "ok",
    ms: 0,
    detail:
      "guard times and lease ends use this host's clock only; other hosts are not coordinated, and a step of this clock shortens or stretches them",
  });
  return results;
}

/** Creates, writes, flocks and removes a probe file in the directory. */
async function probe(dir: string): Promise<CheckResult> {
  const path = `${dir}/.coolock-check-${crypto.randomUUID()}`;
  try {
    const file = await Deno.open(path, {
      read: true,
      write: true,
      createNew: true,
      mode: 0o600,
    });
    try {
      await file.write(new Uint8Array([0x0a]));
      if (!(await file.tryLock(true))) throw new Error("flock(2) failed");
    } finally {
      file.close();
      await Deno.remove(path).catch(() => {});
    }
    return {
      name: "permissions",
      status: "ok",
      detail:
        `trusted (yours, not writable by others); can create, write and flock files in '${dir}'`,
    };
  } catch (error) {
    return {
      name: "permissions",
      status: "fail",
      detail: `can't create and lock a file in '${dir}': ${
        (error as Error).message
      }`,
    };
  }
}

function groupCheck(): CheckResult {
  const how = groupTracking();
  const detail = {
    deno:
      "job groups are tracked through /proc: a killed coolock's lock stays held until its job's process group is gone",
    sh:
      "job groups are tracked through /proc, read by /bin/sh (Deno reads /proc only with --allow-all)",
    kill:
      "no /proc: job groups are probed with kill -0, which counts zombies as alive (the lock may stay held longer)",
    none:
      "no process groups here: a killed coolock's lock stays held until its lease end",
  }[how];
  return { name: "groups", status: how === "none" ? "warn" : "ok", detail };
}

function versionCheck(): CheckResult {
  let release = "";
  try {
    release = Deno.readTextFileSync("/proc/sys/kernel/osrelease").trim();
  } catch {
    try {
      release = Deno.osRelease();
    } catch { /* no permission */ }
  }
  return {
    name: "version",
    status: "ok",
    detail: `${Deno.build.os} ${release || "(release n/a)"}, flock(2)`,
  };
}
