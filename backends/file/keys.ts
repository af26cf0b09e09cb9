/**
 * The file backend's key layout: which files in the lock directory belong
 * to a lock name.
 *
 * - `<base>.lock` is slot 0, the only file of a mutex: the same file as in
 *   earlier releases, so an older coolock and this one exclude each other.
 * - `<base>+<k>.lock` is slot k (1 ≤ k < limit) of a semaphore.
 * - `<base>.meta` holds the name, its limit and its fencing counter.
 * - Temporary files start with `.`, which no base does.
 *
 * `<base>` is the name's percent-encoding (`encodeLockName`) while that is
 * at most {@linkcode MAX_PLAIN_BASE} bytes; a longer one (a name of 200
 * non-ASCII characters encodes to up to 1,800 bytes, and a file name may have
 * 255) becomes a readable prefix of the encoding, `~` and the SHA-256 of the
 * name in hex. The encoding never emits `+` or `~` (they are escaped), so
 * slot files, hashed bases and plain bases never collide.
 *
 * @module
 */

import { encodeLockName } from "../../src/names.ts";

/** The longest base kept as the plain encoding; longer ones are hashed. */
export const MAX_PLAIN_BASE = 240;

/** How much of the encoding a hashed base keeps in front, for people. */
const PREFIX = 170;

/** The files of one lock name. */
export interface Layout {
  /** The lock name. */
  readonly name: string;
  /** The file-name stem shared by the name's files. */
  readonly base: string;
  /** The name's meta file: its name, limit and fencing counter. */
  readonly metaPath: string;
  /** The file of slot `slot`. */
  slotPath(slot: number): string;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return Array.from(
    new Uint8Array(digest),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
}

/** The file-name stem of `name`. */
export async function baseOf(name: string): Promise<string> {
  const encoded = encodeLockName(name);
  if (encoded.length <= MAX_PLAIN_BASE) return encoded;
  // Cut before an escape that would be split: the prefix stays decodable.
  let prefix = encoded.slice(0, PREFIX);
  const escape = prefix.lastIndexOf("%");
  if (escape > PREFIX - 3) prefix = prefix.slice(0, escape);
  return `${prefix}~${await sha256Hex(name)}`;
}

/** The file layout of `name` in `dir`. */
export async function layoutOf(dir: string, name: string): Promise<Layout> {
  const base = await baseOf(name);
  return {
    name,
    base,
    metaPath: `${dir}/${base}.meta`,
    slotPath: (slot) =>
      slot === 0 ? `${dir}/${base}.lock` : `${dir}/${base}+${slot}.lock`,
  };
}

/** What a directory entry is, by its name. */
export type Entry =
  | { readonly kind: "meta"; readonly base: string }
  | { readonly kind: "slot"; readonly base: string; readonly slot: number };

/** Parses a directory entry's name; `undefined` for files of others. */
export function parseEntry(fileName: string): Entry | undefined {
  if (fileName.startsWith(".")) return undefined;
  if (fileName.endsWith(".meta")) {
    return { kind: "meta", base: fileName.slice(0, -5) };
  }
  const slot = /^([^+]+)(?:\+([1-9]\d{0,3}))?\.lock$/.exec(fileName);
  if (!slot) return undefined;
  return { kind: "slot", base: slot[1], slot: Number(slot[2] ?? 0) };
}

/**
 * The lock name of a plain base, or `undefined` for a hashed one (its
 * name is in its meta file) or one that is not an encoding at all.
 */
export function nameOfBase(base: string): string | undefined {
  if (!/^(?:[A-Za-z0-9_.-]|%[0-9A-F]{2})+$/.test(base)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < base.length;) {
    if (base[i] === "%") {
      bytes.push(parseInt(base.slice(i + 1, i + 3), 16));
      i += 3;
    } else bytes.push(base.charCodeAt(i++));
  }
  try {
    const name = new TextDecoder("utf-8", { fatal: true }).decode(
      new Uint8Array(bytes),
    );
    return encodeLockName(name) === base ? name : undefined;
  } catch {
    return undefined;
  }
}

/** A fresh temporary file name in `dir`, for a file built and renamed in. */
export function tempPath(dir: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  const suffix = Array.from(bytes, (b) => b.toString(16).padStart(2, "0"))
    .join("");
  return `${dir}/.coolock-${suffix}.tmp`;
}
