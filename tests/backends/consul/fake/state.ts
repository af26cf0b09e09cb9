/**
 * The state store of the Consul API fake: one Raft index for every write,
 * KV entries with Consul's lock semantics (agent/consul/state/kvs.go), and
 * sessions with TTL invalidation and lock-delay
 * (agent/consul/state/session.go), as the HTTP API documents them.
 *
 * TTL invalidation: Consul documents the TTL as a lower bound and reaps a
 * session "up to double this TTL" after its last renewal (its leader arms
 * the timer at TTL x 2). The fake arms it at TTL x `ttlMultiplier`: 1 by
 * default, the strictest reading (a client that renews late is caught), or 2
 * to reproduce a real leader.
 *
 * @module
 */

import { formatGoDuration, parseGoDuration } from "./duration.ts";

/** A KV entry, as `GET /v1/kv/:key` returns it (with `Value` decoded). */
export interface KvEntry {
  readonly LockIndex: number;
  readonly Key: string;
  readonly Flags: number;
  readonly Value: Uint8Array | null;
  readonly Session?: string;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** A session, as `GET /v1/session/info/:uuid` returns it. */
export interface SessionEntry {
  readonly ID: string;
  readonly Name: string;
  readonly Node: string;
  /** Nanoseconds, as Go's `time.Duration` marshals. */
  readonly LockDelay: number;
  readonly Behavior: "release" | "delete";
  readonly TTL: string;
  readonly NodeChecks: readonly string[] | null;
  readonly ServiceChecks: null;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** What a write touched, for blocking queries. */
export type Change = { readonly key: string } | { readonly session: string };

/** An error that the HTTP layer answers with `status` and the message. */
export class ConsulError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** How the fake behaves where Consul is configurable. */
export interface StateOptions {
  /** The session TTL timer is armed at TTL times this. Default 1. */
  readonly ttlMultiplier?: number;
  /** Consul's `session_ttl_min`. Default 10 s. */
  readonly sessionTtlMinMs?: number;
  /** The agent's node name. Default `consul-fake`. */
  readonly node?: string;
}

const MAX_TTL_MS = 86_400_000;
const MAX_LOCK_DELAY_MS = 60_000;
const NS_PER_MS = 1e6;

type Session = SessionEntry & { ttlMs: number };

/** The KV store and session table of one fake datacenter. */
export class ConsulState {
  readonly node: string;
  readonly #ttlMultiplier: number;
  readonly #ttlMinMs: number;
  #raftIndex = 10;
  kvIndex = 1;
  sessionIndex = 1;
  kv = new Map<string, KvEntry>();
  tombstones = new Map<string, number>();
  readonly sessions = new Map<string, Session>();
  /** Lock-delay ends by key, by the local wall clock as Consul's leader. */
  readonly lockDelays = new Map<string, number>();
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #listeners = new Set<(change: Change) => void>();
  /** Called after every committed write, for persistence. */
  onCommit: () => void = () => {};

  constructor(options: StateOptions = {}) {
    this.node = options.node ?? "consul-fake";
    this.#ttlMultiplier = options.ttlMultiplier ?? 1;
    this.#ttlMinMs = options.sessionTtlMinMs ?? 10_000;
  }

  /** How many blocking queries are waiting now. */
  get waiting(): number {
    return this.#listeners.size;
  }

  /** Every write goes through Raft, even one that changes nothing. */
  nextIndex(): number {
    return ++this.#raftIndex;
  }

  /** Resolves true on a matching change, false on timeout or abort. */
  waitFor(
    matches: (change: Change) => boolean,
    ms: number,
    signal: AbortSignal,
  ): Promise<boolean> {
    return new Promise((resolve) => {
      const finish = (fired: boolean) => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
        signal.removeEventListener("abort", onAbort);
        resolve(fired);
      };
      const listener = (change: Change) => matches(change) && finish(true);
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), ms);
      this.#listeners.add(listener);
      if (signal.aborted) return finish(false);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  emit(changes: readonly Change[]): void {
    if (changes.length === 0) return;
    this.onCommit();
    for (const change of changes) {
      for (const listener of [...this.#listeners]) listener(change);
    }
  }

  // --- sessions -----------------------------------------------------------

  createSession(body: Record<string, unknown>): string {
    const field = (name: string) =>
      Object.entries(body).find(([key]) => key.toLowerCase() === name)?.[1];
    const behavior = String(field("behavior") ?? "") || "release";
    if (behavior !== "release" && behavior !== "delete") {
      throw new ConsulError(500, `Invalid Behavior setting '${behavior}'`);
    }
    const node = String(field("node") ?? "") || this.node;
    if (node !== this.node) {
      throw new ConsulError(500, "Missing node registration");
    }
    const ttl = String(field("ttl") ?? "");
    const ttlMs = ttl === "" ? 0 : parseGoDuration(ttl);
    if (ttlMs === undefined) {
      throw new ConsulError(
        500,
        `Session TTL '${ttl}' invalid: time: invalid duration "${ttl}"`,
      );
    }
    if (ttlMs !== 0 && (ttlMs < this.#ttlMinMs || ttlMs > MAX_TTL_MS)) {
      throw new ConsulError(
        500,
        `Invalid Session TTL '${ttlMs * NS_PER_MS}', must be between [${
          formatGoDuration(this.#ttlMinMs)
        }=${formatGoDuration(MAX_TTL_MS)}]`,
      );
    }
    const lockDelayMs = lockDelayOf(field("lockdelay"));
    if (lockDelayMs > MAX_LOCK_DELAY_MS) {
      throw new ConsulError(
        500,
        `Invalid Session LockDelay '${
          lockDelayMs * NS_PER_MS
        }', must be between [0s=1m0s]`,
      );
    }
    const checks = field("nodechecks") ?? field("checks");
    const index = this.nextIndex();
    const session: Session = {
      ID: crypto.randomUUID(),
      Name: String(field("name") ?? ""),
      Node: node,
      LockDelay: lockDelayMs * NS_PER_MS,
      Behavior: behavior,
      TTL: ttl,
      NodeChecks: Array.isArray(checks) ? checks.map(String) : ["serfHealth"],
      ServiceChecks: null,
      CreateIndex: index,
      ModifyIndex: index,
      ttlMs,
    };
    this.sessions.set(session.ID, session);
    this.sessionIndex = index;
    this.#arm(session);
    this.emit([{ session: session.ID }]);
    return session.ID;
  }

  #arm(session: Session): void {
    clearTimeout(this.#timers.get(session.ID));
    if (session.ttlMs === 0) return;
    this.#timers.set(
      session.ID,
      setTimeout(
        () => this.destroySession(session.ID),
        session.ttlMs * this.#ttlMultiplier,
      ),
    );
  }

  /** Re-arms the TTL timer; `undefined` when the session is gone. */
  renewSession(id: string): SessionEntry | undefined {
    const session = this.sessions.get(id);
    if (session) this.#arm(session);
    return session && publicSession(session);
  }

  getSession(id: string): SessionEntry | undefined {
    const session = this.sessions.get(id);
    return session && publicSession(session);
  }

  /** Invalidates a session: its locks are released or deleted. */
  destroySession(id: string): void {
    this.nextIndex();
    const session = this.sessions.get(id);
    if (!session) return;
    const index = this.#raftIndex;
    clearTimeout(this.#timers.get(id));
    this.#timers.delete(id);
    this.sessions.delete(id);
    this.sessionIndex = index;
    const changes: Change[] = [{ session: id }];
    for (const entry of [...this.kv.values()]) {
      if (entry.Session !== id) continue;
      if (session.Behavior === "delete") {
        this.deleteKey(entry.Key, index);
      } else {
        this.kv.set(entry.Key, {
          ...entry,
          Session: undefined,
          ModifyIndex: index,
        });
        this.kvIndex = index;
      }
      if (session.LockDelay > 0) {
        this.lockDelays.set(
          entry.Key,
          Date.now() + session.LockDelay / NS_PER_MS,
        );
      }
      changes.push({ key: entry.Key });
    }
    this.emit(changes);
  }

  // --- KV -----------------------------------------------------------------

  /** The X-Consul-Index of a single-key read (kvs_endpoint.go Get). */
  keyIndex(key: string): number {
    return this.kv.get(key)?.ModifyIndex ?? this.kvIndex;
  }

  /** The X-Consul-Index of a prefix read: the prefix's own highest index. */
  prefixIndex(prefix: string): number {
    let index = 0;
    for (const [key, entry] of this.kv) {
      if (key.startsWith(prefix)) index = Math.max(index, entry.ModifyIndex);
    }
    for (const [key, deletedAt] of this.tombstones) {
      if (key.startsWith(prefix)) index = Math.max(index, deletedAt);
    }
    return prefix === "" || index === 0 ? this.kvIndex : index;
  }

  list(prefix: string): KvEntry[] {
    return [...this.kv.values()]
      .filter((entry) => entry.Key.startsWith(prefix))
      .sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : 0));
  }

  deleteKey(key: string, index: number): boolean {
    if (!this.kv.delete(key)) return false;
    this.tombstones.set(key, index);
    this.kvIndex = index;
    return true;
  }

  /** Whether a lock-delay keeps `key` from being locked now. */
  lockDelayed(key: string): boolean {
    const until = this.lockDelays.get(key);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.lockDelays.delete(key);
    return false;
  }

  /**
   * One KV write inside a Raft entry: `set`, `cas`, `lock` or `unlock`.
   * Returns whether it applied; throws for an invalid session.
   */
  applySet(
    verb: "set" | "cas" | "lock" | "unlock",
    input: { key: string; value: Uint8Array | null; flags: number },
    index: number,
    extra: { cas?: number; session?: string } = {},
  ): boolean {
    const existing = this.kv.get(input.key);
    let { Session: session, LockIndex: lockIndex = 0 } = existing ?? {};
    if (verb === "cas") {
      if (extra.cas === 0 ? existing : existing?.ModifyIndex !== extra.cas) {
        return false;
      }
    } else if (verb === "lock" || verb === "unlock") {
      if (!extra.session) throw new ConsulError(500, "missing session");
      if (verb === "lock") {
        if (!this.sessions.has(extra.session)) {
          throw new ConsulError(500, `invalid session "${extra.session}"`);
        }
        if (session && session !== extra.session) return false;
        if (session !== extra.session) lockIndex += 1;
        session = extra.session;
      } else {
        if (!existing || session !== extra.session) return false;
        session = undefined;
      }
    }
    this.kv.set(input.key, {
      LockIndex: lockIndex,
      Key: input.key,
      Flags: input.flags,
      Value: input.value,
      Session: session,
      CreateIndex: existing?.CreateIndex ?? index,
      ModifyIndex: index,
    });
    this.tombstones.delete(input.key);
    this.kvIndex = index;
    return true;
  }

  /** Runs `apply` atomically: any throw rolls the KV store back. */
  atomically<T>(apply: () => T): T {
    const saved = {
      kv: new Map(this.kv),
      tombstones: new Map(this.tombstones),
      kvIndex: this.kvIndex,
    };
    try {
      return apply();
    } catch (error) {
      Object.assign(this, saved);
      throw error;
    }
  }

  // --- persistence ----------------------------------------------------------

  /** What survives a restart, as Consul's Raft log and snapshots keep it. */
  snapshot(): string {
    return JSON.stringify({
      raftIndex: this.#raftIndex,
      kvIndex: this.kvIndex,
      sessionIndex: this.sessionIndex,
      kv: [...this.kv.values()].map((entry) => ({
        ...entry,
        Value: entry.Value && btoa(String.fromCharCode(...entry.Value)),
      })),
      tombstones: [...this.tombstones],
      sessions: [...this.sessions.values()],
    });
  }

  /** Loads a snapshot; TTLs restart in full, as on a leader failover. */
  restore(text: string): void {
    const data = JSON.parse(text);
    this.#raftIndex = data.raftIndex;
    this.kvIndex = data.kvIndex;
    this.sessionIndex = data.sessionIndex;
    this.tombstones = new Map(data.tombstones);
    this.kv = new Map(
      data.kv.map((entry: KvEntry & { Value: string | null }) => [
        entry.Key,
        {
          ...entry,
          Value: entry.Value === null
            ? null
            : Uint8Array.from(atob(entry.Value), (c) => c.charCodeAt(0)),
        },
      ]),
    );
    for (const session of data.sessions as Session[]) {
      this.sessions.set(session.ID, session);
      this.#arm(session);
    }
  }

  /** Stops every TTL timer. */
  close(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }
}

/** session_endpoint.go FixupLockDelay: small numbers mean seconds. */
function lockDelayOf(raw: unknown): number {
  if (raw === undefined || raw === null) return 15_000;
  let ns: number;
  if (typeof raw === "string") {
    const ms = parseGoDuration(raw);
    if (ms === undefined) {
      throw new ConsulError(
        400,
        `Request decode failed: time: invalid duration "${raw}"`,
      );
    }
    ns = ms * NS_PER_MS;
  } else if (typeof raw === "number") {
    ns = raw;
  } else {
    throw new ConsulError(400, "Request decode failed: bad LockDelay");
  }
  return (ns < 1000 ? ns * 1e9 : ns) / NS_PER_MS;
}

function publicSession({ ttlMs: _, ...session }: Session): SessionEntry {
  return session;
}
