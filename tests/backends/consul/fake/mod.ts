/**
 * A fake Consul cluster for tests, because no Consul server can be
 * installed here. It follows Consul's own source (hashicorp/consul; each
 * file's header names the functions it follows, and fake.test.ts cites them
 * for every behaviour it asserts): sessions with TTL (reaped at 2 × TTL),
 * lock-delay (clamped to 60 s), node and check invalidation, KV with
 * acquire/release, CAS and recurse, `/v1/txn` (every op's error collected),
 * blocking queries with Consul's index rules, and ACL tokens.
 *
 * One fake is one datacenter: one state store (the servers), served by
 * several agents, each a node of its own on a port of its own, so that a
 * lock's holder and contender can sit on different agents.
 *
 * In-process: `startConsulFake({ agents: 2 })`. As a process, for SIGSTOP
 * and SIGKILL faults:
 *
 * ```sh
 * deno run -A tests/backends/consul/fake/mod.ts --port 8500 --port 8501 \
 *   [--token T] [--ttl-multiplier 2] [--session-ttl-min 10s] [--dc dc1] \
 *   [--data-dir DIR] [--no-key-validation] [--clock-offset-ms N]
 * ```
 *
 * Fake-only controls, on any agent's port (everything else is Consul's API;
 * a node's serfHealth goes critical through Consul's own
 * `PUT /v1/catalog/register` with a `Check`, and a node leaves through
 * `PUT /v1/catalog/deregister`):
 *
 * - `PUT /fake/agent/<node>?state=up|down|hang`: the agent answers, refuses
 *   connections (as a stopped agent), or never answers (as a hung or
 *   partitioned one). `down` and `hang` end its requests in flight.
 * - `PUT /fake/leader-change?gap=<ms>`: a new leader; for `gap` ms every
 *   request answers `500 No cluster leader`, then every session's TTL timer
 *   is re-armed in full (session_ttl.go initializeSessionTimers).
 *
 * What the fake leaves out: services and their checks, namespaces and
 * partitions, the non-KV parts of `/v1/txn`, other datacenters, and
 * consistency modes (every read is consistent). State lives in memory, or in
 * `--data-dir` across restarts: TTLs then restart in full, as on a leader
 * election; lock-delays are in memory only, as on Consul's servers.
 *
 * @module
 */

import { Acl, type AclOptions, tokenOf } from "./acl.ts";
import { Cluster, type ClusterOptions } from "./cluster.ts";
import { parseGoDuration } from "./duration.ts";
import {
  type AgentInfo,
  type EndpointContext,
  handleAgentSelf,
  handleCatalog,
  handleHealth,
  handleSession,
} from "./endpoints.ts";
import { json, text } from "./http.ts";
import { handleKv, handleTxn } from "./kv.ts";
import { ConsulError, ConsulState } from "./state.ts";

/** How to run the fake. */
export interface ConsulFakeOptions extends ClusterOptions {
  /** The agents' ports on 127.0.0.1 (0 picks a free one). Default `[0]`. */
  readonly ports?: readonly number[];
  /** How many agents, when `ports` is not given. Default 1. */
  readonly agents?: number;
  /** The one ACL token (management) every request must carry. */
  readonly token?: string;
  /** ACL tokens with rules; overrides `token`. */
  readonly acl?: AclOptions;
  /** The datacenter's name. Default `dc1`. */
  readonly datacenter?: string;
  /** Whether the agents are server agents. Default false (client agents). */
  readonly servers?: boolean;
  /** Keeps KV, sessions and the catalog across restarts in this directory. */
  readonly dataDir?: string;
  /** Consul 1.21.5's KV key name check. Default true. */
  readonly validateKeys?: boolean;
  /** Serves HTTPS with this PEM certificate and key. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Shifts the `Date` header the agents send, for clock-skew tests. */
  readonly clockOffsetMs?: number;
}

/** One agent's state: up, refusing connections, or never answering. */
export type AgentState = "up" | "down" | "hang";

/** A running fake. */
export interface ConsulFake extends AsyncDisposable {
  /** The first agent's port. */
  readonly port: number;
  /** Every agent's port, in order. */
  readonly ports: readonly number[];
  /** The agents' node names, in the order of `ports`. */
  readonly nodes: readonly string[];
  /** `http://127.0.0.1:<port>` of the first agent (or `https://`). */
  readonly url: string;
  /** The KV store, for assertions and out-of-band changes. */
  readonly state: ConsulState;
  /** Sessions, nodes and checks. */
  readonly cluster: Cluster;
  /** Sets an agent up, down or hung. */
  setAgent(node: string, state: AgentState): Promise<void>;
  /** A new leader, after `gapMs` without one. */
  leaderChange(gapMs?: number): Promise<void>;
  /** Ends blocking queries, stops the servers and every TTL timer. */
  close(): Promise<void>;
}

const VERSION = "1.21.5";

/** Starts the fake; its agents listen before this returns. */
export function startConsulFake(options: ConsulFakeOptions = {}): ConsulFake {
  const state = new ConsulState();
  const cluster = new Cluster(state, options);
  const acl = new Acl(
    options.acl ??
      (options.token === undefined ? undefined : {
        tokens: [{ secret: options.token, rules: "management" }],
      }),
  );
  const dataFile = options.dataDir && `${options.dataDir}/consul-fake.json`;
  const ports = options.ports ?? Array(options.agents ?? 1).fill(0);
  const nodes = ports.map((_, i) => `node-${i + 1}`);
  let restored = false;
  if (dataFile) {
    try {
      const data = JSON.parse(Deno.readTextFileSync(dataFile));
      state.restoreKv(data.kv);
      cluster.restore(data.cluster);
      restored = true;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    state.onCommit = () =>
      Deno.writeTextFileSync(
        dataFile,
        JSON.stringify({ kv: state.snapshotKv(), cluster: cluster.snapshot() }),
      );
  }
  if (!restored) { for (const node of nodes) cluster.registerNode(node); }
  const datacenter = options.datacenter ?? "dc1";
  const closing = new AbortController();
  let noLeaderUntil = 0;

  const route = async (
    agent: AgentInfo,
    request: Request,
    signal: AbortSignal,
  ): Promise<Response> => {
    const url = new URL(request.url);
    const params = url.searchParams;
    const path = url.pathname;
    if (path.startsWith("/fake/")) return await control(path, params);
    if (path === "/v1/status/leader") {
      return json(Date.now() < noLeaderUntil ? "" : "127.0.0.1:8300");
    }
    if (path === "/v1/status/peers") return json(["127.0.0.1:8300"]);
    if (Date.now() < noLeaderUntil) {
      throw new ConsulError(500, "No cluster leader");
    }
    const authz = acl.resolve(tokenOf(request, params));
    const dc = params.get("dc");
    // The agent's own endpoints answer locally, whatever ?dc= says.
    const local = path === "/v1/agent/self";
    const ctx: EndpointContext = {
      cluster,
      agent,
      authz,
      signal,
      otherDc: !local && dc !== null && dc !== "" && dc !== datacenter
        ? dc
        : undefined,
    };
    if (path.startsWith("/v1/session/")) {
      return await handleSession(ctx, request, path, params);
    }
    if (ctx.otherDc !== undefined) {
      throw new ConsulError(500, "No path to datacenter");
    }
    const kv = {
      state,
      cluster,
      authz,
      signal,
      validateKeys: options.validateKeys ?? true,
    };
    if (path.startsWith("/v1/kv/")) {
      return await handleKv(
        kv,
        request,
        params,
        decodeURIComponent(path.slice("/v1/kv/".length)),
      );
    }
    if (path === "/v1/txn" && request.method === "PUT") {
      return await handleTxn(kv, request);
    }
    if (path.startsWith("/v1/catalog/")) {
      return await handleCatalog(ctx, request, path);
    }
    if (path.startsWith("/v1/health/node/")) return handleHealth(ctx, path);
    if (path === "/v1/agent/self") return handleAgentSelf(ctx);
    return text(`Unsupported path '${path}'`, 404);
  };

  const agents = ports.map((port, i) => {
    const info: AgentInfo = {
      node: nodes[i],
      server: options.servers ?? false,
      datacenter,
      version: VERSION,
    };
    return {
      info,
      port,
      state: "up" as AgentState,
      stop: new AbortController(),
      server: undefined as Deno.HttpServer<Deno.NetAddr> | undefined,
    };
  });
  type Agent = typeof agents[number];

  const serve = (agent: Agent) => {
    agent.stop = new AbortController();
    agent.server = Deno.serve({
      hostname: "127.0.0.1",
      port: agent.port,
      ...(options.tls ?? {}),
      onListen: () => {},
      handler: async (request) => {
        // Each state change aborts the agent's current controller, which
        // ends the requests of the state before.
        const generation = agent.stop.signal;
        const signal = AbortSignal.any([
          request.signal,
          closing.signal,
          generation,
        ]);
        let response: Response | undefined;
        if (agent.state === "up") {
          try {
            response = await route(agent.info, request, signal);
          } catch (error) {
            response = error instanceof ConsulError
              ? text(error.message, error.status)
              : text(String((error as Error).message), 500);
          }
        }
        // A hung agent never answers; a stopped one drops what it had.
        while (agent.state === "hang" && !request.signal.aborted) {
          const next = AbortSignal.any([
            agent.stop.signal,
            request.signal,
            closing.signal,
          ]);
          if (next.aborted) break;
          await new Promise((resolve) =>
            next.addEventListener("abort", resolve, { once: true })
          );
        }
        if (!response || generation.aborted || agent.state !== "up") {
          await response?.body?.cancel();
          return text("the agent is gone", 503);
        }
        if (options.clockOffsetMs) {
          response.headers.set(
            "date",
            new Date(Date.now() + options.clockOffsetMs).toUTCString(),
          );
        }
        return response;
      },
    });
    agent.port = agent.server.addr.port;
  };
  for (const agent of agents) serve(agent);

  const setAgent = async (node: string, next: AgentState) => {
    const agent = agents.find((candidate) => candidate.info.node === node);
    if (!agent) throw new ConsulError(404, `No agent for node '${node}'`);
    const previous = agent.state;
    if (previous === next) return;
    agent.state = next;
    agent.stop.abort();
    agent.stop = new AbortController();
    if (next === "down") await agent.server?.shutdown();
    if (previous === "down") serve(agent);
  };

  const leaderChange = async (gapMs = 0) => {
    cluster.stepDown();
    noLeaderUntil = Date.now() + gapMs;
    if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
    cluster.leaderChange();
  };

  const control = async (
    path: string,
    params: URLSearchParams,
  ): Promise<Response> => {
    const agent = /^\/fake\/agent\/([^/]+)$/.exec(path);
    if (agent) {
      const next = params.get("state") as AgentState;
      if (!["up", "down", "hang"].includes(next)) {
        return text("state must be up, down or hang", 400);
      }
      // Answer first: the agent that carries this request may be the one.
      setTimeout(() => void setAgent(decodeURIComponent(agent[1]), next), 0);
      return json(true);
    }
    if (path === "/fake/leader-change") {
      await leaderChange(Number(params.get("gap") ?? "0"));
      return json(true);
    }
    return text(`Unsupported path '${path}'`, 404);
  };

  const close = async () => {
    closing.abort();
    cluster.close();
    await Promise.all(
      agents.map((agent) =>
        agent.state === "down" ? undefined : agent.server?.shutdown()
      ),
    );
  };
  const scheme = options.tls ? "https" : "http";
  return {
    get port() {
      return agents[0].port;
    },
    get ports() {
      return agents.map((agent) => agent.port);
    },
    nodes,
    get url() {
      return `${scheme}://127.0.0.1:${agents[0].port}`;
    },
    state,
    cluster,
    setAgent,
    leaderChange,
    close,
    [Symbol.asyncDispose]: close,
  };
}

function flags(args: string[], name: string): string[] {
  return args.flatMap((arg, i) => arg === `--${name}` ? [args[i + 1]] : []);
}

if (import.meta.main) {
  const args = Deno.args;
  const one = (name: string) => flags(args, name)[0];
  const ttlMin = one("session-ttl-min");
  const ports = flags(args, "port").map(Number);
  const fake = startConsulFake({
    ports: ports.length ? ports : [8500],
    token: one("token") ?? Deno.env.get("CONSUL_FAKE_TOKEN"),
    ttlMultiplier: Number(one("ttl-multiplier") ?? "2"),
    sessionTtlMinMs: ttlMin === undefined ? undefined : parseGoDuration(ttlMin),
    datacenter: one("dc"),
    servers: args.includes("--servers"),
    dataDir: one("data-dir"),
    validateKeys: !args.includes("--no-key-validation"),
    clockOffsetMs: Number(one("clock-offset-ms") ?? "0"),
  });
  console.log(`Consul fake listening on ${fake.ports.join(", ")}`);
}
