/**
 * The state store of the Consul fake: one Raft index for every write, the
 * `kvs` and `tombstones` tables with Consul's lock rules, and lock-delay
 * (agent/consul/state/kvs.go, agent/consul/state/delay.go). Sessions, nodes
 * and checks live in sessions.ts, on top of this store.
 *
 * Every write goes through {@linkcode ConsulState.commit}, so a blocking
 * query (http.ts) wakes exactly when Consul's memdb watch would fire, and
 * the table indexes move as Consul's do.
 *
 * @module
 */

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

/** What a write touched, for blocking queries. */
export type Change =
  | { readonly key: string }
  | { readonly session: string }
  | { readonly node: string };

/** An error that the HTTP layer answers with `status` and the message. */
export class ConsulError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The tables whose indexes blocking queries report. */
export type Table = "kvs" | "tombstones" | "sessions" | "nodes" | "checks";

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * The KV half of one fake datacenter's state store, and the machinery
 * (index, watches, persistence hooks) that sessions.ts shares.
 */
export class ConsulState {
  #raftIndex = 10;
  readonly #tables = new Map<Table, number>();
  kv = new Map<string, KvEntry>();
  tombstones = new Map<string, number>();
  /** Lock-delay ends by key, by this process's clock as by Consul's leader. */
  readonly lockDelays = new Map<string, number>();
  readonly #listeners = new Set<(change: Change) => void>();
  /** Called after every committed write, for persistence. */
  onCommit: () => void = () => {};

  /** How many blocking queries are waiting now. */
  get waiting(): number {
    return this.#listeners.size;
  }

  /** The last Raft index. */
  get raftIndex(): number {
    return this.#raftIndex;
  }

  /** Every write goes through Raft, even one that changes nothing. */
  nextIndex(): number {
    return ++this.#raftIndex;
  }

  /** A table's index: the Raft index of its last change (1 if none). */
  tableIndex(...tables: Table[]): number {
    return Math.max(1, ...tables.map((table) => this.#tables.get(table) ?? 0));
  }

  /** Marks a table changed at `index`. */
  touch(table: Table, index: number): void {
    this.#tables.set(table, Math.max(index, this.#tables.get(table) ?? 0));
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

  /** Ends a write: persists, then wakes the watchers of what changed. */
  commit(changes: readonly Change[]): void {
    this.onCommit();
    for (const change of changes) {
      for (const listener of [...this.#listeners]) listener(change);
    }
  }

  // --- KV (agent/consul/state/kvs.go) -------------------------------------

  /**
   * The X-Consul-Index of a single-key read: the key's ModifyIndex, or for a
   * missing key the table-wide index of `kvs` and `tombstones`
   * (kvs_endpoint.go KVS.Get, state/kvs.go kvsGetTxn).
   */
  keyIndex(key: string): number {
    return this.kv.get(key)?.ModifyIndex ??
      this.tableIndex("kvs", "tombstones");
  }

  /**
   * The X-Consul-Index of a prefix read: the highest index of its entries and
   * tombstones, or the table-wide index when there are none or the prefix is
   * empty (state/kvs.go kvsListTxn).
   */
  prefixIndex(prefix: string): number {
    if (prefix === "") return this.tableIndex("kvs", "tombstones");
    let index = 0;
    for (const [key, entry] of this.kv) {
      if (key.startsWith(prefix)) index = Math.max(index, entry.ModifyIndex);
    }
    for (const [key, deletedAt] of this.tombstones) {
      if (key.startsWith(prefix)) index = Math.max(index, deletedAt);
    }
    return index === 0 ? this.tableIndex("kvs", "tombstones") : index;
  }

  /** Entries under `prefix`, sorted by key. */
  list(prefix: string): KvEntry[] {
    return [...this.kv.values()]
      .filter((entry) => entry.Key.startsWith(prefix))
      .sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : 0));
  }

  /** state/kvs.go kvsDeleteTxn: a tombstone keeps the index from sliding back. */
  deleteKey(key: string, index: number): boolean {
    if (!this.kv.delete(key)) return false;
    this.tombstones.set(key, index);
    this.touch("tombstones", index);
    this.touch("kvs", index);
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
   * One KV write inside a Raft entry, as state/kvs.go does it: `set`
   * (kvsSetTxn), `cas` (kvsSetCASTxn), `lock` (kvsLockTxn) or `unlock`
   * (kvsUnlockTxn). Returns whether it applied; throws for a missing or
   * invalid session. An entry equal to the stored one is not written again,
   * so its ModifyIndex stays (kvsSetTxn).
   */
  applySet(
    verb: "set" | "cas" | "lock" | "unlock",
    input: { key: string; value: Uint8Array | null; flags: number },
    index: number,
    extra: {
      cas?: number;
      session?: string;
      sessionExists?: (id: string) => boolean;
    } = {},
  ): boolean {
    const existing = this.kv.get(input.key);
    let { Session: session, LockIndex: lockIndex = 0 } = existing ?? {};
    if (verb === "cas") {
      if (extra.cas === 0 ? existing : existing?.ModifyIndex !== extra.cas) {
        return false;
      }
    } else if (verb === "lock") {
      if (!extra.session) throw new ConsulError(500, "missing session");
      if (!extra.sessionExists?.(extra.session)) {
        throw new ConsulError(500, `invalid session "${extra.session}"`);
      }
      if (session && session !== extra.session) return false;
      if (session !== extra.session) lockIndex += 1;
      session = extra.session;
    } else if (verb === "unlock") {
      if (!extra.session) throw new ConsulError(500, "missing session");
      if (!existing || session !== extra.session) return false;
      session = undefined;
    }
    const unchanged = existing !== undefined &&
      existing.LockIndex === lockIndex && existing.Flags === input.flags &&
      existing.Session === session && sameBytes(existing.Value, input.value);
    if (unchanged) return true;
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
    this.touch("kvs", index);
    return true;
  }

  /** Releases or deletes the keys `session` holds, with its lock-delay. */
  invalidateKeys(
    session: { ID: string; Behavior: string; lockDelayMs: number },
    index: number,
  ): Change[] {
    const changes: Change[] = [];
    // state/session.go deleteSessionTxn: "Enforce the max lock delay".
    const delayMs = Math.min(session.lockDelayMs, MAX_LOCK_DELAY_MS);
    const now = Date.now();
    for (const entry of [...this.kv.values()]) {
      if (entry.Session !== session.ID) continue;
      if (session.Behavior === "delete") {
        this.deleteKey(entry.Key, index);
      } else {
        this.kv.set(entry.Key, {
          ...entry,
          Session: undefined,
          ModifyIndex: index,
        });
        this.touch("kvs", index);
      }
      if (delayMs > 0) this.lockDelays.set(entry.Key, now + delayMs);
      changes.push({ key: entry.Key });
    }
    return changes;
  }

  /** Runs `apply` atomically: any throw rolls the KV tables back. */
  atomically<T>(apply: () => T): T {
    const saved = {
      kv: new Map(this.kv),
      tombstones: new Map(this.tombstones),
      tables: new Map(this.#tables),
    };
    try {
      return apply();
    } catch (error) {
      this.kv = saved.kv;
      this.tombstones = saved.tombstones;
      this.#tables.clear();
      for (const [table, index] of saved.tables) this.#tables.set(table, index);
      throw error;
    }
  }

  /** What survives a restart, as Consul's Raft log and snapshots keep it. */
  snapshotKv(): Record<string, unknown> {
    return {
      raftIndex: this.#raftIndex,
      tables: [...this.#tables],
      kv: [...this.kv.values()].map((entry) => ({
        ...entry,
        Value: entry.Value && btoa(String.fromCharCode(...entry.Value)),
      })),
      tombstones: [...this.tombstones],
    };
  }

  /** Loads what `snapshotKv` saved. Lock-delays live in memory only. */
  restoreKv(data: Record<string, unknown>): void {
    this.#raftIndex = data.raftIndex as number;
    for (const [table, index] of data.tables as [Table, number][]) {
      this.#tables.set(table, index);
    }
    this.tombstones = new Map(data.tombstones as [string, number][]);
    this.kv = new Map(
      (data.kv as (KvEntry & { Value: string | null })[]).map((entry) => [
        entry.Key,
        {
          ...entry,
          Value: entry.Value === null
            ? null
            : Uint8Array.from(atob(entry.Value), (c) => c.charCodeAt(0)),
        },
      ]),
    );
  }
}

/** structs.MaxLockDelay: what deleteSessionTxn clamps a lock-delay to. */
export const MAX_LOCK_DELAY_MS = 60_000;
