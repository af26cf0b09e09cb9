/**
 * The guard record of the zookeeper backend. The ephemeral lock node dies
 * with its session, so the winner writes `{owner, guardMs}` into the
 * persistent parent node at acquisition. It holds until the parent's mtime +
 * guardMs, judged against a fresh server write (the contender rewrites its
 * own node and reads its mtime), never the local clock, so it outlives a
 * holder killed by SIGKILL. A parent is deleted, by version and only when it
 * has no children, once its guard record has lapsed.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { LockRequest } from "../../src/backend.ts";
import { bigintOf, ignore, ZkCode, type ZkStat } from "./client.ts";
import type { ZkSession } from "./session.ts";

function guardOf(data: Uint8Array): number {
  try {
    const guard = JSON.parse(new TextDecoder().decode(data));
    return typeof guard?.guardMs === "number" ? guard.guardMs : 0;
  } catch {
    return 0;
  }
}

/**
 * How many milliseconds the parent's guard record still holds, by the
 * server's clock: 0 or less when there is none or it has lapsed. Rewrites
 * the contender's own node at `path` to read the server's time.
 *
 * @example
 * ```ts ignore
 * import { guardRemaining } from "./guard.ts";
 * const { data, stat } = await session.getData(parent);
 * const left = await guardRemaining(session, path, owner, data, stat);
 * ```
 */
export async function guardRemaining(
  session: ZkSession,
  path: string,
  owner: string,
  data: Uint8Array,
  parentStat: ZkStat,
): Promise<number> {
  const heldGuardMs = guardOf(data);
  if (heldGuardMs <= 0) return 0;
  const now = await session.setData(path, Buffer.from(owner), -1);
  return Number(bigintOf(parentStat.mtime)) + heldGuardMs -
    Number(bigintOf(now.mtime));
}

/**
 * Writes the winner's guard record into the parent (or clears a stale one),
 * by the parent's version. Resolves when the record lapses by the server's
 * clock (0 without one) and the parent's version after the write.
 *
 * @example
 * ```ts ignore
 * import { writeGuard } from "./guard.ts";
 * const { guardEnd } = await writeGuard(session, parent, stat, data, request);
 * ```
 */
export async function writeGuard(
  session: ZkSession,
  parent: string,
  parentStat: ZkStat,
  data: Uint8Array,
  request: LockRequest,
): Promise<{ guardEnd: number; parentVersion: number }> {
  let guardEnd = 0;
  let parentVersion = parentStat.version;
  if (request.guardMs > 0 || data.length > 0) {
    const record = request.guardMs > 0
      ? Buffer.from(
        JSON.stringify({ owner: request.owner, guardMs: request.guardMs }),
      )
      : Buffer.alloc(0);
    const written = await session.setData(
      parent,
      record,
      parentStat.version,
      request.signal,
    );
    parentVersion = written.version;
    if (request.guardMs > 0) {
      guardEnd = Number(bigintOf(written.mtime)) + request.guardMs;
    }
  }
  return { guardEnd, parentVersion };
}

/**
 * Whether a guard record that lapses at `guardEnd` (server ms) has lapsed,
 * judged by a fresh write to the holder's own node.
 *
 * @example
 * ```ts ignore
 * import { guardLapsed } from "./guard.ts";
 * if (await guardLapsed(session, path, guardEnd)) console.log("lapsed");
 * ```
 */
export async function guardLapsed(
  session: ZkSession,
  path: string,
  guardEnd: number,
): Promise<boolean> {
  const now = await session.setData(path, Buffer.alloc(0), -1);
  return Number(bigintOf(now.mtime)) >= guardEnd;
}

/**
 * Deletes a lock's parent unless a contender came or its guard changed.
 *
 * @example
 * ```ts ignore
 * import { tidyParent } from "./guard.ts";
 * await tidyParent(session, "/coolock/report", stat.version);
 * ```
 */
export function tidyParent(
  session: ZkSession,
  parent: string,
  version: number,
): Promise<void> {
  return session.remove(parent, version).catch(
    ignore(ZkCode.NOT_EMPTY, ZkCode.NO_NODE, ZkCode.BAD_VERSION),
  );
}
