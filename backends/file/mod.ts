/**
 * The file backend: `flock(2)` on one file per lock name, for one host only.
 * The kernel drops the lock when the holder dies, so nothing gets stuck; a
 * stamp inside the file carries what must outlive the holder (the guard-time
 * end and the fencing counter).
 *
 * @module
 */

import {
  type Backend,
  type Claim,
  LockLostError,
  type LockRequest,
} from "../../src/backend.ts";
import { Holdings } from "../../src/holdings.ts";
import { encodeLockName } from "../../src/names.ts";
import { redactUri } from "../../src/uri.ts";

interface Stamp {
  owner: string;
  guardUntil: number;
  fence: string;
}

function defaultDir(): string {
  const state = Deno.env.get("XDG_STATE_HOME");
  const home = Deno.env.get("HOME");
  if (state) return `${state}/coolock`;
  if (home) return `${home}/.local/state/coolock`;
  const local = Deno.env.get("LOCALAPPDATA");
  if (local) return `${local}\\coolock`;
  return `/tmp/coolock-${Deno.uid() ?? "user"}`;
}

function dirOf(location: string | URL | undefined): string {
  if (location === undefined) return defaultDir();
  if (location instanceof URL || /^file:/i.test(location)) {
    const url = new URL(location);
    if (
      url.protocol !== "file:" || (url.host !== "" && url.host !== "localhost")
    ) {
      throw new TypeError(
        `File backend URI '${
          redactUri(url.href)
        }' must be file:///absolute/dir`,
      );
    }
    if (url.search !== "") {
      throw new TypeError(
        `File backend URI '${redactUri(url.href)}' takes no query`,
      );
    }
    const path = decodeURIComponent(url.pathname);
    // file:///C:/locks names C:/locks, not /C:/locks.
    return Deno.build.os === "windows" && /^\/[A-Za-z]:/.test(path)
      ? path.slice(1)
      : path;
  }
  if (location === "") {
    throw new TypeError("File backend directory must not be empty");
  }
  return location;
}

async function writeStamp(lockFile: Deno.FsFile, stamp: Stamp): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(stamp) + "\n");
  await lockFile.truncate(0);
  await lockFile.seek(0, Deno.SeekMode.Start);
  for (let done = 0; done < bytes.length;) {
    done += await lockFile.write(bytes.subarray(done));
  }
}

async function sameFile(path: string, lockFile: Deno.FsFile): Promise<boolean> {
  try {
    const [onDisk, open] = await Promise.all([
      Deno.stat(path),
      lockFile.stat(),
    ]);
    return onDisk.ino === open.ino && onDisk.dev === open.dev;
  } catch {
    return false;
  }
}

class FileClaim implements Claim {
  /** Slots other than 0 come with the semaphore (issue 16). */
  readonly slot = 0;
  constructor(
    readonly token: bigint,
    private readonly name: string,
    private readonly path: string,
    private readonly lockFile: Deno.FsFile,
    private readonly owner: string,
    private readonly onClose: () => void,
  ) {}

  #released = false;

  async #checkOwned(): Promise<Stamp> {
    if (this.#released) throw new LockLostError(this.name, "it was released");
    const stamp = await readStamp(this.lockFile);
    if (
      !(await sameFile(this.path, this.lockFile)) || stamp?.owner !== this.owner
    ) {
      throw new LockLostError(
        this.name,
        "the lock file was removed or rewritten by someone else",
      );
    }
    return stamp;
  }

  async renew(): Promise<void> {
    await this.#checkOwned();
  }

  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    try {
      const stamp = await this.#checkOwned();
      await writeStamp(this.lockFile, {
        ...stamp,
        guardUntil: Date.now() + holdMs,
      });
    } finally {
      this.#released = true;
      this.lockFile.close();
      this.onClose();
    }
  }
}

async function readStamp(lockFile: Deno.FsFile): Promise<Stamp | undefined> {
  const { size } = await lockFile.stat();
  const bytes = new Uint8Array(size);
  await lockFile.seek(0, Deno.SeekMode.Start);
  for (let done = 0; done < size;) {
    const read = await lockFile.read(bytes.subarray(done));
    if (read === null) break;
    done += read;
  }
  try {
    const stamp = JSON.parse(new TextDecoder().decode(bytes));
    return typeof stamp?.fence === "string" ? stamp : undefined;
  } catch {
    return undefined;
  }
}

class FileBackend implements Backend {
  readonly scheme = "file";
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: 1,
    clock: "local",
    maxTtlMs: 366 * 86_400_000,
    listsLocks: false,
    storesLimit: false,
  } as const;
  readonly displayUri: string;
  readonly #open = new Set<Deno.FsFile>();
  readonly #holdings = new Holdings();

  constructor(private readonly dir: string) {
    this.displayUri = `file://${encodeURI(dir)}`;
  }

  #pathOf(name: string): string {
    return `${this.dir}/${encodeLockName(name)}.lock`;
  }

  /**
   * Wakes on any change to the lock file (a release rewrites its stamp and
   * closes it). A holder that dies changes nothing; the lifecycle's polls
   * cover that case.
   */
  async waitForChange(
    request: LockRequest,
    signal: AbortSignal,
  ): Promise<void> {
    // Where watching fails, the rejection makes the lifecycle poll instead.
    const watcher = Deno.watchFs(this.#pathOf(request.name), {
      recursive: false,
    });
    const stop = () => watcher.close();
    signal.addEventListener("abort", stop, { once: true });
    try {
      for await (const _event of watcher) break;
    } catch {
      /* closed by the signal */
    } finally {
      signal.removeEventListener("abort", stop);
      try {
        watcher.close();
      } catch { /* already closed */ }
    }
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    await Deno.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const path = this.#pathOf(request.name);
    const lockFile = await Deno.open(path, {
      read: true,
      write: true,
      create: true,
      mode: 0o600,
    });
    let kept = false;
    try {
      // Another holder may have replaced the file between open and lock.
      if (
        !(await lockFile.tryLock(true)) || !(await sameFile(path, lockFile))
      ) return undefined;
      const previous = await readStamp(lockFile);
      if (previous && previous.guardUntil > Date.now()) return undefined;
      const token = BigInt(previous?.fence ?? "0") + 1n;
      await writeStamp(lockFile, {
        owner: request.owner,
        guardUntil: Date.now() + request.guardMs,
        fence: String(token),
      });
      kept = true;
      this.#open.add(lockFile);
      return this.#holdings.track(
        new FileClaim(
          token,
          request.name,
          path,
          lockFile,
          request.owner,
          () => this.#open.delete(lockFile),
        ),
        request,
      );
    } finally {
      if (!kept) lockFile.close();
    }
  }

  async close(): Promise<void> {
    await this.#holdings.releaseAll();
    for (const lockFile of this.#open) lockFile.close();
    this.#open.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The file backend, for one host: `flock(2)` on `<dir>/<name>.lock`. Without
 * an argument it uses the per-user state directory
 * (`$XDG_STATE_HOME/coolock`, else `~/.local/state/coolock`).
 *
 * @param location a `file:///dir` URI, a `URL`, or a directory path
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
  return new FileBackend(dirOf(location));
}
