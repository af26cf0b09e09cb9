/**
 * The Consul backend: a session with a TTL (`Behavior: delete`) takes the key
 * `coolock/<name>` with `?acquire=`, like `consul lock`. Renewal is
 * `PUT /v1/session/renew`; a blocking query on the key watches for it being
 * deleted or taken, and wakes waiters when it is released. The fencing token
 * is the key's `ModifyIndex` at acquisition: a Raft index, so it only grows
 * across the datacenter, even when the key is deleted in between (its
 * `LockIndex` restarts then).
 *
 * What holds where:
 * - A holder that dies keeps the key until its session expires: at least the
 *   TTL after its last renewal (Consul reaps a session between TTL and 2 x
 *   TTL), then `lock-delay` more. The session TTL is the lifecycle's
 *   `expiresInMs`, which already covers the guard time from acquisition.
 * - Guard time on release: one `/v1/txn` hands the key to a fresh session
 *   whose lock-delay is what is left of the guard time (at most 60 s, Consul's
 *   limit), and destroying that session starts the delay by the leader's
 *   clock. A longer guard time rests on the guard session's TTL for the rest.
 *
 * @module
 */

import {
  type Backend,
  BackendUnavailableError,
  type Claim,
  type LockRequest,
} from "../../src/backend.ts";
import { Holdings } from "../../src/holdings.ts";
import { ConsulApi, type ConsulCallError, type KvRead } from "./client.ts";
import { ConsulClaim } from "./claim.ts";
import { consulKey } from "./keys.ts";
import { MIN_TTL_MS, ttlOf } from "./sessions.ts";
import { type ConsulTarget, parseConsulUri } from "./uri.ts";

const CALL_TIMEOUT_MS = 5_000;
// Shorter than the lifecycle's bound on a notified wait (0.8 s at least), so
// that the query ends by itself: Deno's node:http leaves an aborted request
// on a reused keep-alive socket running on the server until it answers.
const NOTIFY_WAIT_MS = 700;

class ConsulBackend implements Backend {
  readonly scheme: string;
  readonly displayUri: string;
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: MIN_TTL_MS,
    clock: "server",
    maxTtlMs: 366 * 86_400_000,
    listsLocks: false,
    storesLimit: false,
  } as const;
  readonly #target: ConsulTarget;
  readonly #claims = new Set<ConsulClaim>();
  readonly #holdings = new Holdings();
  readonly #seen = new Map<string, KvRead>();
  #api?: Promise<ConsulApi>;
  #closed = false;

  constructor(uri: string) {
    this.#target = parseConsulUri(uri);
    this.displayUri = this.#target.display;
    this.scheme = uri.slice(0, uri.indexOf(":")).toLowerCase();
  }

  #connect(): Promise<ConsulApi> {
    if (this.#closed) {
      return Promise.reject(
        new BackendUnavailableError(this.displayUri, "the backend is closed"),
      );
    }
    this.#api ??= (async () => {
      const [{ default: Consul }, { EventEmitter }] = await Promise.all([
        import("npm:consul@2.0.1"),
        import("node:events"),
      ]);
      const client = new Consul(this.#target.options as never);
      return new ConsulApi(
        client,
        EventEmitter,
        this.#target.token,
        CALL_TIMEOUT_MS,
      );
    })();
    return this.#api;
  }

  #unavailable(error: unknown, signal: AbortSignal): unknown {
    if (signal.aborted) return signal.reason;
    if (
      error instanceof BackendUnavailableError || error instanceof RangeError
    ) return error;
    const { message, status } = error as ConsulCallError;
    return new BackendUnavailableError(
      this.displayUri,
      status === 403 ? `the ACL token was refused (${message})` : message,
    );
  }

  async connect(): Promise<void> {
    await this.#connect();
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { name, owner, signal } = request;
    const key = consulKey(name);
    try {
      const ttl = ttlOf(request.expiresInMs);
      const api = await this.#connect();
      const before = await api.get(key, signal);
      this.#seen.set(name, before);
      if (before.entry?.Session) return undefined;
      const session = await api.createSession({
        name: `coolock ${owner}`,
        ttl,
        // Whole milliseconds: Consul reads under 1 µs as seconds.
        lockdelay: `${Math.ceil(this.#target.lockDelayMs)}ms`,
      }, signal);
      let claim: ConsulClaim | undefined;
      try {
        if (await api.lock("acquire", key, session, owner, signal)) {
          const after = await api.get(key, signal);
          if (after.entry?.Session === session) {
            claim = new ConsulClaim(
              BigInt(after.entry.ModifyIndex),
              request,
              key,
              session,
              api,
              (done) => this.#claims.delete(done),
              after.index,
            );
            this.#claims.add(claim);
            this.#seen.delete(name);
          }
        }
        return claim && this.#holdings.track(claim, request);
      } finally {
        // Also deletes the key if the lock was taken but not confirmed.
        if (!claim) await api.destroySession(session).catch(() => {});
      }
    } catch (error) {
      throw this.#unavailable(error, signal);
    }
  }

  async waitForChange(
    request: LockRequest,
    signal: AbortSignal,
  ): Promise<void> {
    const api = await this.#connect();
    const key = consulKey(request.name);
    const seen = this.#seen.get(request.name) ?? await api.get(key, signal);
    this.#seen.delete(request.name);
    // A free key that could not be taken is under lock-delay, which ends
    // without a change: the lifecycle's poll bounds this wait.
    await api.get(key, signal, { index: seen.index, ms: NOTIFY_WAIT_MS });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#holdings.releaseAll();
    await Promise.allSettled(
      [...this.#claims].map((claim) => claim.release(0)),
    );
    this.#seen.clear();
    const api = await this.#api?.catch(() => undefined);
    await api?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The Consul backend: `consul://host:8500`, `consul+http://…` or
 * `consul+https://…`, with the options `token` (else `CONSUL_HTTP_TOKEN`),
 * `dc`, `lock-delay` (seconds, 0 to 60, default 0) and, over HTTPS, the files
 * `ca`, `cert` and `key`. The minimum TTL is Consul's 10 s.
 *
 * @param uri the agent's URI
 *
 * @example
 * ```ts
 * import { consul } from "./mod.ts";
 * const backend = consul("consul://127.0.0.1:8500?dc=dc1");
 * console.log(backend.capabilities.minTtlMs); // 10000
 * await backend.close();
 * ```
 */
export function consul(uri: string | URL): Backend {
  return new ConsulBackend(String(uri));
}
