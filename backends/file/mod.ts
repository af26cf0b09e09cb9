/**
 * The file backend: `flock(2)` on one file per lock slot, for one host only.
 * The kernel drops a flock when its holder dies, so nothing gets stuck; a
 * crash-safe stamp in the file (stamp.ts) carries what must outlive the
 * holder: the guard end, the job's process group (group.ts) and a lease end
 * for the moment before the group is known. A per-name meta file (meta.ts)
 * holds the limit and the fencing counter. The directory must be one that
 * no other user can change (dir.ts).
 *
 * @module
 */

import type {
  Backend,
  CheckResult,
  Claim,
  LockRequest,
  LockStatus,
  Removal,
} from "../../src/backend.ts";
import {
  BackendUnavailableError,
  LimitMismatchError,
} from "../../src/errors.ts";
import { Holdings } from "../../src/holdings.ts";
import { FileClaim, type Miss, probeSlot, takeSlot } from "./claim.ts";
import { trustDirectory } from "./dir.ts";
import { groupAlive, type GroupRecord } from "./group.ts";
import { type Layout, layoutOf } from "./keys.ts";
import { readMeta, withMeta } from "./meta.ts";
import { checkDir, forceReleaseOf, lockNames, statusOf } from "./operate.ts";
import { fileTarget } from "./uri.ts";

export type {
  Backend,
  BackendCapabilities,
  CheckResult,
  Claim,
  HolderStatus,
  LockRequest,
  LockStatus,
  Removal,
} from "../../src/backend.ts";
import { pause } from "../../src/timing.ts";
export { UntrustedPathError } from "../../src/errors.ts";

/** What the last attempt learned about when the lock may free. */
interface Hint {
  /** The earliest time a slot frees by the clock (ms since the epoch). */
  readonly until?: number;
  /** Groups whose end frees a slot. */
  readonly groups: readonly GroupRecord[];
}

/** Waiters watch the slot files themselves up to this limit, else the directory. */
const WATCHED_SLOTS = 8;
/** How often a waiter looks at a dead holder's job group. */
const GROUP_POLL_MS = 50;

class FileBackend implements Backend {
  readonly scheme = "file";
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: 1,
    clock: "local",
    maxTtlMs: 366 * 86_400_000,
    listsLocks: true,
    storesLimit: true,
  } as const;
  readonly displayUri: string;
  readonly permissions: readonly Deno.PermissionDescriptor[];
  readonly #dir: string;
  readonly #open = new Set<FileClaim>();
  readonly #holdings = new Holdings();
  readonly #hints = new WeakMap<LockRequest, Hint>();
  #trusted?: string;

  constructor(dir: string, display: string) {
    this.#dir = dir;
    this.displayUri = display;
    const posix = Deno.build.os !== "windows";
    this.permissions = [
      { name: "read", path: dir },
      { name: "write", path: dir },
      ...(posix
        ? [
          { name: "sys", kind: "uid" } as const,
          // /proc, read through /bin/sh without --allow-all (group.ts).
          { name: "run", command: "/bin/sh" } as const,
        ]
        : []),
    ];
  }

  /** The trusted real path of the directory, created when missing. */
  #ready(): string {
    return this.#trusted ??= trustDirectory(this.#dir);
  }

  async #layout(name: string): Promise<{ dir: string; layout: Layout }> {
    const dir = this.#ready();
    return { dir, layout: await layoutOf(dir, name) };
  }

  /**
   * Refuses another limit than the stored one, unless no slot of the
   * stored one is held: then the new limit replaces it.
   */
  async #checkLimit(layout: Layout, request: LockRequest): Promise<void> {
    const meta = readMeta(layout);
    if (meta?.limit === undefined || meta.limit === request.limit) return;
    await withMeta(layout, request.signal, async (now) => {
      if (now.limit === undefined || now.limit === request.limit) {
        return { result: undefined };
      }
      for (let slot = 0; slot < now.limit; slot++) {
        if (await probeSlot(layout.slotPath(slot))) {
          throw new LimitMismatchError(layout.name, request.limit, now.limit);
        }
      }
      return { write: { ...now, limit: request.limit }, result: undefined };
    });
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { dir, layout } = await this.#layout(request.name);
    await this.#checkLimit(layout, request);
    const misses: Miss[] = [];
    for (let slot = 0; slot < request.limit; slot++) {
      request.signal.throwIfAborted();
      const got = await takeSlot(dir, layout, slot, request);
      if (!(got instanceof FileClaim)) {
        misses.push(got);
        continue;
      }
      this.#open.add(got);
      got.onClose = () => this.#open.delete(got);
      return this.#holdings.track(got, request);
    }
    const corrupt = misses.find((miss) => miss.kind === "corrupt");
    if (corrupt?.kind === "corrupt") {
      throw new BackendUnavailableError(
        this.displayUri,
        `lock file '${corrupt.path}' can't be read (${corrupt.why}), so it may hide a guard: free it with 'coolock release --force --lock ${request.name}'`,
      );
    }
    let until: number | undefined;
    const groups: GroupRecord[] = [];
    for (const miss of misses) {
      if (miss.kind !== "judged" || miss.verdict.free) continue;
      if (miss.verdict.group) groups.push(miss.verdict.group);
      if (miss.verdict.until !== undefined) {
        until = Math.min(until ?? Infinity, miss.verdict.until);
      }
    }
    this.#hints.set(request, { until, groups });
    return undefined;
  }

  /**
   * Wakes when the lock may have freed: a slot file closed after a write (a
   * release), removed or replaced; a guard or lease end passed; a dead
   * holder's job group ended. Renewals (writes without a close) wake nobody.
   */
  async waitForChange(
    request: LockRequest,
    signal: AbortSignal,
  ): Promise<void> {
    const { dir, layout } = await this.#layout(request.name);
    const hint = this.#hints.get(request);
    const stop = new AbortController();
    const done = AbortSignal.any([signal, stop.signal]);
    const slots = Array.from(
      { length: Math.min(request.limit, WATCHED_SLOTS + 1) },
      (_, slot) => layout.slotPath(slot),
    );
    const paths = request.limit > WATCHED_SLOTS ? [dir] : slots;
    // Where watching fails, the rejection makes the lifecycle poll instead.
    const watcher = Deno.watchFs(paths, { recursive: false });
    const close = () => {
      try {
        watcher.close();
      } catch { /* closed already */ }
    };
    done.addEventListener("abort", close, { once: true });
    const ours = (path: string) =>
      request.limit <= WATCHED_SLOTS ||
      path.startsWith(`${dir}/${layout.base}+`) ||
      path === layout.slotPath(0);
    const watched = (async () => {
      try {
        for await (const event of watcher) {
          if (event.kind === "modify") continue;
          if (event.paths.some(ours)) break;
        }
      } catch { /* closed */ }
    })();
    const timed = hint?.until === undefined
      ? undefined
      : pause(Math.max(0, hint.until - Date.now()) + 5, done);
    const ended = hint?.groups.length
      ? (async () => {
        while (!done.aborted) {
          for (const group of hint.groups) {
            if (!(await groupAlive(group))) return;
          }
          await pause(GROUP_POLL_MS, done);
        }
      })()
      : undefined;
    try {
      await Promise.race([watched, timed, ended].filter(Boolean));
    } finally {
      stop.abort();
      close();
    }
  }

  async status(
    name: string | undefined,
    _signal: AbortSignal,
  ): Promise<LockStatus[]> {
    const dir = this.#ready();
    const names = name === undefined ? await lockNames(dir) : [name];
    const statuses: LockStatus[] = [];
    for (const each of names) statuses.push(await statusOf(dir, each));
    return statuses;
  }

  async forceRelease(name: string, _signal: AbortSignal): Promise<Removal[]> {
    return await forceReleaseOf(this.#ready(), name);
  }

  check(_signal: AbortSignal): Promise<CheckResult[]> {
    return checkDir(this.#dir);
  }

  async close(): Promise<void> {
    await this.#holdings.releaseAll();
    for (const claim of this.#open) await claim.release(0).catch(() => {});
    this.#open.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The file backend, for one host: `flock(2)` on `<dir>/<name>.lock` (and
 * `<name>+<k>.lock` for the slots of a semaphore). Without an argument it
 * uses the per-user state directory (`$XDG_STATE_HOME/coolock`, else
 * `~/.local/state/coolock`; for root without a home, `/var/lib/coolock`).
 * The directory must belong to this user (or root) and not be writable by
 * others, else taking a lock throws {@linkcode UntrustedPathError}.
 *
 * @param location a `file:///dir` URI, a `URL`, or an absolute directory path
 * @throws {TypeError} when the location is not an absolute directory
 *
 * @example
 * ```ts
 * import { file, withLock } from "../../mod.ts";
 * const result = await withLock(
 *   { backend: file("file:///tmp/coolock-example"), guardTime: 0 },
 *   () => "done",
 * );
 * console.log(result.acquired); // true
 * ```
 */
export function file(location?: string | URL): Backend {
  const target = fileTarget(location);
  return new FileBackend(target.dir, target.display);
}
