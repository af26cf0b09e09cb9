/**
 * The etcd recipe's transport ({@linkcode EtcdOps}) on an `npm:etcd3`
 * client: raw lease, txn, watch, maintenance and cluster calls, each with a
 * deadline, cancelled by its signal, and failing with one clean line.
 *
 * @module
 */

import {
  abortable,
  cleanError,
  type Connection,
  type IKeyValue,
  type Watcher,
} from "./client.ts";
import {
  type AuthState,
  type Compare,
  type EtcdOps,
  type KeyChange,
  type KeyValue,
  LeaseGoneError,
  type Member,
  type Ping,
  type RangeQuery,
  readPing,
  type ServerStatus,
  type TxnOp,
  type TxnResult,
  type WatchQuery,
} from "../ops.ts";

function keyValue(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    createRevision: BigInt(kv.create_revision),
    modRevision: BigInt(kv.mod_revision),
    lease: String(kv.lease ?? "0"),
  };
}

/** {@linkcode EtcdOps} on an `Etcd3` client; every call has a deadline. */
export class GrpcOps implements EtcdOps {
  readonly #watchers = new Set<Watcher>();
  readonly #bytes: (text: string) => Uint8Array;

  /**
   * Wraps a connection.
   *
   * @param connection the client and its helpers
   * @param timeoutMs the bound on one call
   * @param hosts how many endpoints the client fails over across
   */
  constructor(
    private readonly connection: Connection,
    private readonly timeoutMs: number,
    private readonly hosts: number,
  ) {
    this.#bytes = connection.bytes;
  }

  get #client() {
    return this.connection.client;
  }

  #options() {
    return { deadline: Date.now() + this.timeoutMs };
  }

  /** Runs one call: cancelled by `signal`, its failure one clean line. */
  async #run<T>(call: Promise<T>, signal: AbortSignal): Promise<T> {
    try {
      return await abortable(call, signal);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw cleanError(error, this.timeoutMs);
    }
  }

  async grant(ttl: number, signal: AbortSignal): Promise<[string, number]> {
    const answer = await this.#run(
      this.#client.leaseClient.leaseGrant({ TTL: ttl }, this.#options()),
      signal,
    );
    return [String(answer.ID), Number(answer.TTL)];
  }

  async keepAlive(lease: string, signal: AbortSignal): Promise<number> {
    // A stream fails after it was opened, past the pool's failover: retry
    // on the next host, which the host policy now prefers.
    for (let tried = 1;; tried++) {
      try {
        return await this.#keepAliveOnce(lease, signal);
      } catch (error) {
        const again = tried < this.hosts && !signal.aborted &&
          this.connection.recoverable(error as Error);
        if (!again) {
          throw signal.aborted ? signal.reason : cleanError(
            error,
            this.timeoutMs,
          );
        }
      }
    }
  }

  async #keepAliveOnce(lease: string, signal: AbortSignal): Promise<number> {
    const stream = await abortable(
      this.#client.leaseClient.leaseKeepAlive(this.#options()),
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
    await this.#run(
      this.#client.leaseClient.leaseRevoke({ ID: lease }, this.#options()),
      signal,
    ).catch((error) => {
      if (!/lease not found/.test((error as Error).message)) throw error;
    });
  }

  async timeToLive(lease: string, signal: AbortSignal): Promise<number> {
    const answer = await this.#run(
      this.#client.leaseClient.leaseTimeToLive({ ID: lease }, this.#options()),
      signal,
    );
    return Number(answer.TTL ?? -1);
  }

  #range(query: RangeQuery) {
    return {
      key: this.#bytes(query.key),
      range_end: query.end === undefined ? undefined : this.#bytes(query.end),
      limit: query.limit,
      sort_target: query.order ? "Create" : undefined,
      sort_order: query.order === undefined
        ? undefined
        : query.order === "oldest"
        ? "Ascend"
        : "Descend",
      max_create_revision: query.maxCreateRevision === undefined
        ? undefined
        : String(query.maxCreateRevision),
    };
  }

  #compare(compare: Compare) {
    const key = this.#bytes(compare.key);
    if (compare.target === "value") {
      return {
        key,
        target: "Value",
        result: "Equal",
        value: this.#bytes(compare.equals),
      };
    }
    const range_end = compare.end === undefined
      ? undefined
      : this.#bytes(compare.end);
    return compare.target === "create"
      ? {
        key,
        range_end,
        target: "Create",
        result: "Equal",
        create_revision: String(compare.equals),
      }
      : {
        key,
        range_end,
        target: "Mod",
        result: "Equal",
        mod_revision: String(compare.equals),
      };
  }

  #op(op: TxnOp) {
    if ("put" in op) {
      const { key, value, lease } = op.put;
      return {
        request_put: {
          key: this.#bytes(key),
          value: this.#bytes(value),
          lease,
        },
      };
    }
    if ("delete" in op) {
      return { request_delete_range: { key: this.#bytes(op.delete) } };
    }
    return { request_range: this.#range(op.range) };
  }

  async txn(
    compare: readonly Compare[],
    success: readonly TxnOp[],
    failure: readonly TxnOp[],
    signal: AbortSignal,
  ): Promise<TxnResult> {
    let answer;
    try {
      answer = await this.#run(
        this.#client.kv.txn({
          compare: compare.map((c) => this.#compare(c)),
          success: success.map((op) => this.#op(op)),
          failure: failure.map((op) => this.#op(op)),
        } as never, this.#options()),
        signal,
      );
    } catch (error) {
      if (/lease not found/.test((error as Error).message)) {
        throw new LeaseGoneError((error as Error).message);
      }
      throw error;
    }
    return {
      succeeded: answer.succeeded,
      revision: BigInt(answer.header.revision),
      ranges: answer.responses.flatMap((response) =>
        response.response_range
          ? [response.response_range.kvs.map(keyValue)]
          : []
      ),
    };
  }

  watch(query: WatchQuery, signal: AbortSignal): Promise<KeyChange> {
    signal.throwIfAborted();
    let builder = this.#client.watch();
    builder = query.end === undefined
      ? builder.key(query.key)
      : builder.inRange({ start: query.key, end: query.end });
    if (query.deletesOnly) builder = builder.only("delete");
    const watcher = builder.startRevision(String(query.fromRevision))
      .watcher();
    this.#watchers.add(watcher);
    return new Promise<KeyChange>((resolve, reject) => {
      const done = (settle: () => void) => {
        signal.removeEventListener("abort", onAbort);
        void this.#cancel(watcher);
        settle();
      };
      const onAbort = () => done(() => reject(signal.reason));
      signal.addEventListener("abort", onAbort, { once: true });
      const event = (kind: "put" | "delete") => (kv: IKeyValue) =>
        done(() =>
          resolve({
            kind,
            key: kv.key.toString(),
            value: kind === "put" ? kv.value.toString() : "",
            revision: BigInt(kv.mod_revision),
          })
        );
      watcher.on("put", event("put"));
      watcher.on("delete", event("delete"));
      // A compacted start revision cancels the watch with an error.
      watcher.on(
        "error",
        (error) => done(() => reject(cleanError(error, this.timeoutMs))),
      );
    });
  }

  async #cancel(watcher: Watcher) {
    try {
      await abortable(watcher.cancel(), AbortSignal.timeout(this.timeoutMs));
    } catch { /* the client's close() ends the stream anyway */ }
    this.#watchers.delete(watcher);
  }

  async status(signal: AbortSignal): Promise<ServerStatus> {
    const answer = await this.#run(
      this.#client.maintenance.status(this.#options()),
      signal,
    );
    return {
      version: answer.version,
      leader: String(answer.leader),
      member: String(answer.header.member_id),
      errors: answer.errors ?? [],
    };
  }

  async members(signal: AbortSignal): Promise<Member[]> {
    const answer = await this.#run(
      this.#client.cluster.memberList({}, this.#options()),
      signal,
    );
    return answer.members.map((member) => ({
      id: String(member.ID),
      name: member.name ?? "",
    }));
  }

  auth(signal: AbortSignal): Promise<AuthState> {
    return this.connection.auth(signal);
  }

  async ping(endpoint: string, signal: AbortSignal): Promise<Ping> {
    const bound = AbortSignal.any([
      signal,
      AbortSignal.timeout(this.timeoutMs),
    ]);
    try {
      const response = await fetch(`${endpoint}/version`, {
        client: this.connection.http,
        signal: bound,
      });
      return readPing(endpoint, response, await response.text());
    } catch (error) {
      signal.throwIfAborted();
      if (bound.aborted) {
        throw new Error(
          `${endpoint} gave no answer within ${this.timeoutMs / 1000} s`,
        );
      }
      if (/is not an etcd server/.test((error as Error).message)) throw error;
      const cause = (error as Error)?.cause as Error | undefined;
      throw new Error(
        `${endpoint} can't be reached: ${
          (cause?.message ?? (error as Error).message).replace(/\s+/g, " ")
        }`,
      );
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#watchers].map((w) => this.#cancel(w)));
    this.connection.close();
  }
}
