/**
 * The `/v1/kv/:key` and `/v1/txn` endpoints of the Consul fake, as
 * agent/kvs_endpoint.go, agent/txn_endpoint.go, agent/consul/kvs_endpoint.go,
 * agent/consul/txn_endpoint.go and agent/consul/state/txn.go answer them.
 *
 * Blocking reads follow the index rules of state/kvs.go: a present key wakes
 * on its own change; a missing key answers the table-wide index and wakes on
 * any KV change (its memdb watch sits on the nearest existing radix node, so
 * a real Consul wakes on a subset of these); a prefix wakes on changes under
 * it. A transaction collects every operation's error, in preCheck (ACLs,
 * lock-delay) and in txnDispatch, and answers them all in one 409.
 *
 * @module
 */

import type { Authorizer } from "./acl.ts";
import type { Cluster } from "./cluster.ts";
import {
  type Answer,
  blocking,
  fromBase64,
  json,
  text,
  toBase64,
} from "./http.ts";
import {
  type Change,
  ConsulError,
  type ConsulState,
  type KvEntry,
} from "./state.ts";

/** Consul 1.21.5's key check (agent/kvs_endpoint.go, PR #22682). */
const KEY_PATTERN = /^[a-zA-Z0-9,_./\-?&=]+$/;
const MAX_VALUE_BYTES = 512 * 1024;
const MAX_TXN_OPS = 128;

/** What a KV or txn request runs with. */
export interface KvContext {
  readonly state: ConsulState;
  readonly cluster: Cluster;
  readonly authz: Authorizer;
  readonly validateKeys: boolean;
  readonly signal: AbortSignal;
}

/** A KV entry as the API returns it: `Value` in base64, no empty `Session`. */
export function wireEntry(entry: KvEntry, withValue = true): unknown {
  const { Session, ...rest } = entry;
  return {
    LockIndex: rest.LockIndex,
    Key: rest.Key,
    Flags: rest.Flags,
    Value: withValue ? toBase64(rest.Value) : null,
    ...(Session ? { Session } : {}),
    CreateIndex: rest.CreateIndex,
    ModifyIndex: rest.ModifyIndex,
  };
}

function uintParam(params: URLSearchParams, name: string): number | undefined {
  const value = params.get(name);
  if (value === null) return undefined;
  if (!/^\d+$/.test(value)) throw new ConsulError(400, `Invalid ${name}`);
  return Number(value);
}

/** Handles `/v1/kv/<key>`; `key` is the decoded path after `/v1/kv/`. */
export async function handleKv(
  ctx: KvContext,
  request: Request,
  params: URLSearchParams,
  key: string,
): Promise<Response> {
  if (ctx.validateKeys && key !== "") {
    if (!KEY_PATTERN.test(key) || key.includes("..")) {
      return text(
        `invalid key name, keys should respect the "${
          KEY_PATTERN.source.slice(1, -1).replaceAll("\\", "\\\\")
        }" format`,
        400,
      );
    }
  }
  if (request.method === "GET") return getKv(ctx, params, key);
  if (request.method === "PUT") return await putKv(ctx, request, params, key);
  if (request.method === "DELETE") return deleteKv(ctx, params, key);
  return text(`method ${request.method} not allowed`, 405);
}

function getKv(
  ctx: KvContext,
  params: URLSearchParams,
  key: string,
): Promise<Response> {
  const { state, authz } = ctx;
  const prefix = params.has("recurse") || params.has("keys");
  // KVS.Get refuses an unreadable key; KVS.List filters (FilterDirEnt).
  if (!prefix) authz.require("key", key, "read");
  return blocking(state, params, ctx.signal, (): Answer => {
    const present = state.kv.get(key);
    const entries = prefix
      ? state.list(key).filter((e) => authz.allows("key", e.Key, "read"))
      : [present].filter((entry) => entry !== undefined);
    const index = prefix ? state.prefixIndex(key) : state.keyIndex(key);
    const matches = prefix
      ? (change: Change) => "key" in change && change.key.startsWith(key)
      : present
      ? (change: Change) => "key" in change && change.key === key
      : (change: Change) => "key" in change;
    return {
      index,
      matches,
      respond(headers) {
        if (entries.length === 0) {
          return new Response(null, { status: 404, headers });
        }
        if (params.has("keys")) {
          return json(
            listKeys(entries, key, params.get("separator")),
            200,
            headers,
          );
        }
        if (params.has("raw")) {
          return new Response(
            entries[0].Value as Uint8Array<ArrayBuffer> | null,
            { headers: { ...headers, "content-type": "text/plain" } },
          );
        }
        return json(entries.map((entry) => wireEntry(entry)), 200, headers);
      },
    };
  });
}

function listKeys(
  entries: KvEntry[],
  prefix: string,
  separator: string | null,
): string[] {
  const keys = new Set<string>();
  for (const { Key } of entries) {
    const cut = separator ? Key.indexOf(separator, prefix.length) : -1;
    keys.add(cut < 0 ? Key : Key.slice(0, cut + separator!.length));
  }
  return [...keys];
}

async function putKv(
  ctx: KvContext,
  request: Request,
  params: URLSearchParams,
  key: string,
): Promise<Response> {
  const { state, cluster } = ctx;
  if (key === "") return text("Missing key name", 400);
  const bytes = new Uint8Array(await request.arrayBuffer());
  if (bytes.length > MAX_VALUE_BYTES) {
    return text(
      `Request body(${bytes.length} bytes) too large, max size: ${MAX_VALUE_BYTES} bytes.`,
      413,
    );
  }
  const input = {
    key,
    value: bytes.length > 0 ? bytes : null,
    flags: uintParam(params, "flags") ?? 0,
  };
  const cas = uintParam(params, "cas");
  const acquire = params.get("acquire");
  const release = params.get("release");
  ctx.authz.require("key", key, "write");
  // kvsPreApply: lock-delay is judged before Raft, by the leader's clock.
  if (acquire !== null && state.lockDelayed(key)) return json(false);
  const index = state.nextIndex();
  const sessionExists = (id: string) => cluster.sessions.has(id);
  const applied = acquire !== null
    ? state.applySet("lock", input, index, { session: acquire, sessionExists })
    : release !== null
    ? state.applySet("unlock", input, index, { session: release })
    : cas !== undefined
    ? state.applySet("cas", input, index, { cas })
    : state.applySet("set", input, index);
  state.commit(applied ? [{ key }] : []);
  return json(applied);
}

function deleteKv(
  ctx: KvContext,
  params: URLSearchParams,
  key: string,
): Response {
  const { state } = ctx;
  const cas = uintParam(params, "cas");
  ctx.authz.require("key", key, "write");
  const index = state.nextIndex();
  if (params.has("recurse")) {
    const changes = state.list(key)
      .filter((entry) => state.deleteKey(entry.Key, index))
      .map((entry) => ({ key: entry.Key }));
    state.commit(changes);
    return json(true);
  }
  if (key === "") return text("Missing key name", 400);
  const existing = state.kv.get(key);
  // state/kvs.go kvsDeleteCASTxn: a missing key counts as deleted.
  if (cas !== undefined && existing && existing.ModifyIndex !== cas) {
    return json(false);
  }
  state.commit(state.deleteKey(key, index) ? [{ key }] : []);
  return json(true);
}

interface KvOp {
  Verb?: string;
  Key?: string;
  Value?: string | null;
  Flags?: number;
  Index?: number;
  Session?: string;
}

interface TxnError {
  readonly OpIndex: number;
  readonly What: string;
}

/** What an op needs from the ACL, as kvsPreApply checks it. */
function accessOf(verb: string | undefined): "read" | "write" | undefined {
  if (verb === "get" || verb === "get-tree") return undefined;
  if (verb === "check-session" || verb === "check-index") return "read";
  return "write";
}

/** Handles `PUT /v1/txn`: KV operations, all applied or none. */
export async function handleTxn(
  ctx: KvContext,
  request: Request,
): Promise<Response> {
  const { state } = ctx;
  let ops: { KV?: KvOp }[];
  try {
    ops = await request.json();
    if (!Array.isArray(ops)) throw new TypeError("not an array");
  } catch (error) {
    return text(`Failed to parse body: ${(error as Error).message}`, 400);
  }
  if (ops.length > MAX_TXN_OPS) {
    return text(
      `Transaction contains too many operations (${ops.length} > ${MAX_TXN_OPS})`,
      413,
    );
  }
  // agent/consul/txn_endpoint.go preCheck: every op's ACL and lock-delay
  // error is collected before anything goes to Raft.
  const preErrors: TxnError[] = [];
  ops.forEach((op, OpIndex) => {
    if (!op.KV) return;
    const key = op.KV.Key ?? "";
    const access = accessOf(op.KV.Verb);
    if (access && !ctx.authz.allows("key", key, access)) {
      preErrors.push({ OpIndex, What: ctx.authz.denial("key", key, access) });
    } else if (op.KV.Verb === "lock" && state.lockDelayed(key)) {
      preErrors.push({
        OpIndex,
        What: `failed to lock key ${JSON.stringify(key)} due to lock delay`,
      });
    }
  });
  if (preErrors.length > 0) {
    return json({ Results: null, Errors: preErrors }, 409);
  }
  // state/txn.go txnDispatch: every op runs, every error is collected, and
  // any error rolls the whole transaction back.
  const changes: Change[] = [];
  const errors: TxnError[] = [];
  const index = state.nextIndex();
  const results: unknown[] = [];
  try {
    state.atomically(() => {
      ops.forEach((op, OpIndex) => {
        if (!op.KV) {
          errors.push({
            OpIndex,
            What: "the Consul fake runs only KV operations",
          });
          return;
        }
        try {
          const result = applyKvOp(ctx, op.KV, index, changes);
          if (result !== undefined) results.push({ KV: result });
        } catch (error) {
          if (!(error instanceof ConsulError)) throw error;
          errors.push({ OpIndex, What: error.message });
        }
      });
      if (errors.length > 0) throw new ConsulError(409, "rolled back");
    });
  } catch (error) {
    if (!(error instanceof ConsulError) || errors.length === 0) throw error;
    return json({ Results: null, Errors: errors }, 409);
  }
  state.commit(changes);
  return json({ Results: results, Errors: null });
}

/** state/txn.go txnKVS; throws a ConsulError with Consul's text on failure. */
function applyKvOp(
  ctx: KvContext,
  op: KvOp,
  index: number,
  changes: Change[],
): unknown {
  const { state, cluster } = ctx;
  const key = op.Key ?? "";
  const quoted = JSON.stringify(key);
  const fail = (what: string): never => {
    throw new ConsulError(409, what);
  };
  const existing = state.kv.get(key);
  const value = op.Value
    ? fromBase64(op.Value) ?? fail(`invalid base64 value for key ${quoted}`)
    : null;
  const input = {
    key,
    value: value && value.length > 0 ? value : null,
    flags: op.Flags ?? 0,
  };
  const write = (verb: "set" | "cas" | "lock" | "unlock", what: string) => {
    const applied = state.applySet(verb, input, index, {
      cas: op.Index ?? 0,
      session: op.Session,
      sessionExists: (id) => cluster.sessions.has(id),
    });
    if (!applied) fail(what);
    changes.push({ key });
    return wireEntry(state.kv.get(key)!, false);
  };
  switch (op.Verb) {
    case "set":
      return write("set", `failed to set key ${quoted}`);
    case "cas":
      return write("cas", `failed to set key ${quoted}, index is stale`);
    case "lock":
      return write(
        "lock",
        `failed to lock key ${quoted}, lock is already held`,
      );
    case "unlock":
      return write(
        "unlock",
        `failed to unlock key ${quoted}, lock isn't held, or is held by another session`,
      );
    case "get":
      return wireEntry(existing ?? fail(`key ${quoted} doesn't exist`));
    case "check-index":
      if (!existing) fail(`failed to check index, key ${quoted} doesn't exist`);
      if (existing!.ModifyIndex !== op.Index) {
        fail(
          `failed index check for key ${quoted}, current modify index ${
            existing!.ModifyIndex
          } != ${op.Index}`,
        );
      }
      return wireEntry(existing!, false);
    case "check-session":
      if (!existing) {
        fail(`failed to check session, key ${quoted} doesn't exist`);
      }
      if (existing!.Session !== op.Session) {
        fail(
          `failed session check for key ${quoted}, current session "${
            existing!.Session ?? ""
          }" != "${op.Session}"`,
        );
      }
      return wireEntry(existing!, false);
    case "check-not-exists":
      if (existing) fail(`key ${quoted} exists`);
      return undefined;
    case "delete":
      if (state.deleteKey(key, index)) changes.push({ key });
      return undefined;
    case "delete-cas":
      if (existing && existing.ModifyIndex !== op.Index) {
        fail(`failed to delete key ${quoted}, index is stale`);
      }
      if (state.deleteKey(key, index)) changes.push({ key });
      return undefined;
    default:
      return fail(`unknown KV verb "${op.Verb}"`);
  }
}
