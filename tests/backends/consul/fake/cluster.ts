/**
 * Sessions, nodes and health checks of the Consul fake, as Consul's servers
 * keep them:
 *
 * - Session.Apply (agent/consul/session_endpoint.go) checks Behavior and the
 *   TTL range `[session_ttl_min, 24h]`, but not the lock-delay;
 *   sessionCreateTxn (agent/consul/state/session.go) needs the node and each
 *   check to exist, and no check to be critical.
 * - A session is invalidated when it is destroyed, when its TTL timer fires
 *   (armed at TTL × SessionTTLMultiplier = 2, agent/consul/session_ttl.go
 *   createSessionTimer, agent/structs/structs.go), when one of its checks
 *   goes critical (state/catalog.go ensureCheckTxn → deleteSessionTxn), or
 *   when its node is deregistered (state/catalog.go deleteNodeTxn), whatever
 *   its checks. Invalidation releases or deletes its keys and starts their
 *   lock-delay, clamped to 60 s (state/session.go deleteSessionTxn).
 * - A new leader re-arms every session's timer in full
 *   (session_ttl.go initializeSessionTimers): {@linkcode Cluster.leaderChange}.
 *
 * @module
 */

import { formatGoDuration, parseGoDuration } from "./duration.ts";
import { type Change, ConsulError, type ConsulState } from "./state.ts";

/** A session, as `GET /v1/session/info/:uuid` returns it. */
export interface SessionEntry {
  readonly ID: string;
  readonly Name: string;
  readonly Node: string;
  /** Nanoseconds, as Go's `time.Duration` marshals; stored unclamped. */
  readonly LockDelay: number;
  readonly Behavior: "release" | "delete";
  readonly TTL: string;
  readonly NodeChecks: readonly string[] | null;
  readonly ServiceChecks: readonly { ID: string; Namespace: string }[] | null;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** A node's health check, as `/v1/health/node/:node` returns it. */
export interface HealthCheck {
  readonly Node: string;
  readonly CheckID: string;
  readonly Name: string;
  readonly Status: "passing" | "warning" | "critical";
  readonly ServiceID: string;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** A catalog node. */
export interface NodeEntry {
  readonly Node: string;
  readonly Address: string;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** What Session.Apply receives after the HTTP layer's defaults. */
export interface SessionInput {
  readonly Name: string;
  readonly Node: string;
  readonly LockDelayNs: number;
  readonly Behavior: string;
  readonly TTL: string;
  readonly NodeChecks: readonly string[] | null;
  readonly ServiceChecks: readonly { ID: string; Namespace: string }[] | null;
}

/** How the fake's servers are configured. */
export interface ClusterOptions {
  /** The TTL timer is armed at TTL times this. Default 2, as Consul. */
  readonly ttlMultiplier?: number;
  /** The servers' `session_ttl_min`. Default 10 s. */
  readonly sessionTtlMinMs?: number;
}

const MAX_TTL_MS = 86_400_000;
const NS_PER_MS = 1e6;
/** structs.SerfCheckID. */
export const SERF_CHECK = "serfHealth";

type Session = SessionEntry & { ttlMs: number };

/** The session table and the catalog of one fake datacenter. */
export class Cluster {
  readonly sessions = new Map<string, Session>();
  readonly nodes = new Map<string, NodeEntry>();
  readonly checks = new Map<string, HealthCheck>();
  readonly ttlMultiplier: number;
  readonly ttlMinMs: number;
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(readonly state: ConsulState, options: ClusterOptions = {}) {
    this.ttlMultiplier = options.ttlMultiplier ?? 2;
    this.ttlMinMs = options.sessionTtlMinMs ?? 10_000;
  }

  // --- catalog (agent/consul/state/catalog.go) ----------------------------

  /** Registers a node with a passing serfHealth, as a joining agent is. */
  registerNode(node: string, address = "127.0.0.1"): void {
    const index = this.state.nextIndex();
    const existing = this.nodes.get(node);
    this.nodes.set(node, {
      Node: node,
      Address: address,
      CreateIndex: existing?.CreateIndex ?? index,
      ModifyIndex: index,
    });
    this.state.touch("nodes", index);
    this.state.commit([{ node }]);
    if (!this.checks.has(checkKey(node, SERF_CHECK))) {
      this.setCheck(node, SERF_CHECK, "passing", "Serf Health Status");
    }
  }

  /**
   * ensureCheckTxn: stores the check; when it is critical, every session
   * that names it is invalidated at once, whatever its TTL.
   */
  setCheck(
    node: string,
    checkId: string,
    status: HealthCheck["Status"],
    name = checkId,
  ): void {
    if (!this.nodes.has(node)) {
      throw new ConsulError(500, "Missing node registration");
    }
    const index = this.state.nextIndex();
    const key = checkKey(node, checkId);
    const existing = this.checks.get(key);
    this.checks.set(key, {
      Node: node,
      CheckID: checkId,
      Name: existing?.Name ?? name,
      Status: status,
      ServiceID: "",
      CreateIndex: existing?.CreateIndex ?? index,
      ModifyIndex: index,
    });
    this.state.touch("checks", index);
    const changes: Change[] = [{ node }];
    if (status === "critical") {
      for (const session of [...this.sessions.values()]) {
        if (session.Node === node && session.NodeChecks?.includes(checkId)) {
          changes.push(...this.#delete(session.ID, index));
        }
      }
    }
    this.state.commit(changes);
  }

  /** deleteNodeTxn: the node, its checks and every session on it go. */
  deregisterNode(node: string): void {
    if (!this.nodes.has(node)) return;
    const index = this.state.nextIndex();
    const changes: Change[] = [{ node }];
    for (const [key, check] of [...this.checks]) {
      if (check.Node === node) this.checks.delete(key);
    }
    this.nodes.delete(node);
    this.state.touch("nodes", index);
    this.state.touch("checks", index);
    for (const session of [...this.sessions.values()]) {
      if (session.Node === node) {
        changes.push(...this.#delete(session.ID, index));
      }
    }
    this.state.commit(changes);
  }

  /** The checks of `node`. */
  nodeChecks(node: string): HealthCheck[] {
    return [...this.checks.values()].filter((check) => check.Node === node);
  }

  // --- sessions ------------------------------------------------------------

  /** Session.Apply (create) and sessionCreateTxn; resolves the new ID. */
  createSession(input: SessionInput): string {
    if (input.Node === "") throw new ConsulError(500, "Must provide Node");
    const behavior = input.Behavior || "release";
    if (behavior !== "release" && behavior !== "delete") {
      throw new ConsulError(500, `Invalid Behavior setting '${behavior}'`);
    }
    let ttlMs = 0;
    if (input.TTL !== "") {
      const parsed = parseGoDuration(input.TTL);
      if (parsed === undefined) {
        throw new ConsulError(
          500,
          `Session TTL '${input.TTL}' invalid: time: invalid duration "${input.TTL}"`,
        );
      }
      if (parsed !== 0 && (parsed < this.ttlMinMs || parsed > MAX_TTL_MS)) {
        throw new ConsulError(
          500,
          `Invalid Session TTL '${parsed * NS_PER_MS}', must be between [${
            formatGoDuration(this.ttlMinMs)
          }=${formatGoDuration(MAX_TTL_MS)}]`,
        );
      }
      ttlMs = parsed;
    }
    if (!this.nodes.has(input.Node)) {
      throw new ConsulError(500, "Missing node registration");
    }
    for (const checkId of input.NodeChecks ?? []) {
      const check = this.checks.get(checkKey(input.Node, checkId));
      if (!check) {
        throw new ConsulError(500, `Missing check '${checkId}' registration`);
      }
      if (check.Status === "critical") {
        throw new ConsulError(500, `Check '${checkId}' is in critical state`);
      }
    }
    for (const { ID } of input.ServiceChecks ?? []) {
      throw new ConsulError(500, `Missing check '${ID}' registration`);
    }
    const index = this.state.nextIndex();
    const session: Session = {
      ID: crypto.randomUUID(),
      Name: input.Name,
      Node: input.Node,
      LockDelay: input.LockDelayNs,
      Behavior: behavior,
      TTL: input.TTL,
      NodeChecks: input.NodeChecks,
      ServiceChecks: input.ServiceChecks,
      CreateIndex: index,
      ModifyIndex: index,
      ttlMs,
    };
    this.sessions.set(session.ID, session);
    this.state.touch("sessions", index);
    this.#arm(session);
    this.state.commit([{ session: session.ID }]);
    return session.ID;
  }

  /** session_ttl.go createSessionTimer: TTL × SessionTTLMultiplier. */
  #arm(session: Session): void {
    clearTimeout(this.#timers.get(session.ID));
    if (session.ttlMs === 0) return;
    this.#timers.set(
      session.ID,
      setTimeout(
        () => this.destroySession(session.ID),
        session.ttlMs * this.ttlMultiplier,
      ),
    );
  }

  /** Session.Renew: resets the timer; `undefined` when the session is gone. */
  renewSession(id: string): SessionEntry | undefined {
    const session = this.sessions.get(id);
    if (session) this.#arm(session);
    return session && publicSession(session);
  }

  /** The session, as the API shows it. */
  getSession(id: string): SessionEntry | undefined {
    const session = this.sessions.get(id);
    return session && publicSession(session);
  }

  /** Every session, as the API shows them. */
  listSessions(): SessionEntry[] {
    return [...this.sessions.values()].map(publicSession);
  }

  /** Session.Apply (destroy) → deleteSessionTxn. */
  destroySession(id: string): void {
    const index = this.state.nextIndex();
    this.state.commit(this.#delete(id, index));
  }

  #delete(id: string, index: number): Change[] {
    const session = this.sessions.get(id);
    if (!session) return [];
    clearTimeout(this.#timers.get(id));
    this.#timers.delete(id);
    this.sessions.delete(id);
    this.state.touch("sessions", index);
    return [
      { session: id },
      ...this.state.invalidateKeys({
        ID: id,
        Behavior: session.Behavior,
        lockDelayMs: session.LockDelay / NS_PER_MS,
      }, index),
    ];
  }

  /** initializeSessionTimers: a new leader re-arms every timer in full. */
  leaderChange(): void {
    for (const session of this.sessions.values()) this.#arm(session);
  }

  /** clearAllSessionTimers: a leader that steps down stops every timer. */
  stepDown(): void {
    this.close();
  }

  /** Stops every TTL timer. */
  close(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  /** What survives a restart. */
  snapshot(): Record<string, unknown> {
    return {
      sessions: [...this.sessions.values()],
      nodes: [...this.nodes.values()],
      checks: [...this.checks.values()],
    };
  }

  /** Loads a snapshot; TTL timers restart in full, as on a new leader. */
  restore(data: Record<string, unknown>): void {
    for (const node of data.nodes as NodeEntry[]) {
      this.nodes.set(node.Node, node);
    }
    for (const check of data.checks as HealthCheck[]) {
      this.checks.set(checkKey(check.Node, check.CheckID), check);
    }
    for (const session of data.sessions as Session[]) {
      this.sessions.set(session.ID, session);
      this.#arm(session);
    }
  }
}

function checkKey(node: string, checkId: string): string {
  return `${node}\u0000${checkId}`;
}

function publicSession({ ttlMs: _, ...session }: Session): SessionEntry {
  return session;
}
