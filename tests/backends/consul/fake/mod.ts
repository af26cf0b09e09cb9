/**
 * A fake Consul agent for tests, built from Consul's HTTP API documentation
 * (website/content/api-docs: session.mdx, kv.mdx, txn.mdx,
 * features/blocking.mdx, api-structure.mdx), because no Consul server can be
 * installed here. It serves what coolock's consul backend uses: sessions
 * with TTL and lock-delay, KV with acquire/release, CAS and recurse, the KV
 * part of `/v1/txn`, blocking queries, and ACL token checks.
 *
 * In-process: `startConsulFake({ port: 0 })`. As a process, for SIGSTOP and
 * SIGKILL faults:
 *
 * ```sh
 * deno run -A tests/fakes/consul.ts --port 8500 [--token T] [--ttl-multiplier 2]
 *   [--session-ttl-min 10s] [--dc dc1] [--data-dir DIR] [--no-key-validation]
 * ```
 *
 * Without `--token`, ACLs are off. With it, a request must carry that token
 * (`X-Consul-Token`, `Authorization: Bearer`, or `?token=`), else 403.
 *
 * Where Consul leaves room, the fake takes the strict side: a session is
 * invalidated exactly TTL after its last renewal (the documented lower
 * bound; a Consul leader reaps at 2 x TTL, which `--ttl-multiplier 2`
 * reproduces), lock-delay is judged by this process's wall clock as by
 * Consul's leader, and key names get Consul 1.21.5's check
 * (`[a-zA-Z0-9,_./\-?&=]`, no `..`). What the fake leaves out: nodes,
 * health checks (a session's checks are recorded, never run), namespaces,
 * the non-KV parts of `/v1/txn`, and consistency modes (every read is
 * consistent). State lives in memory, or in `--data-dir` across restarts:
 * TTLs then restart in full, as on a leader failover, but lock-delays are
 * forgotten (Consul's servers would keep theirs).
 *
 * @module
 */

import { parseGoDuration } from "./duration.ts";
import { blocking, json, text } from "./http.ts";
import { handleKv, handleTxn } from "./kv.ts";
import { type Change, ConsulError, ConsulState } from "./state.ts";

/** How to run the fake. */
export interface ConsulFakeOptions {
  /** The port on 127.0.0.1; 0 picks a free one. */
  readonly port?: number;
  /** The ACL token every request must carry; none turns ACLs off. */
  readonly token?: string;
  /** Session TTL timers are armed at TTL times this. Default 1. */
  readonly ttlMultiplier?: number;
  /** Consul's `session_ttl_min`. Default 10 s. */
  readonly sessionTtlMinMs?: number;
  /** The datacenter's name. Default `dc1`. */
  readonly datacenter?: string;
  /** Keeps KV and sessions across restarts in this directory. */
  readonly dataDir?: string;
  /** Consul 1.21.5's KV key name check. Default true. */
  readonly validateKeys?: boolean;
  /** Serves HTTPS with this PEM certificate and key. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** A running fake. */
export interface ConsulFake extends AsyncDisposable {
  readonly port: number;
  /** `http://127.0.0.1:<port>` (or `https://`). */
  readonly url: string;
  /** The store, for assertions and out-of-band changes. */
  readonly state: ConsulState;
  /** Ends blocking queries, stops the server and every TTL timer. */
  close(): Promise<void>;
}

function tokenOf(request: Request, params: URLSearchParams): string {
  const bearer = /^Bearer\s+(.+)$/i.exec(
    request.headers.get("authorization") ?? "",
  );
  return request.headers.get("x-consul-token") ?? bearer?.[1] ??
    params.get("token") ?? "";
}

/** Starts the fake; it listens before this returns. */
export function startConsulFake(options: ConsulFakeOptions = {}): ConsulFake {
  const state = new ConsulState(options);
  const dataFile = options.dataDir && `${options.dataDir}/consul-fake.json`;
  if (dataFile) {
    try {
      state.restore(Deno.readTextFileSync(dataFile));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    state.onCommit = () => Deno.writeTextFileSync(dataFile, state.snapshot());
  }
  const datacenter = options.datacenter ?? "dc1";
  const stopping = new AbortController();

  const route = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const params = url.searchParams;
    const path = url.pathname;
    const signal = AbortSignal.any([request.signal, stopping.signal]);
    if (path === "/v1/status/leader") return json("127.0.0.1:8300");
    if (path === "/v1/status/peers") return json(["127.0.0.1:8300"]);
    if (options.token !== undefined) {
      const token = tokenOf(request, params);
      if (token !== options.token) {
        return text(token === "" ? "Permission denied" : "ACL not found", 403);
      }
    }
    const dc = params.get("dc");
    if (dc !== null && dc !== "" && dc !== datacenter) {
      return text("No path to datacenter", 500);
    }
    if (path.startsWith("/v1/kv/")) {
      return await handleKv(
        state,
        request,
        params,
        decodeURIComponent(path.slice("/v1/kv/".length)),
        { validateKeys: options.validateKeys ?? true, signal },
      );
    }
    if (path === "/v1/txn" && request.method === "PUT") {
      return await handleTxn(state, request);
    }
    return await sessionRoute(request, path, params, signal);
  };

  const sessionRoute = async (
    request: Request,
    path: string,
    params: URLSearchParams,
    signal: AbortSignal,
  ): Promise<Response> => {
    const [, , , verb, id = ""] = path.split("/");
    if (path.split("/")[2] !== "session") return text("Not found", 404);
    const uuid = decodeURIComponent(id);
    const write = request.method === "PUT";
    if (verb === "create" && write) {
      const body = await request.text();
      let fields: Record<string, unknown> = {};
      try {
        if (body.trim() !== "") fields = JSON.parse(body);
      } catch (error) {
        return text(`Request decode failed: ${(error as Error).message}`, 400);
      }
      return json({ ID: state.createSession(fields) });
    }
    if (verb === "destroy" && write) {
      if (uuid === "") return text("Missing session", 400);
      state.destroySession(uuid);
      return json(true);
    }
    if (verb === "renew" && write) {
      if (uuid === "") return text("Missing session", 400);
      const renewed = state.renewSession(uuid);
      if (!renewed) return text(`Session id '${uuid}' not found`, 404);
      return json([renewed]);
    }
    if ((verb === "info" || verb === "list") && request.method === "GET") {
      const matches = (change: Change) =>
        "session" in change && (verb === "list" || change.session === uuid);
      return await blocking(state, params, signal, () => {
        const found = verb === "list"
          ? [...state.sessions.keys()].map((key) => state.getSession(key))
          : [state.getSession(uuid)].filter((session) => session);
        return {
          index: state.sessionIndex,
          matches,
          respond: (headers) => json(found, 200, headers),
        };
      });
    }
    return text(`Unsupported path '${path}'`, 404);
  };

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    ...(options.tls ?? {}),
    onListen: () => {},
    handler: async (request) => {
      try {
        return await route(request);
      } catch (error) {
        if (error instanceof ConsulError) {
          return text(error.message, error.status);
        }
        return text(String((error as Error).message), 500);
      }
    },
  });
  const port = server.addr.port;
  const close = async () => {
    stopping.abort();
    state.close();
    await server.shutdown();
  };
  return {
    port,
    url: `${options.tls ? "https" : "http"}://127.0.0.1:${port}`,
    state,
    close,
    [Symbol.asyncDispose]: close,
  };
}

function flag(args: string[], name: string): string | undefined {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : undefined;
}

if (import.meta.main) {
  const args = Deno.args;
  const port = Number(flag(args, "port") ?? "8500");
  const ttlMin = flag(args, "session-ttl-min");
  const fake = startConsulFake({
    port,
    token: flag(args, "token") ?? Deno.env.get("CONSUL_FAKE_TOKEN"),
    ttlMultiplier: Number(flag(args, "ttl-multiplier") ?? "1"),
    sessionTtlMinMs: ttlMin === undefined ? undefined : parseGoDuration(ttlMin),
    datacenter: flag(args, "dc"),
    dataDir: flag(args, "data-dir"),
    validateKeys: !args.includes("--no-key-validation"),
  });
  console.log(`Consul API fake listening on ${fake.url}`);
}
