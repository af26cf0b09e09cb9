/**
 * ZooKeeper result codes and stat fields, as the zookeeper backend reads
 * them from node-zookeeper-client.
 *
 * @module
 */

// @ts-types="npm:@types/node-zookeeper-client@1.1.0"
import type * as Zk from "npm:node-zookeeper-client@1.1.3";

/**
 * The node-zookeeper-client module, as the backend imports it.
 *
 * @example
 * ```ts
 * import type { ZkModule } from "./client.ts";
 * const modes = (zk: ZkModule) => zk.CreateMode.EPHEMERAL_SEQUENTIAL;
 * ```
 */
export type ZkModule = typeof Zk;

/**
 * A node's metadata, as ZooKeeper returns it.
 *
 * @example
 * ```ts
 * import { bigintOf, type ZkStat } from "./client.ts";
 * const created = (stat: ZkStat) => bigintOf(stat.czxid);
 * ```
 */
export type ZkStat = Zk.Stat;

/**
 * The ZooKeeper result codes that the lock recipe handles itself; calls
 * reject with the client's exception for these, and with
 * `BackendUnavailableError` for everything else.
 *
 * @example
 * ```ts
 * import { codeOf, ZkCode } from "./client.ts";
 * const missing = (error: unknown) => codeOf(error) === ZkCode.NO_NODE;
 * ```
 */
export const ZkCode = {
  NO_NODE: -101,
  BAD_VERSION: -103,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
} as const;

/**
 * The result code of a ZooKeeper exception, or `undefined`.
 *
 * @example
 * ```ts
 * import { codeOf } from "./client.ts";
 * console.log(codeOf(new Error("x"))); // undefined
 * ```
 */
export function codeOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/**
 * A rejection handler that swallows the given result codes and rethrows
 * anything else.
 *
 * @example
 * ```ts
 * import { ignore, ZkCode } from "./client.ts";
 * await Promise.reject({ code: ZkCode.NO_NODE }).catch(ignore(ZkCode.NO_NODE));
 * ```
 */
export function ignore(...codes: number[]): (error: unknown) => void {
  return (error) => {
    if (!codes.includes(codeOf(error) ?? 0)) throw error;
  };
}

/**
 * A big-endian integer of a stat (czxid, mtime), as a bigint.
 *
 * @example
 * ```ts
 * import { bigintOf } from "./client.ts";
 * console.log(bigintOf(new Uint8Array([0, 1]))); // 1n
 * ```
 */
export function bigintOf(bytes: Uint8Array): bigint {
  return bytes.reduce((sum, byte) => (sum << 8n) | BigInt(byte), 0n);
}
