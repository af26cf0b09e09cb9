/**
 * The etcd3 backend over gRPC, with `npm:etcd3`. It runs the same lock
 * recipe as the `etcd` gateway backend (`etcd_lock.ts`), on the library's
 * lease, txn and watch calls, so locks of the two exclude each other. The
 * library's own `lock()` is not used: it never waits.
 *
 * @module
 */

import type {
  Etcd3,
  IKeyValue,
  IOperation,
  IOptions,
  Watcher,
} from "npm:etcd3@1.1.2";
import type { Backend } from "../src/backend.ts";
import { readFileParam } from "../src/uri.ts";
import {
  EtcdBackend,
  type EtcdConfig,
  type EtcdOps,
  type KeyChange,
  type KeyState,
  parseEtcdUri,
  prefixEnd,
} from "./etcd_lock.ts";

type Bytes = (text: string) => Uint8Array;

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

/** {@linkcode EtcdOps} on an `Etcd3` client; every call has a deadline. */
class GrpcOps implements EtcdOps {
  readonly #watchers = new Set<Watcher>();

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
    key: string,
    value: string,
    lease: string,
    signal: AbortSignal,
    ifEmpty?: string,
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

  async read(key: string, signal: AbortSignal) {
    const answer = await abortable(
      this.client.get(key).options(this.#options()).exec(),
      signal,
    );
    return keyState(answer.kvs[0], answer.header.revision);
  }

  async predecessor(prefix: string, below: bigint, signal: AbortSignal) {
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
    key: string,
    value: string,
    createRevision: bigint,
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

  replace(
    key: string,
    value: string,
    createRevision: bigint,
    lease: string,
    signal: AbortSignal,
  ): Promise<boolean> {
    const put = this.client.put(key).value(value).lease(lease);
    return this.#ifOwned(key, value, createRevision, put, signal);
  }

  remove(
    key: string,
    value: string,
    createRevision: bigint,
    signal: AbortSignal,
  ): Promise<boolean> {
    const del = this.client.delete().key(key);
    return this.#ifOwned(key, value, createRevision, del, signal);
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

/**
 * Per-host fault handling instead of the library's circuit breakers, which
 * keep a recovered server out for 5 s: a host that just failed is skipped
 * while another one has not, so that streams (keepalive, watch) fail over too.
 */
function hostPolicies(
  hosts: readonly string[],
  recoverable: (error: Error) => boolean,
) {
  const failedAt = new Map<string, number>();
  const failing = (host: string) =>
    performance.now() - (failedAt.get(host) ?? -Infinity) < SKIP_FAILED_MS;
  return (host: string) => ({
    async execute<T>(fn: (context: unknown) => T | Promise<T>): Promise<T> {
      if (failing(host) && hosts.some((other) => !failing(other))) {
        throw new Error(`${host} failed a moment ago`);
      }
      try {
        const result = await fn({ signal: new AbortController().signal });
        failedAt.delete(host);
        return result;
      } catch (error) {
        if (recoverable(error as Error)) failedAt.set(host, performance.now());
        throw error;
      }
    },
  });
}

const SKIP_FAILED_MS = 2_000;

async function connect(config: EtcdConfig): Promise<EtcdOps> {
  const { Etcd3, castGrpcError, isRecoverableError } = await import(
    "npm:etcd3@1.1.2"
  );
  const { Buffer } = await import("node:buffer");
  const { uri, tls, timeoutMs } = config;
  const file = (name: string) => {
    const text = readFileParam(uri, name);
    return text === undefined ? undefined : Buffer.from(text);
  };
  const [ca, cert, key] = [file("ca"), file("cert"), file("key")];
  const hosts = uri.hosts.map(({ host, port }) =>
    `${tls ? "https" : "http"}://${
      host.includes(":") ? `[${host}]` : host
    }:${port}`
  );
  const options: IOptions = {
    hosts,
    auth: uri.username === ""
      ? undefined
      : { username: uri.username, password: uri.password ?? "" },
    // Without a CA file, grpc-js trusts the system's roots.
    credentials: ca || cert
      ? { rootCertificate: ca!, certChain: cert, privateKey: key }
      : undefined,
    defaultCallOptions: (context) =>
      context.isStream ? {} : { deadline: Date.now() + timeoutMs },
    faultHandling: {
      host: hostPolicies(hosts, isRecoverableError) as never,
    },
  };
  const client = new Etcd3(options);
  return new GrpcOps(
    client,
    (text) => Buffer.from(text),
    timeoutMs,
    hosts.length,
    (error) => isRecoverableError(castGrpcError(error)),
  );
}

/**
 * The etcd3 backend on gRPC (`npm:etcd3`). URIs:
 * `etcd3://[user:password@]host[:port][,host[:port]...][/key-root]`,
 * `etcd3+https://…?ca=ca.pem&cert=client.pem&key=client-key.pem`, and
 * `?timeout=` seconds per call (default 5). The keys and values are those of
 * the `etcd` backend, so both can share a lock.
 *
 * @example
 * ```ts ignore
 * import { etcd3 } from "./etcd3.ts";
 * import { withLock } from "../mod.ts";
 * await using backend = etcd3("etcd3://127.0.0.1:2379");
 * await withLock({ backend, lock: "nightly", guardTime: 0 }, () => "ran");
 * ```
 */
export function etcd3(uri: string | URL): Backend {
  const config = parseEtcdUri(uri, "etcd3");
  for (const name of ["ca", "cert", "key"]) readFileParam(config.uri, name);
  return new EtcdBackend(config.uri.scheme, config, () => connect(config));
}
