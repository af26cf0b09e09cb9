/**
 * The few etcd calls the lock recipe needs (`etcd_lock.ts`); the `etcd`
 * backend implements them on the JSON gateway, `etcd3` on gRPC.
 *
 * @module
 */

/**
 * What a key holds at one revision.
 *
 * @example
 * ```ts
 * import type { KeyState } from "./ops.ts";
 * const token = (state: KeyState) => state.createRevision;
 * ```
 */
export interface KeyState {
  /** The revision that created the key: the fencing token. */
  readonly createRevision: bigint;
  /** The owner that the key names. */
  readonly value: string;
  /** The store revision at which it was read. */
  readonly revision: bigint;
}

/**
 * A key as its owner put it: only while it still holds `value` and was
 * created at `createRevision` is it that owner's.
 *
 * @example
 * ```ts
 * import type { OwnedKey } from "./ops.ts";
 * const mine: OwnedKey = { key: "coolock/a/1f", value: "node-1:ab", createRevision: 7n };
 * ```
 */
export interface OwnedKey {
  /** The key. */
  readonly key: string;
  /** The owner it holds. */
  readonly value: string;
  /** The revision that created it. */
  readonly createRevision: bigint;
}

/**
 * A put of a key with a lease, for {@linkcode EtcdOps.create}.
 *
 * @example
 * ```ts
 * import type { LeasedPut } from "./ops.ts";
 * const put: LeasedPut = { key: "coolock/a/1f", value: "node-1:ab", lease: "31" };
 * ```
 */
export interface LeasedPut {
  /** The key. */
  readonly key: string;
  /** The owner it holds. */
  readonly value: string;
  /** The lease id, decimal. */
  readonly lease: string;
  /** Put only when no key exists under this prefix. */
  readonly ifEmpty?: string;
}

/**
 * The first change to a watched key.
 *
 * @example
 * ```ts
 * import type { KeyChange } from "./ops.ts";
 * const gone = (change: KeyChange) => change.kind === "delete";
 * ```
 */
export type KeyChange =
  | { readonly kind: "put"; readonly value: string; readonly revision: bigint }
  | { readonly kind: "delete"; readonly revision: bigint };

/**
 * The etcd calls of the recipe; each backend implements them on its own
 * client. Every call honours `signal` and its own call timeout.
 *
 * @example
 * ```ts
 * import type { EtcdOps } from "./ops.ts";
 * async function ttlLeft(ops: EtcdOps, lease: string): Promise<number> {
 *   return await ops.keepAlive(lease, AbortSignal.timeout(1_000));
 * }
 * ```
 */
export interface EtcdOps {
  /** Grants a lease; resolves its id and the TTL the server granted. */
  grant(ttlSeconds: number, signal: AbortSignal): Promise<[string, number]>;
  /** Refreshes a lease; resolves its TTL in seconds, 0 when it is gone. */
  keepAlive(lease: string, signal: AbortSignal): Promise<number>;
  /** Revokes a lease (deleting its keys); a lease already gone is fine. */
  revoke(lease: string, signal: AbortSignal): Promise<void>;
  /**
   * Puts the key with its lease unless it exists, and reads it back. With
   * `ifEmpty`, puts it only when no key exists under that prefix, else
   * resolves `"held"`. Resolves `undefined` when the lease is gone.
   */
  create(
    put: LeasedPut,
    signal: AbortSignal,
  ): Promise<KeyState | "held" | undefined>;
  /** Reads one key. */
  read(key: string, signal: AbortSignal): Promise<KeyState | undefined>;
  /** The key under `prefix` with the highest create revision below `below`. */
  predecessor(
    prefix: string,
    below: bigint,
    signal: AbortSignal,
  ): Promise<{ key: string; revision: bigint } | undefined>;
  /** Puts the key again with another lease if it is still the owner's. */
  replace(held: OwnedKey, lease: string, signal: AbortSignal): Promise<boolean>;
  /** Deletes the key if it is still the owner's. */
  remove(held: OwnedKey, signal: AbortSignal): Promise<boolean>;
  /** Resolves the first put or delete of `key` at or after `fromRevision`. */
  nextChange(
    key: string,
    fromRevision: bigint,
    signal: AbortSignal,
  ): Promise<KeyChange>;
  /** Ends every connection and stream. */
  close(): Promise<void>;
}
