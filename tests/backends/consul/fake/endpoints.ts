/**
 * The session, catalog, health, agent and status endpoints of the Consul
 * fake, as one agent answers them.
 *
 * `PUT /v1/session/create` follows agent/session_endpoint.go SessionCreate:
 * the session defaults to the agent's node, `NodeChecks: ["serfHealth"]`,
 * `LockDelay: 15s` and `Behavior: release`; the body is decoded with Go's
 * case-insensitive field names, `LockDelay` by structs.Session.UnmarshalJSON
 * (a string duration, or a number of nanoseconds; under 1000 means
 * seconds); then fixupEmptySessionChecks drops the default serfHealth when
 * the body says `Checks: []`; and a client agent refuses another datacenter
 * ("cross datacenter lock must be created at server agent").
 *
 * @module
 */

import type { Authorizer } from "./acl.ts";
import { type Cluster, SERF_CHECK, type SessionInput } from "./cluster.ts";
import { parseGoDuration } from "./duration.ts";
import { blocking, json, text } from "./http.ts";
import { type Change, ConsulError } from "./state.ts";

/** One agent of the fake cluster. */
export interface AgentInfo {
  readonly node: string;
  readonly server: boolean;
  readonly datacenter: string;
  readonly version: string;
}

/** What an endpoint runs with. */
export interface EndpointContext {
  readonly cluster: Cluster;
  readonly agent: AgentInfo;
  readonly authz: Authorizer;
  readonly signal: AbortSignal;
  /** `?dc=` if it names another datacenter than the agent's. */
  readonly otherDc: string | undefined;
}

const NS_PER_MS = 1e6;

/** A Go struct decode: field names match case-insensitively. */
function field(body: Record<string, unknown>, name: string): unknown {
  return Object.entries(body).find(([key]) =>
    key.toLowerCase() === name.toLowerCase()
  )?.[1];
}

/** structs.Session.UnmarshalJSON's LockDelay, in nanoseconds. */
function lockDelayNs(raw: unknown): number | undefined {
  if (raw === undefined || raw === null) return undefined;
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
  return ns < 1000 ? ns * 1e9 : ns;
}

function stringList(raw: unknown): string[] | null {
  if (raw === null) return null;
  if (!Array.isArray(raw)) {
    throw new ConsulError(400, "Request decode failed: expected a list");
  }
  return raw.map(String);
}

/** SessionCreate's defaults, the decoded body, and fixupEmptySessionChecks. */
export function sessionInput(
  body: Record<string, unknown>,
  agent: AgentInfo,
): SessionInput {
  let checks: string[] | null = [SERF_CHECK];
  let nodeChecks: string[] | null = [SERF_CHECK];
  let serviceChecks: { ID: string; Namespace: string }[] | null = null;
  if (field(body, "Checks") !== undefined) {
    checks = stringList(field(body, "Checks"));
  }
  if (field(body, "NodeChecks") !== undefined) {
    nodeChecks = stringList(field(body, "NodeChecks"));
  }
  const rawService = field(body, "ServiceChecks");
  if (rawService !== undefined && rawService !== null) {
    if (!Array.isArray(rawService)) {
      throw new ConsulError(400, "Request decode failed: expected a list");
    }
    serviceChecks = rawService.map((check) => ({
      ID: String(field(check, "ID") ?? ""),
      Namespace: String(field(check, "Namespace") ?? ""),
    }));
  }
  // fixupEmptySessionChecks (agent/session_endpoint.go).
  if ((checks ?? []).length === 0) {
    nodeChecks = [];
  } else if (checks!.length === 1 && checks![0] === SERF_CHECK) {
    checks = null;
  } else if ((nodeChecks ?? []).length === 0) {
    checks = null;
  }
  // Old-style Checks beyond the fixup's cases are node checks too.
  const merged = [...new Set([...(nodeChecks ?? []), ...(checks ?? [])])];
  return {
    Name: String(field(body, "Name") ?? ""),
    Node: String(field(body, "Node") ?? "") || agent.node,
    LockDelayNs: lockDelayNs(field(body, "LockDelay")) ?? 15_000 * NS_PER_MS,
    Behavior: String(field(body, "Behavior") ?? ""),
    TTL: String(field(body, "TTL") ?? ""),
    NodeChecks: merged,
    ServiceChecks: serviceChecks,
  };
}

async function bodyOf(request: Request): Promise<Record<string, unknown>> {
  const raw = await request.text();
  if (raw.trim() === "") return {};
  try {
    const parsed = JSON.parse(raw);
    if (typeof parsed !== "object" || parsed === null) {
      throw new TypeError("not an object");
    }
    return parsed;
  } catch (error) {
    throw new ConsulError(
      400,
      `Request decode failed: ${(error as Error).message}`,
    );
  }
}

/** `/v1/session/*`. */
export async function handleSession(
  ctx: EndpointContext,
  request: Request,
  path: string,
  params: URLSearchParams,
): Promise<Response> {
  const { cluster, authz } = ctx;
  const [, , , verb, ...rest] = path.split("/");
  const id = decodeURIComponent(rest.join("/"));
  const write = request.method === "PUT";
  if (verb === "create" && write) {
    const input = sessionInput(await bodyOf(request), ctx.agent);
    if (ctx.otherDc !== undefined) {
      if (!ctx.agent.server) {
        throw new ConsulError(
          500,
          "cross datacenter lock must be created at server agent",
        );
      }
      throw new ConsulError(500, "No path to datacenter");
    }
    authz.require("session", input.Node, "write");
    return json({ ID: cluster.createSession(input) });
  }
  if (ctx.otherDc !== undefined) {
    throw new ConsulError(500, "No path to datacenter");
  }
  if ((verb === "destroy" || verb === "renew") && write) {
    if (id === "") return text("Missing session", 400);
    const existing = cluster.getSession(id);
    if (existing) authz.require("session", existing.Node, "write");
    if (verb === "destroy") {
      cluster.destroySession(id);
      return json(true);
    }
    const renewed = cluster.renewSession(id);
    if (!renewed) return text(`Session id '${id}' not found`, 404);
    return json([renewed]);
  }
  if (
    (verb === "info" || verb === "list" || verb === "node") &&
    request.method === "GET"
  ) {
    const matches = (change: Change) =>
      "session" in change && (verb !== "info" || change.session === id);
    return await blocking(cluster.state, params, ctx.signal, () => {
      const found = cluster.listSessions().filter((session) =>
        (verb === "list" ||
          (verb === "info" ? session.ID === id : session.Node === id)) &&
        authz.allows("session", session.Node, "read")
      );
      return {
        index: cluster.state.tableIndex("sessions"),
        matches,
        respond: (headers) => json(found, 200, headers),
      };
    });
  }
  return text(`Unsupported path '${path}'`, 404);
}

/** `/v1/catalog/register`, `/v1/catalog/deregister`, `/v1/catalog/nodes`. */
export async function handleCatalog(
  ctx: EndpointContext,
  request: Request,
  path: string,
): Promise<Response> {
  const { cluster, authz } = ctx;
  if (path === "/v1/catalog/nodes" && request.method === "GET") {
    return json(
      [...cluster.nodes.values()].filter((node) =>
        authz.allows("node", node.Node, "read")
      ),
      200,
      { "x-consul-index": String(cluster.state.tableIndex("nodes")) },
    );
  }
  if (request.method !== "PUT") return text(`Unsupported path '${path}'`, 404);
  const body = await bodyOf(request);
  const node = String(field(body, "Node") ?? "");
  if (node === "") return text("Must provide node", 400);
  authz.require("node", node, "write");
  if (path === "/v1/catalog/deregister") {
    cluster.deregisterNode(node);
    return json(true);
  }
  if (path === "/v1/catalog/register") {
    if (!cluster.nodes.has(node)) {
      cluster.registerNode(node, String(field(body, "Address") ?? "127.0.0.1"));
    }
    const check = field(body, "Check") as Record<string, unknown> | undefined;
    if (check) {
      const status = String(field(check, "Status") ?? "critical");
      if (
        status !== "passing" && status !== "warning" && status !== "critical"
      ) {
        return text(`Invalid check status: '${status}'`, 400);
      }
      cluster.setCheck(
        node,
        String(field(check, "CheckID") ?? field(check, "Name") ?? ""),
        status,
      );
    }
    return json(true);
  }
  return text(`Unsupported path '${path}'`, 404);
}

/** `/v1/health/node/:node`. */
export function handleHealth(ctx: EndpointContext, path: string): Response {
  const node = decodeURIComponent(path.slice("/v1/health/node/".length));
  ctx.authz.require("node", node, "read");
  return json(ctx.cluster.nodeChecks(node), 200, {
    "x-consul-index": String(ctx.cluster.state.tableIndex("checks")),
  });
}

/** `GET /v1/agent/self`: needs `agent:read` on the agent's node. */
export function handleAgentSelf(ctx: EndpointContext): Response {
  const { agent } = ctx;
  ctx.authz.require("agent", agent.node, "read");
  return json({
    Config: {
      Datacenter: agent.datacenter,
      NodeName: agent.node,
      NodeID: "",
      Server: agent.server,
      Revision: "fake",
      Version: agent.version,
    },
    Member: { Name: agent.node, Addr: "127.0.0.1", Status: 1 },
  });
}
