/**
 * Reading a config file without being made to hang, to fill memory, or to
 * print what the file holds. coolock may run as root or through sudo, and a
 * path such as `-c /dev/zero`, `-c <fifo>` or `-c /etc/shadow` must give one
 * line and exit 78, not a 7 GB read, a hang, or the file's first line.
 *
 * - Only regular files are read, at most 1 MiB. `stat` comes first, so a
 *   FIFO or a device is refused before it is opened (an `open` of a FIFO
 *   would block until a writer came); the opened file is checked again with
 *   `fstat` and read only up to the limit. Deno can't open with
 *   `O_NONBLOCK`, so a FIFO swapped in between the `stat` and the `open`
 *   would still block: keep config files out of directories others can write.
 * - The text must be UTF-8 without NUL bytes. Nothing of it is ever quoted
 *   in an error (`syntax.ts` gives line numbers).
 * - A directory at one of the default paths (a checkout in `~/coolock`) is
 *   not a config file and is skipped; given with `--config`, it is an error.
 * - The calls are Deno's synchronous ones: start-up has nothing to overlap
 *   them with, and each async call would be a round trip to a worker thread.
 *
 * @module
 */

/** The largest config file read, in bytes. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** A config file's text and its permission bits. */
export interface ConfigFile {
  readonly text: string;
  /** `stat`'s mode bits, or `null` where the platform has none. */
  readonly mode: number | null;
}

/** Why a config file can't be read, in words after its name. */
export class ConfigFileProblem extends Error {
  override readonly name = "ConfigFileProblem";
}

function kindOf(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice || info.isBlockDevice) return "a device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

function describe(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotFound) return "it does not exist";
  return (error as Error).message.split("\n")[0];
}

/**
 * Reads the config file at `path`. Resolves `undefined` when there is no
 * such file (or, unless `explicit`, a directory there); rejects with
 * `ConfigFileProblem`, and `Deno.errors.NotCapable` for a missing permission.
 */
export function readConfigFile(
  path: string,
  explicit: boolean,
): Promise<ConfigFile | undefined> {
  try {
    return Promise.resolve(readConfigFileSync(path, explicit));
  } catch (error) {
    return Promise.reject(error);
  }
}

function readConfigFileSync(
  path: string,
  explicit: boolean,
): ConfigFile | undefined {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new ConfigFileProblem(`can't be read: ${describe(error)}`);
  }
  if (!info.isFile) {
    if (info.isDirectory && !explicit) return undefined;
    throw new ConfigFileProblem(
      `is ${kindOf(info)}, not a config file: only regular files are read`,
    );
  }
  if (info.size > MAX_CONFIG_BYTES) {
    throw new ConfigFileProblem(
      `is larger than ${MAX_CONFIG_BYTES} bytes (1 MiB), too large for a config file`,
    );
  }
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new ConfigFileProblem(`can't be read: ${describe(error)}`);
  }
  const bytes = new Uint8Array(MAX_CONFIG_BYTES + 1);
  let length = 0;
  try {
    const opened = file.statSync();
    if (!opened.isFile) {
      throw new ConfigFileProblem(
        `is ${kindOf(opened)}, not a config file: only regular files are read`,
      );
    }
    while (length < bytes.length) {
      const read = file.readSync(bytes.subarray(length));
      if (read === null) break;
      length += read;
    }
  } catch (error) {
    if (error instanceof ConfigFileProblem) throw error;
    throw new ConfigFileProblem(`can't be read: ${describe(error)}`);
  } finally {
    file.close();
  }
  if (length > MAX_CONFIG_BYTES) {
    throw new ConfigFileProblem(
      `is larger than ${MAX_CONFIG_BYTES} bytes (1 MiB), too large for a config file`,
    );
  }
  const content = bytes.subarray(0, length);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(
      content,
    );
  } catch {
    throw new ConfigFileProblem("is not UTF-8 text, so not a config file");
  }
  if (text.includes("\0")) {
    throw new ConfigFileProblem("holds NUL bytes, so it is not a config file");
  }
  return { text, mode: info.mode };
}
