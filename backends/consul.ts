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
  LockLostError,
  type LockRequest,
} from "../src/backend.ts";
import { abortableDelay } from "../src/timing.ts";
import { parseBackendUri, readFileParam, secondsParam } from "../src/uri.ts";
import {
  ConsulApi,
  ConsulCallError,
  consulKey,
  type KvRead,
} from "./consul_api.ts";

const CALL_TIMEOUT_MS = 5_000;
const MIN_TTL_MS = 10_000;
const MAX_TTL_MS = 86_400_000;
const MAX_LOCK_DELAY_MS = 60_000;
const MONITOR_WAIT_MS = 30_000;
// Shorter than the lifecycle's bound on a notified wait (0.8 s at least), so
// that the query ends by itself: Deno's node:http leaves an aborted request
// on a reused keep-alive socket running on the server until it answers.
const NOTIFY_WAIT_MS = 700;
const OPTIONS = ["token", "dc", "lock-delay", "ca", "cert", "key"];

interface ConsulTarget {
  readonly options: Record<string, unknown>;
  readonly token: string | undefined;
  readonly lockDelayMs: number;
  readonly display: string;
}

function envToken(): string | undefined {
  try {
    return Deno.env.get("CONSUL_HTTP_TOKEN") || undefined;
  } catch {
    return undefined;
  }
}

function consulTarget(text: string): ConsulTarget {
  const uri = parseBackendUri(text, 8500);
  const { display, params } = uri;
  const bad = (why: string) =>
    new TypeError(`Consul backend URI '${display}' ${why}`);
  if (!["consul", "consul+http", "consul+https"].includes(uri.scheme)) {
    throw bad("must start with consul://, consul+http:// or consul+https://");
  }
  if (uri.hosts.length !== 1) throw bad("must name exactly one Consul agent");
  if (uri.username !== "" || uri.password !== undefined) {
    throw bad(
      "takes no user name or password: give an ACL token as ?token= or CONSUL_HTTP_TOKEN",
    );
  }
  if (uri.path !== "" && uri.path !== "/") {
    throw bad(`has a path '${uri.path}': locks live under coolock/`);
  }
  for (const name of params.keys()) {
    if (!OPTIONS.includes(name)) {
      throw bad(`has an unknown option '${name}': use ${OPTIONS.join(", ")}`);
    }
  }
  const secure = uri.scheme === "consul+https";
  const tls: Record<string, string> = {};
  for (const name of ["ca", "cert", "key"]) {
    const file = readFileParam(uri, name);
    if (file !== undefined && !secure) {
      throw bad(`has a '${name}' option, which needs consul+https://`);
    }
    if (file !== undefined) tls[name] = file;
  }
  if (("cert" in tls) !== ("key" in tls)) {
    throw bad("needs both 'cert' and 'key', or neither");
  }
  const lockDelayMs = secondsParam(uri, "lock-delay", 0);
  if (lockDelayMs > MAX_LOCK_DELAY_MS) {
    throw bad(
      `has a 'lock-delay' of '${
        params.get("lock-delay")
      }': Consul allows 0 to 60 seconds`,
    );
  }
  const token = params.get("token") || envToken();
  const { host, port } = uri.hosts[0];
  const hostText = host.includes(":") ? `[${host}]` : host;
  return {
    options: {
      baseUrl: `${secure ? "https" : "http"}://${hostText}:${port}/v1`,
      defaults: { token, dc: params.get("dc") || undefined },
      ...tls,
    },
    token,
    lockDelayMs,
    display,
  };
}

/** Consul takes whole seconds from 10 s to 24 h. */
function ttlOf(ms: number): string {
  if (ms > MAX_TTL_MS) {
    throw new RangeError(
      `A Consul session lasts at most ${MAX_TTL_MS / 1000} s, not ${
        ms / 1000
      } s`,
    );
  }
  return `${Math.ceil(Math.max(MIN_TTL_MS, ms) / 1000)}s`;
}

class ConsulClaim implements Claim {
  readonly #lost = new AbortController();
  readonly lost: AbortSignal = this.#lost.signal;
  readonly #watching = new AbortController();
  readonly #monitor: Promise<void>;
  #released = false;

  constructor(
    readonly token: bigint,
    private readonly request: LockRequest,
    private readonly key: string,
    private readonly session: string,
    private readonly api: ConsulApi,
    private readonly onDone: (claim: ConsulClaim) => void,
    index: string,
  ) {
    this.#monitor = this.#watch(index);
  }

  /** Blocking queries on the key, as `consul lock` monitors its lock. */
  async #watch(index: string): Promise<void> {
    const signal = this.#watching.signal;
    while (!signal.aborted) {
      try {
        const read = await this.api.get(this.key, signal, {
          index,
          ms: MONITOR_WAIT_MS,
        });
        if (this.#released) return;
        if (read.entry?.Session !== this.session) {
          const why = read.entry
            ? "another session holds the key"
            : "the key was deleted";
          this.#lost.abort(new LockLostError(this.request.name, why));
          return;
        }
        // Indexes can go backwards (a snapshot restore): start over then.
        index = BigInt(read.index) < BigInt(index) ? "0" : read.index;
      } catch {
        // The lifecycle's deadline judges an agent that stopped answering.
        await abortableDelay(1_000, signal).catch(() => {});
      }
    }
  }

  // A session's TTL is fixed at creation; it was the first `expiresInMs`,
  // which no later renewal exceeds (the guard time only shrinks).
  async renew(_expiresInMs: number, signal: AbortSignal): Promise<void> {
    try {
      await this.api.renewSession(this.session, signal);
    } catch (error) {
      if (error instanceof ConsulCallError && error.status === 404) {
        throw new LockLostError(
          this.request.name,
          "its Consul session expired or was destroyed",
        );
      }
      throw error;
    }
    const { entry } = await this.api.get(this.key, signal);
    if (entry?.Session !== this.session) {
      throw new LockLostError(
        this.request.name,
        "the key is no longer held by its session",
      );
    }
  }

  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    try {
      if (holdMs > 0) {
        // On failure the session stays, and its TTL covers the guard time.
        await this.#holdFor(holdMs);
      } else {
        await this.api.lock(
          "release",
          this.key,
          this.session,
          this.request.owner,
        ).catch(() => false);
      }
      await this.api.destroySession(this.session);
    } finally {
      // The release changed the key, which ends the monitor's query by
      // itself; only a monitor still blocked after a second is aborted.
      const settled = new AbortController();
      await Promise.race([
        this.#monitor,
        abortableDelay(1_000, settled.signal).catch(() => {}),
      ]);
      settled.abort();
      this.#watching.abort();
      await this.#monitor;
      this.onDone(this);
    }
  }

  async #holdFor(holdMs: number): Promise<void> {
    const delayMs = Math.min(Math.ceil(holdMs), MAX_LOCK_DELAY_MS);
    const guard = await this.api.createSession({
      name: `coolock guard ${this.request.owner}`,
      ttl: ttlOf(holdMs - delayMs),
      lockdelay: `${delayMs}ms`,
    });
    const handed = await this.api.handOver(
      this.key,
      this.session,
      guard,
      this.request.owner,
    )
      .catch((error) => {
        void this.api.destroySession(guard).catch(() => {});
        throw error;
      });
    // Destroying the guard session deletes the key and starts its lock-delay.
    if (!handed || holdMs <= MAX_LOCK_DELAY_MS) {
      await this.api.destroySession(guard);
    }
  }
}

class ConsulBackend implements Backend {
  readonly scheme: string;
  readonly displayUri: string;
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: MIN_TTL_MS,
    clock: "server",
  } as const;
  readonly #target: ConsulTarget;
  readonly #claims = new Set<ConsulClaim>();
  readonly #seen = new Map<string, KvRead>();
  #api?: Promise<ConsulApi>;
  #closed = false;

  constructor(uri: string) {
    this.#target = consulTarget(uri);
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
        return claim;
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
 * import { consul } from "./consul.ts";
 * const backend = consul("consul://127.0.0.1:8500?dc=dc1");
 * console.log(backend.capabilities.minTtlMs); // 10000
 * await backend.close();
 * ```
 */
export function consul(uri: string | URL): Backend {
  return new ConsulBackend(String(uri));
}
