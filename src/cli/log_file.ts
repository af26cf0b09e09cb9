/**
 * Opening the log file without being tricked into writing somewhere else.
 * coolock often runs as root, and a log file in a directory that another
 * user can write to is theirs to replace between two lines: with a symbolic
 * link to root's files, a hard link, a FIFO (an `open` that never returns)
 * or a device. Deno can't open with `O_NOFOLLOW` or `O_NONBLOCK`, so every
 * open here is `lstat`, then `open` of what was seen, then `fstat` of what
 * was opened, and the two must be the same regular file:
 *
 * - Only regular files are written (or `/dev/null`, which discards). Anything
 *   else is refused before it is opened, so a FIFO never blocks.
 * - A new file is created with `O_CREAT|O_EXCL`, which never follows a link.
 * - An existing file is opened without `O_CREAT`, and written only when
 *   `fstat` shows the inode that `lstat` showed.
 * - A symbolic link is followed only when its directory is trusted: owned
 *   by this user or root and writable by nobody else, and every directory
 *   above it owned by this user or root and writable by nobody else unless
 *   sticky (as `/tmp`).
 *   Its target is then checked by the same rules. The same holds for a
 *   link among the directories on the way, and the file is then opened by
 *   its directory's real path.
 * - In a directory that others can write to (sticky or not), the file must
 *   belong to this user and have no other hard link.
 * - Rotation only renames, and `rename(2)` replaces a link at the target
 *   instead of writing through it, so a planted `file.N` link is harmless.
 *
 * What remains: in a directory that others can write to (without the sticky
 * bit), they can swap in a FIFO between the `lstat` and the `open`, which
 * blocks coolock. Keep log files out of such directories.
 *
 * @module
 */

/** Why the log file can't be used, in the operator's words. */
export class LogFileRefused extends Error {
  override readonly name = "LogFileRefused";
}

/** Who could change a directory's entries besides this user and root. */
type Trust = "trusted" | "sticky" | "shared";

function currentUid(): number | null {
  try {
    return Deno.uid();
  } catch {
    return null;
  }
}

function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

/**
 * The trust of `dir`, judged with every directory above it: each must be
 * owned by this user or root and, if others can write to it, sticky (then
 * they can't rename what this user or root owns in it, such as the next
 * directory down). A sticky `dir` itself makes the file's own owner matter.
 */
function trustOf(dir: string, uid: number | null): Trust {
  let path: string;
  try {
    path = Deno.realPathSync(dir);
  } catch {
    return "shared";
  }
  let trust: Trust = "trusted";
  for (let first = true;; first = false) {
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(path);
    } catch {
      return "shared";
    }
    const mode = info.mode ?? 0o777;
    const owner = info.uid;
    if (owner !== 0 && (uid === null || owner !== uid)) return "shared";
    if ((mode & 0o022) !== 0) {
      if ((mode & 0o1000) === 0) return "shared";
      if (first) trust = "sticky";
    }
    if (path === "/") return trust;
    path = dirname(path);
  }
}

/**
 * A log file path, checked once for where it leads, then opened safely for
 * every line (so that a rotation by another process is seen).
 */
export class LogFile {
  /** The path written: the given one, or a trusted link's target. */
  readonly path: string;
  /** True for `/dev/null`: lines are dropped without opening anything. */
  readonly discards: boolean;
  readonly #trust: Trust;
  readonly #uid: number | null;

  /** Throws {@linkcode LogFileRefused} for a path coolock must not write. */
  constructor(path: string) {
    this.#uid = currentUid();
    let target = path;
    // Each link is judged where it sits, then its target the same way; the
    // directory is taken by its real path, so that a linked directory on
    // the way can't be swapped after the check.
    for (let hops = 0;; hops++) {
      checkLinksOnTheWay(target, this.#uid);
      target = resolveDir(target);
      if (!lstatOrUndefined(target)?.isSymlink) break;
      if (trustOf(dirname(target), this.#uid) !== "trusted") {
        throw new LogFileRefused(
          "it is a symbolic link in a directory that other users can write to",
        );
      }
      if (hops === 8) throw new LogFileRefused("it is a loop of links");
      const link = Deno.readLinkSync(target);
      target = link.startsWith("/") ? link : `${dirname(target)}/${link}`;
    }
    this.path = target;
    this.discards = target === "/dev/null";
    this.#trust = trustOf(dirname(target), this.#uid);
    if (!this.discards) this.#check(lstatOrUndefined(target));
  }

  /** Throws unless `info` (absent: not there yet) may be written. */
  #check(info: Deno.FileInfo | undefined): void {
    if (info === undefined) return;
    if (info.isSymlink) {
      throw new LogFileRefused("it was replaced by a symbolic link");
    }
    if (!info.isFile) {
      throw new LogFileRefused(
        info.isDirectory
          ? "it is a directory"
          : "it is not a regular file (a FIFO, socket or device)",
      );
    }
    if (this.#trust === "trusted") return;
    if (this.#uid !== null && info.uid !== this.#uid) {
      throw new LogFileRefused(
        "it belongs to another user, in a directory that other users can write to",
      );
    }
    if ((info.nlink ?? 1) > 1) {
      throw new LogFileRefused(
        "it has other hard links, in a directory that other users can write to",
      );
    }
  }

  /** Appends `bytes` in one `write`; throws when the file can't be used. */
  append(bytes: Uint8Array): void {
    if (this.discards) return;
    const handle = this.#open();
    try {
      if (bytes.length > 0) handle.writeSync(bytes);
    } finally {
      handle.close();
    }
  }

  #open(): Deno.FsFile {
    for (let attempt = 0; attempt < 3; attempt++) {
      const seen = lstatOrUndefined(this.path);
      this.#check(seen);
      if (seen === undefined) {
        try {
          // O_CREAT|O_EXCL: fails on anything there, a dangling link included.
          return Deno.openSync(this.path, {
            append: true,
            createNew: true,
            mode: 0o640,
          });
        } catch (error) {
          if (error instanceof Deno.errors.AlreadyExists) continue;
          throw error;
        }
      }
      let handle: Deno.FsFile;
      try {
        handle = Deno.openSync(this.path, { append: true });
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) continue;
        throw error;
      }
      const opened = handle.statSync();
      if (
        opened.isFile && opened.ino === seen.ino && opened.dev === seen.dev
      ) return handle;
      handle.close();
    }
    throw new LogFileRefused("it kept changing while coolock opened it");
  }

  /** The file's size, 0 when it is not there (or discards). */
  size(): number {
    if (this.discards) return 0;
    return lstatOrUndefined(this.path)?.size ?? 0;
  }

  /**
   * As Python's RotatingFileHandler: file → file.1 → … → file.N. Renames
   * only; a failed rename means that copy is missing or another process
   * rotated first.
   */
  rotate(copies: number): void {
    if (this.discards) return;
    for (let index = copies - 1; index >= 1; index--) {
      try {
        Deno.renameSync(`${this.path}.${index}`, `${this.path}.${index + 1}`);
      } catch { /* that copy does not exist yet */ }
    }
    try {
      Deno.renameSync(this.path, `${this.path}.1`);
    } catch { /* another process rotated it first */ }
  }
}

/**
 * Refuses a path whose directories pass through a symbolic link that sits
 * in a directory other users can write to: they could point it anywhere.
 */
function checkLinksOnTheWay(path: string, uid: number | null): void {
  const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  const parts = dirname(absolute).split("/").filter((part) => part !== "");
  let prefix = "";
  for (const part of parts) {
    const parent = prefix || "/";
    prefix += `/${part}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(prefix);
    } catch {
      return; // not there: the open fails with "directory does not exist"
    }
    if (info.isSymlink && trustOf(parent, uid) !== "trusted") {
      throw new LogFileRefused(
        `its directory goes through '${prefix}', a symbolic link in a directory that other users can write to`,
      );
    }
  }
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** `path` with its directory's real path, or as given when that can't be had. */
function resolveDir(path: string): string {
  try {
    const dir = Deno.realPathSync(dirname(path));
    return `${dir === "/" ? "" : dir}/${basename(path)}`;
  } catch {
    return path;
  }
}

function lstatOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
