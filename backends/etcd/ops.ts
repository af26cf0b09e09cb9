/**
 * The transport interface of the etcd recipe: the few etcd v3 calls that
 * the lock, the semaphore and the operator's calls need, in plain terms
 * (text keys and values, bigint revisions, decimal lease ids). The `etcd`
 * backend implements it on the JSON gateway (`gateway/ops.ts`), `etcd3` on
 * gRPC (`grpc/ops.ts`); everything above it is written once.
 *
 * Leases are counted in whole seconds, as etcd grants them.
 *
 * @module
 */

/** A key as a range read returns it. */
export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** The revision that created the key: an entry's fencing token. */
  readonly createRevision: bigint;
  /** The revision of its last change. */
  readonly modRevision: bigint;
  /** Its lease id, decimal; `"0"` for none. */
  readonly lease: string;
}

/** A range read: keys in `[key, end)` (only `key` without `end`). */
export interface RangeQuery {
  readonly key: string;
  readonly end?: string;
  /** At most this many keys. */
  readonly limit?: number;
  /** Sorted by create revision; by key when absent. */
  readonly order?: "oldest" | "newest";
  /** Only keys created at or below this revision. */
  readonly maxCreateRevision?: bigint;
}

/** A condition of a transaction; with `end`, every key of the range must meet it. */
export type Compare =
  | {
    readonly key: string;
    readonly end?: string;
    /** `create` 0 means the key (every key of the range) is absent. */
    readonly target: "create" | "mod";
    readonly equals: bigint;
  }
  | { readonly key: string; readonly target: "value"; readonly equals: string };

/** One operation of a transaction's branch. */
export type TxnOp =
  | {
    readonly put: {
      readonly key: string;
      readonly value: string;
      readonly lease: string;
    };
  }
  | { readonly delete: string }
  | { readonly range: RangeQuery };

/** What a transaction did. */
export interface TxnResult {
  /** Whether every compare held, so that `success` ran. */
  readonly succeeded: boolean;
  /** The store revision after it. */
  readonly revision: bigint;
  /** The results of the branch's range operations, in order. */
  readonly ranges: readonly (readonly KeyValue[])[];
}

/** A watch: keys in `[key, end)` (only `key` without `end`), from a revision. */
export interface WatchQuery {
  readonly key: string;
  readonly end?: string;
  readonly fromRevision: bigint;
  /** Only deletions wake it. */
  readonly deletesOnly?: boolean;
}

/** The first event of a watch. */
export interface KeyChange {
  readonly kind: "put" | "delete";
  readonly key: string;
  /** The new value of a put; `""` for a delete. */
  readonly value: string;
  readonly revision: bigint;
}

/** What one member says of itself and its cluster. */
export interface ServerStatus {
  readonly version: string;
  /** The member id of the leader this member knows; `"0"` for none. */
  readonly leader: string;
  /** This member's id. */
  readonly member: string;
  /** Alarms and errors the member reports (such as `NOSPACE`). */
  readonly errors: readonly string[];
}

/** One member of the cluster. */
export interface Member {
  readonly id: string;
  readonly name: string;
}

/** An endpoint's answer to `GET /version`, over plain HTTP(S). */
export interface Ping {
  /** The server's version, such as `3.4.23`. */
  readonly version: string;
  /** The HTTP `Date` header, in ms since the epoch (whole seconds); absent without one. */
  readonly date?: number;
}

/**
 * How the credentials of the URI fare: `authenticated` (accepted),
 * `disabled` (the server has auth off: none are needed), `required` (auth
 * is on and the URI has none). Wrong ones reject.
 */
export type AuthState = "authenticated" | "disabled" | "required";

/**
 * The etcd calls of the recipe; each transport implements them on its own
 * client. Every call honours `signal` and its own call timeout, and rejects
 * with an `Error` whose message is one line without secrets.
 */
export interface EtcdOps {
  /** Grants a lease; resolves its id and the TTL the server granted. */
  grant(ttlSeconds: number, signal: AbortSignal): Promise<[string, number]>;
  /** Refreshes a lease; resolves its TTL in seconds, 0 when it is gone. */
  keepAlive(lease: string, signal: AbortSignal): Promise<number>;
  /** Revokes a lease (deleting its keys); a lease already gone is fine. */
  revoke(lease: string, signal: AbortSignal): Promise<void>;
  /** The seconds a lease has left; -1 when it is gone. */
  timeToLive(lease: string, signal: AbortSignal): Promise<number>;
  /**
   * One transaction. A put whose lease is gone rejects with
   * {@linkcode LeaseGoneError}.
   */
  txn(
    compare: readonly Compare[],
    success: readonly TxnOp[],
    failure: readonly TxnOp[],
    signal: AbortSignal,
  ): Promise<TxnResult>;
  /** Resolves the first event of the watch. */
  watch(query: WatchQuery, signal: AbortSignal): Promise<KeyChange>;
  /** The status of the member that answers. */
  status(signal: AbortSignal): Promise<ServerStatus>;
  /** The members of the cluster. */
  members(signal: AbortSignal): Promise<Member[]>;
  /** Tries the URI's credentials (or none) against the server. */
  auth(signal: AbortSignal): Promise<AuthState>;
  /** `GET /version` on one endpoint (a base URL of the URI), bypassing failover. */
  ping(endpoint: string, signal: AbortSignal): Promise<Ping>;
  /** Ends every connection and stream. */
  close(): Promise<void>;
}

/** A put named a lease that is gone (expired or revoked). */
export class LeaseGoneError extends Error {
  /** Makes the error; `message` is the server's. */
  constructor(message = "the lease is gone") {
    super(message);
    this.name = "LeaseGoneError";
  }
}

/** A lease TTL in whole seconds, at least 1, that covers `ms`. */
export function leaseSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Reads an answer to `GET /version`, as both transports fetch it. */
export function readPing(
  endpoint: string,
  response: Response,
  text: string,
): Ping {
  let answer: Record<string, unknown> = {};
  try {
    answer = JSON.parse(text);
  } catch { /* not etcd */ }
  if (!response.ok || typeof answer.etcdserver !== "string") {
    throw new Error(`${endpoint} is not an etcd server (GET /version)`);
  }
  const date = Date.parse(response.headers.get("date") ?? "");
  return {
    version: answer.etcdserver,
    date: Number.isFinite(date) ? date : undefined,
  };
}
