/**
 * The meta file of a lock name (`<base>.meta`): the name itself (hashed
 * bases can't be read back), the limit every holder must use, and the
 * fencing counter shared by all its slots. It is written with the same
 * crash-safe records as the slot stamps (stamp.ts), only under a short
 * `flock(2)` of its own that nobody holds for longer than one update, and
 * each counter update is synced to disk before the token is handed out.
 *
 * The next token is one above both the counter and the slot's own last
 * token, so that neither a lost meta file nor a lost slot file sends tokens
 * back. A meta file with no readable record is rebuilt from the highest
 * token in the name's slot files, since every token a job was given is
 * stamped in its slot first.
 *
 * @module
 */

import { LimitMismatchError } from "../../src/errors.ts";
import { openLockFile, peekLockFile } from "./dir.ts";
import type { Layout } from "./keys.ts";
import {
  type Contents,
  readContents,
  slotStampOf,
  writeNext,
} from "./stamp.ts";

/** What a meta file says. */
export interface Meta {
  /** The limit stored for the name, if any. */
  readonly limit?: number;
  /** The highest token handed out for the name. */
  readonly fence: bigint;
  /** Whether its content could not be read (it will be rebuilt). */
  readonly corrupt?: boolean;
}

function metaOf(contents: Contents): Meta {
  if (contents.kind === "empty") return { fence: 0n };
  if (contents.kind !== "record") return { fence: 0n, corrupt: true };
  const { fence, limit } = contents.value;
  if (typeof fence !== "string" || !/^\d{1,30}$/.test(fence)) {
    return { fence: 0n, corrupt: true };
  }
  return {
    fence: BigInt(fence),
    limit: Number.isSafeInteger(limit) ? limit as number : undefined,
  };
}

/** Reads the meta file without its lock (records are never half-read). */
export function readMeta(layout: Layout): Meta | undefined {
  const file = openLockFile(layout.metaPath);
  if (!file) return undefined;
  try {
    return metaOf(readContents(file));
  } finally {
    file.close();
  }
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/**
 * Runs `update` on the meta file under its flock, taken without blocking
 * a thread: a holder of the flock that was SIGSTOPped mid-update would
 * otherwise hang everyone. `update` resolves the new state, or undefined to
 * leave it.
 */
export async function withMeta<T>(
  layout: Layout,
  signal: AbortSignal,
  update: (meta: Meta) => Promise<{ write?: Meta; result: T }>,
): Promise<T> {
  const file = openLockFile(layout.metaPath, {
    write: true,
    create: true,
  })!;
  try {
    for (
      let pause = 1;
      !file.tryLockSync(true);
      pause = Math.min(pause * 2, 20)
    ) {
      signal.throwIfAborted();
      await sleep(pause);
    }
    const contents = readContents(file);
    const { write, result } = await update(metaOf(contents));
    if (write) {
      writeNext(file, contents, {
        name: layout.name,
        limit: write.limit,
        fence: String(write.fence),
      });
      await file.syncData();
    }
    return result;
  } finally {
    file.close();
  }
}

/** The highest token stamped in any slot file of the name. */
export async function highestSlotToken(
  dir: string,
  layout: Layout,
): Promise<bigint> {
  let highest = 0n;
  const prefix = layout.base;
  for await (const entry of Deno.readDir(dir)) {
    if (
      entry.name !== `${prefix}.lock` &&
      !(entry.name.startsWith(`${prefix}+`) && entry.name.endsWith(".lock"))
    ) continue;
    const file = peekLockFile(`${dir}/${entry.name}`);
    if (!file) continue;
    try {
      const stamp = slotStampOf(readContents(file));
      if (typeof stamp !== "string" && stamp.fence > highest) {
        highest = stamp.fence;
      }
    } finally {
      file.close();
    }
  }
  return highest;
}

/**
 * Takes the name's next fencing token for a holder of slot `slot` whose
 * last token there was `slotFence`, storing `limit`. Another stored limit
 * is refused with {@linkcode LimitMismatchError} unless `othersFree` says
 * every slot of it but `slot` is free, in which case the new limit
 * replaces it.
 */
export function nextToken(
  dir: string,
  layout: Layout,
  limit: number,
  slotFence: bigint,
  signal: AbortSignal,
  othersFree: (stored: number) => Promise<boolean>,
): Promise<bigint> {
  return withMeta(layout, signal, async (meta) => {
    if (
      meta.limit !== undefined && meta.limit !== limit &&
      !(await othersFree(meta.limit))
    ) {
      throw new LimitMismatchError(layout.name, limit, meta.limit);
    }
    let fence = meta.fence;
    if (meta.corrupt) fence = await highestSlotToken(dir, layout);
    const token = (fence > slotFence ? fence : slotFence) + 1n;
    return { write: { limit, fence: token }, result: token };
  });
}
