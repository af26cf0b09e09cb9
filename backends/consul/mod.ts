/**
 * The Consul backend, as Consul really behaves (hashicorp/consul's source):
 *
 * - **Sessions that only a TTL or a destroy can end.** Each acquisition
 *   creates a session with no health checks, `Behavior: delete`, a TTL of
 *   the lifecycle's `expiresInMs` (which covers the guard time), and a
 *   lock-delay of that TTL up to 60 s (sessions.ts says why).
 * - **limit 1** is `consul lock`'s recipe on `coolock/<name>` (mutex.ts);
 *   **limit N** is Consul's semaphore under `coolock/<name>/` (semaphore.ts).
 *   The fencing token is a Raft index, so it only grows.
 * - **What holds where.** A holder that dies keeps its slot until Consul
 *   reaps its session, between TTL and 2 × TTL after the last renewal
 *   (SessionTTLMultiplier; a new leader re-arms the timer in full), then for
 *   the lock-delay. Guard time after a release is a guard session's
 *   lock-delay, on the Consul leader's clock.
 * - **Watching.** A monitor's blocking query reports the lock lost when the
 *   key is deleted or taken, and at its first error (claim.ts); waiters
 *   wake on a blocking query, and the lifecycle polls too, since a
 *   lock-delay ends without any change to see.
 *
 * @module
 */

import {
  type Backend,
  type BackendCapabilities,
  BackendUnavailableError,
  type CheckResult,
  type Claim,
  LimitMismatchError,
  type LockRequest,
  type LockStatus,
  type Removal,
} from "../../src/backend.ts";
import { Holdings } from "../../src/holdings.ts";
import { ConsulClaim, type Won } from "./claim.ts";
import { type ConsulApi, ConsulCallError, openConsul } from "./client.ts";
import { consulKey } from "./keys.ts";
import { tryMutex } from "./mutex.ts";
import { checkAgent, lockStatuses, releaseByForce } from "./operate.ts";
import { trySemaphore } from "./semaphore.ts";
import { MAX_TTL_MS, type SessionLimits } from "./sessions.ts";
import { type ConsulTarget, parseConsulUri } from "./uri.ts";

export type {
  Backend,
  BackendCapabilities,
  CheckResult,
  Claim,
  HolderStatus,
  LockRequest,
  LockStatus,
  Removal,
} from "../../src/backend.ts";

const CALL_TIMEOUT_MS = 5_000;
// Shorter than the lifecycle's bound on a notified wait (0.8 s at least), so
// that the query ends by itself: Deno's node:http leaves an aborted request
// on a reused keep-alive socket running on the server until it answers.
const NOTIFY_WAIT_MS = 700;

class ConsulBackend implements Backend {
  readonly scheme: string;
  readonly displayUri: string;
  readonly capabilities: BackendCapabilities;
  readonly permissions: readonly Deno.PermissionDescriptor[];
  readonly #target: ConsulTarget;
  readonly #limits: SessionLimits;
  readonly #claims = new Set<ConsulClaim>();
  readonly #holdings = new Holdings();
  readonly #seen = new Map<string, string>();
  #api?: Promise<ConsulApi>;
  #closed = false;

  constructor(uri: string) {
    this.#target = parseConsulUri(uri);
    this.displayUri = this.#target.display;
    this.scheme = uri.slice(0, uri.indexOf(":")).toLowerCase();
    this.#limits = {
      ttlMinMs: this.#target.sessionTtlMinMs,
      lockDelayMs: this.#target.lockDelayMs,
    };
    this.capabilities = {
      notifiesWaiters: true,
      fairQueue: false,
      minTtlMs: this.#target.sessionTtlMinMs,
      maxTtlMs: MAX_TTL_MS,
      clock: "server",
      listsLocks: true,
      storesLimit: true,
    };
    this.permissions = [
      { name: "net", host: this.#target.hostPort },
      ...(this.#target.tokenFromEnv
        ? [{ name: "env", variable: "CONSUL_HTTP_TOKEN" } as const]
        : []),
      ...this.#target.files.map((path) => ({ name: "read", path } as const)),
    ];
  }

  #connect(): Promise<ConsulApi> {
    if (this.#closed) {
      return Promise.reject(
        new BackendUnavailableError(this.displayUri, "the backend is closed"),
      );
    }
    this.#api ??= (async () => {
      const api = await openConsul(
        this.#target.options,
        this.#target.token,
        CALL_TIMEOUT_MS,
      );
      try {
        await this.#checkDatacenter(api);
      } catch (error) {
        this.#api = undefined;
        await api.close();
        throw error;
      }
      return api;
    })();
    return this.#api;
  }

  /**
   * Consul creates a session only in the agent's own datacenter: a client
   * agent refuses another ("cross datacenter lock must be created at server
   * agent", agent/session_endpoint.go SessionCreate), and a server agent's
   * node is not registered there ("Missing node registration"). So `dc=`
   * must name the agent's own datacenter.
   */
  async #checkDatacenter(api: ConsulApi): Promise<void> {
    const wanted = this.#target.dc;
    if (wanted === undefined) return;
    const self = await api.agentSelf().catch((error) => {
      // Without agent:read, session creation reports it instead.
      if (error instanceof ConsulCallError && error.status === 403) return;
      throw error;
    });
    if (self && self.datacenter !== wanted) {
      throw this.#otherDatacenter(self.datacenter);
    }
  }

  #otherDatacenter(actual?: string): RangeError {
    return new RangeError(
      `Consul backend URI '${this.displayUri}' names datacenter '${this.#target.dc}', but ${
        actual ? `the agent is in '${actual}'` : "the agent is in another one"
      }: Consul creates a lock's session only in the agent's own datacenter, so point the URI at an agent in '${this.#target.dc}'`,
    );
  }

  #unavailable(error: unknown, signal: AbortSignal): unknown {
    if (signal.aborted) return signal.reason;
    if (
      error instanceof BackendUnavailableError || error instanceof TypeError ||
      error instanceof RangeError || error instanceof LimitMismatchError
    ) return error;
    const message = (error as Error).message;
    if (
      this.#target.dc !== undefined &&
      /cross datacenter lock|Missing node registration|No path to datacenter/
        .test(message)
    ) return this.#otherDatacenter();
    const { status } = error as ConsulCallError;
    return new BackendUnavailableError(
      this.displayUri,
      status === 403 ? `the ACL token was refused (${message})` : message,
      { cause: error },
    );
  }

  async connect(): Promise<void> {
    await this.#connect();
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    const { name, signal } = request;
    try {
      const api = await this.#connect();
      const read = await api.list(consulKey(name), signal);
      this.#seen.set(name, read.index);
      const won: Won | undefined = request.limit === 1
        ? await tryMutex(api, this.#limits, request, read)
        : await trySemaphore(api, this.#limits, request, read);
      if (!won) return undefined;
      this.#seen.delete(name);
      const claim = new ConsulClaim(
        won.token,
        won.slot,
        request,
        won.holding,
        (done) => this.#claims.delete(done),
        won.index,
      );
      this.#claims.add(claim);
      return this.#holdings.track(claim, request);
    } catch (error) {
      throw this.#unavailable(error, signal);
    }
  }

  async waitForChange(
    request: LockRequest,
    signal: AbortSignal,
  ): Promise<void> {
    const api = await this.#connect();
    const base = consulKey(request.name);
    const index = this.#seen.get(request.name) ??
      (await api.list(base, signal)).index;
    this.#seen.delete(request.name);
    // A free key that could not be taken is under lock-delay, which ends
    // without a change: the lifecycle's poll bounds this wait.
    await api.list(base, signal, { index, ms: NOTIFY_WAIT_MS });
  }

  async status(
    name: string | undefined,
    signal: AbortSignal,
  ): Promise<LockStatus[]> {
    try {
      return await lockStatuses(await this.#connect(), name, signal);
    } catch (error) {
      throw this.#unavailable(error, signal);
    }
  }

  async forceRelease(name: string, signal: AbortSignal): Promise<Removal[]> {
    try {
      return await releaseByForce(await this.#connect(), name, signal);
    } catch (error) {
      throw this.#unavailable(error, signal);
    }
  }

  async check(signal: AbortSignal): Promise<CheckResult[]> {
    let api: ConsulApi;
    try {
      api = await openConsul(
        this.#target.options,
        this.#target.token,
        CALL_TIMEOUT_MS,
      );
    } catch (error) {
      throw this.#unavailable(error, signal);
    }
    try {
      return await checkAgent(api, this.#limits, this.#target.dc, signal);
    } catch (error) {
      throw this.#unavailable(error, signal);
    } finally {
      await api.close();
    }
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
 * `dc` (the agent's own datacenter), `lock-delay` (seconds, 0 to 60;
 * default the session's TTL, at most 60), `session-ttl-min` (seconds, the
 * servers' `session_ttl_min`; default 10) and, over HTTPS, the files `ca`,
 * `cert` and `key`.
 *
 * @param uri the agent's URI
 * @returns a backend that connects on first use
 *
 * @example
 * ```ts
 * import { consul } from "./mod.ts";
 * const backend = consul("consul://127.0.0.1:8500?session-ttl-min=5");
 * console.log(backend.capabilities.minTtlMs); // 5000
 * await backend.close();
 * ```
 */
export function consul(uri: string | URL): Backend {
  return new ConsulBackend(String(uri));
}
