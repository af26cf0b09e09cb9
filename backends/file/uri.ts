/**
 * Where the file backend keeps its locks: a `file:///dir` URI, a `URL`, an
 * absolute path, or the per-user default. Everything is checked here, before
 * any file is touched, so a bad value is a `TypeError` (exit 64 from a flag,
 * 78 from a config file) and never "backend unavailable".
 *
 * The default directory is never a predictable name in a world-writable
 * place that someone else could create first: `$XDG_STATE_HOME/coolock`,
 * else `$HOME/.local/state/coolock` (relative values are ignored, as the XDG
 * spec says), else `/var/lib/coolock` for root, else `/tmp/coolock-<uid>`,
 * which the directory check (dir.ts) accepts only if it is this user's own
 * and private.
 *
 * @module
 */

import { isAbsolute, userStateDir } from "../../src/paths.ts";
import { parseBackendUri, redactUri } from "../../src/uri.ts";
import { currentUid } from "./dir.ts";

/** The parsed location of a file backend. */
export interface FileTarget {
  /** The lock directory, absolute. */
  readonly dir: string;
  /** How the backend is shown: `file:///dir`. */
  readonly display: string;
}

const isWindows = Deno.build.os === "windows";

/** The per-user default lock directory. */
export function defaultDir(): string {
  const state = userStateDir();
  if (state) return state;
  if (isWindows) {
    const local = Deno.env.get("LOCALAPPDATA");
    if (local) return `${local}\\coolock`;
  }
  const uid = currentUid();
  return uid === 0 ? "/var/lib/coolock" : `/tmp/coolock-${uid ?? "user"}`;
}

function checkPath(path: string, shown: string): string {
  if (path.includes("\0")) {
    throw new TypeError(`${shown} must not contain a NUL byte`);
  }
  if (!isAbsolute(path)) {
    throw new TypeError(`${shown} must be an absolute path`);
  }
  return path.length > 1 ? path.replace(/[\\/]+$/, "") || "/" : path;
}

function display(dir: string): string {
  return `file://${
    encodeURI(isWindows ? `/${dir.replaceAll("\\", "/")}` : dir)
  }`;
}

function fromUri(text: string): string {
  const shown = `File backend URI '${redactUri(text)}'`;
  const form = `${shown} must be file:///absolute/dir`;
  if (!/^file:\/\//i.test(text)) throw new TypeError(form);
  const uri = parseBackendUri(text, 0);
  if (uri.username !== "" || uri.password !== undefined) {
    throw new TypeError(`${shown} takes no user name or password`);
  }
  const [host, ...more] = uri.hosts;
  if (more.length > 0 || (host && (host.host !== "localhost" || host.port))) {
    throw new TypeError(`${form}: the file backend serves this host only`);
  }
  if ([...uri.params.keys()].length > 0) {
    throw new TypeError(`${shown} takes no query`);
  }
  if (uri.path === "") throw new TypeError(form);
  // file:///C:/locks names C:/locks, not /C:/locks.
  const path = isWindows && /^\/[A-Za-z]:/.test(uri.path)
    ? uri.path.slice(1)
    : uri.path;
  return checkPath(path, `${shown}: its path`);
}

/**
 * Parses where the locks live; throws `TypeError`, naming what is wrong
 * and never the URI's secrets.
 */
export function fileTarget(location?: string | URL): FileTarget {
  let dir: string;
  if (location === undefined) dir = defaultDir();
  else if (location instanceof URL || /^file:/i.test(location)) {
    dir = fromUri(String(location));
  } else if (location === "") {
    throw new TypeError("File backend directory must not be empty");
  } else {
    dir = checkPath(location, `File backend directory '${location}'`);
  }
  return { dir, display: display(dir) };
}
