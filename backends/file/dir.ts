/**
 * Directory trust, the way ssh and cron judge their files: coolock often
 * runs as root, and a lock directory that another user can write to would
 * let that user point a lock file at any of root's files (a symlink, a hard
 * link), pre-write a stamp that skips root's job or picks its fencing token,
 * or delete a held lock file so that a second job starts.
 *
 * - The lock directory, and each parent of it that Deno lets coolock read,
 *   must be owned by the user who runs coolock or by root, and not be
 *   writable by group or others, unless it is sticky (as `/tmp` is: others
 *   can't rename or delete what is not theirs there).
 * - A lock file is opened only after an `lstat` that shows a regular file
 *   (never a symlink), and what was opened must be that same file (device
 *   and inode), owned by this user, with one link; new files are created
 *   with `O_EXCL`, which never follows a symlink. Deno has no `O_NOFOLLOW`.
 *   These checks are what makes a sticky shared directory safe.
 * - Nothing is ever truncated (the stamp's records are written in place),
 *   and files are replaced only by a rename of a fresh file built in the
 *   same directory.
 *
 * An untrusted directory is a {@linkcode UntrustedPathError}: a setup
 * problem to fix on this host (exit 78 in the CLI), never a reason to run.
 *
 * The file backend's calls on the lock path (here, in stamp.ts, meta.ts and
 * claim.ts) are Deno's synchronous ones: each is one local syscall of
 * microseconds (`flock` is taken with LOCK_NB), while an async call is a
 * round trip to a worker thread, which on a loaded host costs more than the
 * syscall. They stay inside async functions, so callers don't change;
 * `fsync`, which can wait on the disk, stays async.
 *
 * @module
 */

import { UntrustedPathError } from "../../src/errors.ts";
import { tempPath } from "./keys.ts";

export { UntrustedPathError };

/** This user's id, or `undefined` where there are none (Windows). */
export function currentUid(): number | undefined {
  return Deno.build.os === "windows" ? undefined : Deno.uid() ?? undefined;
}

function modeText(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, "0")}`;
}

/** Why `info` (of a directory at `path`) can't be trusted, or undefined. */
function distrust(
  info: Deno.FileInfo,
  uid: number,
): string | undefined {
  if (!info.isDirectory) return "is not a directory";
  const owner = info.uid ?? uid;
  if (owner !== uid && owner !== 0) {
    return `is owned by uid ${owner}, not by you (uid ${uid}) or root`;
  }
  const mode = info.mode ?? 0;
  const sticky = (mode & 0o1000) !== 0;
  if ((mode & 0o022) !== 0 && !sticky) {
    const who = (mode & 0o002) !== 0 ? "other users" : "its group";
    return `is writable by ${who} (mode ${modeText(mode)}) and not sticky`;
  }
  return undefined;
}

function parentsOf(path: string): string[] {
  const parents: string[] = [];
  for (
    let at = path.lastIndexOf("/");
    at > 0;
    at = path.lastIndexOf("/", at - 1)
  ) {
    parents.push(path.slice(0, at));
  }
  if (path !== "/") parents.push("/");
  return parents;
}

/**
 * Makes sure `dir` exists (created 0700 when missing) and can be trusted;
 * resolves its real path, which every later path is built on, so that no
 * symlink is followed again.
 */
export function trustDirectory(dir: string): string {
  const uid = currentUid();
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const real = Deno.realPathSync(dir);
  if (uid === undefined) return real;
  const why = distrust(Deno.lstatSync(real), uid);
  if (why) {
    throw new UntrustedPathError(
      real,
      `Lock directory '${real}' can't be trusted: it ${why}`,
    );
  }
  for (const parent of parentsOf(real)) {
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(parent);
    } catch (error) {
      // A scoped --allow-read may not reach the parents: those go unchecked.
      if (error instanceof Deno.errors.NotCapable) break;
      throw error;
    }
    const problem = distrust(info, uid);
    if (problem) {
      throw new UntrustedPathError(
        real,
        `Lock directory '${real}' can't be trusted: its parent '${parent}' ${problem}`,
      );
    }
  }
  return real;
}

/** Why an opened lock file can't be trusted, or undefined. */
function fileDistrust(info: Deno.FileInfo): string | undefined {
  const uid = currentUid();
  if (!info.isFile) return "is not a regular file";
  if (uid === undefined) return undefined;
  if (info.uid !== uid) {
    return `is owned by uid ${info.uid}, not by you (uid ${uid})`;
  }
  if ((info.nlink ?? 1) !== 1) return "has other hard links";
  return undefined;
}

function untrustedFile(path: string, why: string): UntrustedPathError {
  return new UntrustedPathError(
    path,
    `Lock file '${path}' can't be trusted: it ${why}`,
  );
}

/** How to open a lock file. */
export interface OpenMode {
  /** Open for writing too (else read-only: enough for a flock). */
  readonly write?: boolean;
  /** Create it when missing (else resolve `undefined`). */
  readonly create?: boolean;
}

/**
 * Opens the lock file at `path` without following a symlink, and checks
 * that it is a regular file of this user's with one link. Resolves
 * `undefined` when it is missing and `create` is not set.
 */
export function openLockFile(
  path: string,
  { write = false, create = false }: OpenMode = {},
): Deno.FsFile | undefined {
  for (let attempt = 0; attempt < 5; attempt++) {
    let before: Deno.FileInfo | undefined;
    try {
      before = Deno.lstatSync(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    let file: Deno.FsFile;
    if (before === undefined) {
      if (!create) return undefined;
      try {
        // O_CREAT|O_EXCL: fails on any existing name, a symlink included.
        file = Deno.openSync(path, {
          read: true,
          write: true,
          createNew: true,
          mode: 0o600,
        });
      } catch (error) {
        if (error instanceof Deno.errors.AlreadyExists) continue;
        throw error;
      }
    } else {
      if (before.isSymlink) throw untrustedFile(path, "is a symbolic link");
      const why = fileDistrust(before);
      if (why) throw untrustedFile(path, why);
      try {
        file = Deno.openSync(path, { read: true, write });
      } catch (error) {
        // Removed (or replaced) between the lstat and the open: look again.
        if (error instanceof Deno.errors.NotFound) continue;
        throw error;
      }
    }
    const opened = file.statSync();
    if (
      before && (opened.ino !== before.ino || opened.dev !== before.dev)
    ) {
      file.close();
      continue;
    }
    const why = fileDistrust(opened);
    if (why) {
      file.close();
      throw untrustedFile(path, why);
    }
    return file;
  }
  throw new Error(`Lock file '${path}' keeps changing while it is opened`);
}

/**
 * Opens the lock file at `path` read-only as {@linkcode openLockFile} does,
 * or `undefined` when it is missing or can't be trusted: for scans of the
 * directory, which skip what they can't read.
 */
export function peekLockFile(path: string): Deno.FsFile | undefined {
  try {
    return openLockFile(path);
  } catch {
    return undefined;
  }
}

/** Whether `file` is still the file at `path` (it may have been replaced or removed). */
export function isAt(path: string, file: Deno.FsFile): boolean {
  try {
    const onDisk = Deno.lstatSync(path);
    const open = file.statSync();
    return onDisk.ino === open.ino && onDisk.dev === open.dev;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Puts a fresh file with `bytes` at `path`, replacing what is there in one
 * `rename(2)`: built as a new temporary file (O_EXCL) in the same
 * directory, so a reader sees the old file or the new one, never a part.
 */
export async function replaceFile(
  dir: string,
  path: string,
  bytes: Uint8Array,
): Promise<void> {
  const temp = tempPath(dir);
  const file = await Deno.open(temp, {
    write: true,
    createNew: true,
    mode: 0o600,
  });
  try {
    for (let done = 0; done < bytes.length;) {
      done += await file.write(bytes.subarray(done));
    }
    await file.syncData();
  } finally {
    file.close();
  }
  try {
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}
