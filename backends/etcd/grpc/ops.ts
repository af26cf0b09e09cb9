/**
 * The etcd recipe's calls ({@linkcode EtcdOps}) on an `npm:etcd3` client:
 * lease, txn, range and watch, each with a deadline and cancelled by its
 * signal.
 *
 * @module
 */

import type { Etcd3, IKeyValue, IOperation, Watcher } from "npm:etcd3@1.1.2";
import { prefixEnd } from "../keys.ts";
import type {
  EtcdOps,
  KeyChange,
  KeyState,
  LeasedPut,
  OwnedKey,
} from "../ops.ts";

/** Encodes text as the client's bytes (a `Buffer`). */
export type Bytes = (text: string) => Uint8Array;

/** Rejects when `signal` aborts; the call itself ends by its deadline. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
}

function keyState(kv: IKeyValue | undefined, revision: string) {
  return kv && {
    createRevision: BigInt(kv.create_revision),
    value: kv.value.toString(),
    revision: BigInt(revision),
  };
}

/**
 * {@linkcode EtcdOps} on an `Etcd3` client; every call has a deadline.
 *
 * @example
 * ```ts ignore
 * import { GrpcOps } from "./ops.ts";
 * const ops = new GrpcOps(client, (t) => Buffer.from(t), 5_000, 1, () => false);
 * console.log(await ops.read("coolock/a/1f", AbortSignal.timeout(5_000)));
 * await ops.close();
 * ```
 */
export class GrpcOps implements EtcdOps {
  readonly #watchers = new Set<Watcher>();

  /** Wraps a client; `hosts` is how many endpoints it fails over across. */
  constructor(
    private readonly client: Etcd3,
    private readonly bytes: Bytes,
    private readonly timeoutMs: number,
    private readonly hosts: number,
    private readonly recoverable: (error: Error) => boolean,
  ) {}

  #options() {
    return { deadline: Date.now() + this.timeoutMs };
  }

  async grant(ttl: number, signal: AbortSignal): Promise<[string, number]> {
    const lease = this.client.lease(ttl, {
      autoKeepAlive: false,
      ...this.#options(),
    });
    lease.on("lost", () => {});
    const id = await abortable(lease.grant(), signal);
    return [String(id), ttl];
  }

  async keepAlive(lease: string, signal: AbortSignal): Promise<number> {
    // A stream fails after it was opened, past the pool's failover: retry
    // on the next host, which the host policy now prefers.
    for (let tried = 1;; tried++) {
      try {
        return await this.#keepAliveOnce(lease, signal);
      } catch (error) {
        const again = tried < this.hosts && !signal.aborted &&
          this.recoverable(error as Error);
        if (!again) throw error;
      }
    }
  }

  async #keepAliveOnce(lease: string, signal: AbortSignal): Promise<number> {
    const stream = await abortable(
      this.client.leaseClient.leaseKeepAlive(this.#options()),
      signal,
    );
    try {
      return await abortable(
        new Promise<number>((resolve, reject) => {
          stream.on("data", (answer) => resolve(Number(answer.TTL)));
          stream.on("error", reject);
          stream.write({ ID: lease });
        }),
        signal,
      );
    } finally {
      stream.end();
    }
  }

  async revoke(lease: string, signal: AbortSignal): Promise<void> {
    await abortable(
      this.client.leaseClient.leaseRevoke({ ID: lease }, this.#options()),
      signal,
    ).catch((error) => {
      if (!/lease not found/.test((error as Error).message)) throw error;
    });
  }

  async create(
    { key, value, lease, ifEmpty }: LeasedPut,
    signal: AbortSignal,
  ): Promise<KeyState | "held" | undefined> {
    const read = { request_range: { key: this.bytes(key) } };
    const compare = ifEmpty === undefined
      ? { key: this.bytes(key) }
      : { key: this.bytes(ifEmpty), range_end: this.bytes(prefixEnd(ifEmpty)) };
    const put = {
      request_put: { key: this.bytes(key), value: this.bytes(value), lease },
    };
    try {
      const answer = await abortable(
        this.client.kv.txn({
          compare: [{
            ...compare,
            target: "Create",
            result: "Equal",
            create_revision: 0,
          }],
          success: [put, read],
          failure: ifEmpty === undefined ? [read] : [],
        } as never, this.#options()),
        signal,
      );
      if (ifEmpty !== undefined && !answer.succeeded) return "held";
      const range = answer.responses[answer.responses.length - 1]
        .response_range;
      return keyState(range?.kvs[0], answer.header.revision);
    } catch (error) {
      if (/lease not found/.test((error as Error).message)) return undefined;
      throw error;
    }
  }

  /** Reads one key. */
  async read(
    key: string,
    signal: AbortSignal,
  ): Promise<KeyState | undefined> {
    const answer = await abortable(
      this.client.get(key).options(this.#options()).exec(),
      signal,
    );
    return keyState(answer.kvs[0], answer.header.revision);
  }

  /** The key under `prefix` with the highest create revision below `below`. */
  async predecessor(
    prefix: string,
    below: bigint,
    signal: AbortSignal,
  ): Promise<{ key: string; revision: bigint } | undefined> {
    const answer = await abortable(
      this.client.getAll().prefix(prefix).sort("Create", "Descend").limit(1)
        .maxCreateRevision(String(below - 1n)).options(this.#options())
        .exec(),
      signal,
    );
    const kv = answer.kvs[0];
    return kv && {
      key: kv.key.toString(),
      revision: BigInt(answer.header.revision),
    };
  }

  async #ifOwned(
    { key, value, createRevision }: OwnedKey,
    then: IOperation,
    signal: AbortSignal,
  ): Promise<boolean> {
    const answer = await abortable(
      this.client.if(key, "Value", "==", value)
        .and(key, "Create", "==", String(createRevision))
        .then(then).options(this.#options()).commit(),
      signal,
    );
    return answer.succeeded;
  }

  /** Puts the key again with another lease if it is still the owner's. */
  replace(
    held: OwnedKey,
    lease: string,
    signal: AbortSignal,
  ): Promise<boolean> {
    const put = this.client.put(held.key).value(held.value).lease(lease);
    return this.#ifOwned(held, put, signal);
  }

  remove(held: OwnedKey, signal: AbortSignal): Promise<boolean> {
    const del = this.client.delete().key(held.key);
    return this.#ifOwned(held, del, signal);
  }

  nextChange(
    key: string,
    fromRevision: bigint,
    signal: AbortSignal,
  ): Promise<KeyChange> {
    signal.throwIfAborted();
    const watcher = this.client.watch().key(key)
      .startRevision(String(fromRevision)).watcher();
    this.#watchers.add(watcher);
    return new Promise<KeyChange>((resolve, reject) => {
      const done = (settle: () => void) => {
        signal.removeEventListener("abort", onAbort);
        void this.#cancel(watcher);
        settle();
      };
      const onAbort = () => done(() => reject(signal.reason));
      signal.addEventListener("abort", onAbort, { once: true });
      watcher.on("put", (kv) =>
        done(() =>
          resolve({
            kind: "put",
            value: kv.value.toString(),
            revision: BigInt(kv.mod_revision),
          })
        ));
      watcher.on(
        "delete",
        (kv) =>
          done(() =>
            resolve({ kind: "delete", revision: BigInt(kv.mod_revision) })
          ),
      );
      // A compacted start revision cancels the watch with an error.
      watcher.on("error", (error) => done(() => reject(error)));
    });
  }

  async #cancel(watcher: Watcher) {
    try {
      await abortable(watcher.cancel(), AbortSignal.timeout(this.timeoutMs));
    } catch { /* the client's close() ends the stream anyway */ }
    this.#watchers.delete(watcher);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#watchers].map((w) => this.#cancel(w)));
    this.client.close();
  }
}
