/**
 * The `/v1/kv/:key` and `/v1/txn` endpoints of the Consul API fake
 * (website/content/api-docs/kv.mdx and txn.mdx).
 *
 * @module
 */

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
  state: ConsulState,
  request: Request,
  params: URLSearchParams,
  key: string,
  options: { validateKeys: boolean; signal: AbortSignal },
): Promise<Response> {
  if (options.validateKeys && key !== "") {
    if (!KEY_PATTERN.test(key) || key.includes("..")) {
      return text(
        `invalid key name, keys should respect the "${
          KEY_PATTERN.source.slice(1, -1).replaceAll("\\", "\\\\")
        }" format`,
        400,
      );
    }
  }
  if (request.method === "GET") {
    return getKv(state, params, key, options.signal);
  }
  if (request.method === "PUT") return await putKv(state, request, params, key);
  if (request.method === "DELETE") return deleteKv(state, params, key);
  return text(`method ${request.method} not allowed`, 405);
}

function getKv(
  state: ConsulState,
  params: URLSearchParams,
  key: string,
  signal: AbortSignal,
): Promise<Response> {
  const prefix = params.has("recurse") || params.has("keys");
  const matches = prefix
    ? (change: Change) => "key" in change && change.key.startsWith(key)
    : (change: Change) => "key" in change && change.key === key;
  return blocking(state, params, signal, (): Answer => {
    const entries = prefix
      ? state.list(key)
      : [state.kv.get(key)].filter((entry) => entry !== undefined);
    const index = prefix ? state.prefixIndex(key) : state.keyIndex(key);
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
            {
              headers: { ...headers, "content-type": "text/plain" },
            },
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
  state: ConsulState,
  request: Request,
  params: URLSearchParams,
  key: string,
): Promise<Response> {
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
  // kvs_endpoint.go kvsPreApply: lock-delay is judged before Raft, by the leader's clock.
  if (acquire !== null && state.lockDelayed(key)) return json(false);
  const index = state.nextIndex();
  const applied = acquire !== null
    ? state.applySet("lock", input, index, { session: acquire })
    : release !== null
    ? state.applySet("unlock", input, index, { session: release })
    : cas !== undefined
    ? state.applySet("cas", input, index, { cas })
    : state.applySet("set", input, index);
  if (applied) state.emit([{ key }]);
  return json(applied);
}

function deleteKv(
  state: ConsulState,
  params: URLSearchParams,
  key: string,
): Response {
  const cas = uintParam(params, "cas");
  const index = state.nextIndex();
  if (params.has("recurse")) {
    const changes = state.list(key).filter((entry) =>
      state.deleteKey(entry.Key, index)
    )
      .map((entry) => ({ key: entry.Key }));
    state.emit(changes);
    return json(true);
  }
  if (key === "") return text("Missing key name", 400);
  const existing = state.kv.get(key);
  if (cas !== undefined && existing && existing.ModifyIndex !== cas) {
    return json(false);
  }
  if (state.deleteKey(key, index)) state.emit([{ key }]);
  return json(true);
}

class TxnFailure extends Error {
  constructor(readonly opIndex: number, what: string) {
    super(what);
  }
}

interface KvOp {
  Verb?: string;
  Key?: string;
  Value?: string | null;
  Flags?: number;
  Index?: number;
  Session?: string;
}

/** Handles `PUT /v1/txn`: KV operations, all applied or none. */
export async function handleTxn(
  state: ConsulState,
  request: Request,
): Promise<Response> {
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
  // txn_endpoint.go preCheck: a lock under lock-delay fails the whole transaction.
  const delayed = ops.flatMap((op, opIndex) =>
    op.KV?.Verb === "lock" && state.lockDelayed(op.KV.Key ?? "")
      ? [{
        OpIndex: opIndex,
        What: `failed to lock key "${op.KV.Key}" due to lock delay`,
      }]
      : []
  );
  if (delayed.length > 0) return json({ Results: null, Errors: delayed }, 409);
  const changes: Change[] = [];
  try {
    const results = state.atomically(() => {
      const index = state.nextIndex();
      return ops.flatMap((op, opIndex) => {
        if (!op.KV) {
          throw new TxnFailure(
            opIndex,
            "only KV operations are supported by this fake",
          );
        }
        const result = applyKvOp(state, op.KV, opIndex, index, changes);
        return result ? [{ KV: result }] : [];
      });
    });
    state.emit(changes);
    return json({ Results: results, Errors: null });
  } catch (error) {
    if (!(error instanceof TxnFailure)) throw error;
    return json({
      Results: null,
      Errors: [{ OpIndex: error.opIndex, What: error.message }],
    }, 409);
  }
}

function applyKvOp(
  state: ConsulState,
  op: KvOp,
  opIndex: number,
  index: number,
  changes: Change[],
): unknown {
  const key = op.Key ?? "";
  const fail = (what: string): never => {
    throw new TxnFailure(opIndex, what);
  };
  const existing = state.kv.get(key);
  const value = op.Value
    ? fromBase64(op.Value) ?? fail(`invalid base64 value for key "${key}"`)
    : null;
  const input = {
    key,
    value: value && value.length > 0 ? value : null,
    flags: op.Flags ?? 0,
  };
  const write = (verb: "set" | "cas" | "lock" | "unlock", what: string) => {
    let applied: boolean;
    try {
      applied = state.applySet(verb, input, index, {
        cas: op.Index ?? 0,
        session: op.Session,
      });
    } catch (error) {
      if (error instanceof ConsulError) fail(error.message);
      throw error;
    }
    if (!applied) fail(what);
    changes.push({ key });
    return wireEntry(state.kv.get(key)!, false);
  };
  switch (op.Verb) {
    case "set":
      return write("set", `failed to set key "${key}"`);
    case "cas":
      return write("cas", `failed to set key "${key}", index is stale`);
    case "lock":
      return write("lock", `failed to lock key "${key}", lock is already held`);
    case "unlock":
      return write(
        "unlock",
        `failed to unlock key "${key}", lock isn't held, or is held by another session`,
      );
    case "get":
      return wireEntry(existing ?? fail(`key "${key}" doesn't exist`));
    case "check-index":
      if (existing?.ModifyIndex !== op.Index) {
        fail(
          `current modify index ${existing?.ModifyIndex ?? 0} != ${op.Index}`,
        );
      }
      return wireEntry(existing!, false);
    case "check-session":
      if (!existing) fail(`key "${key}" doesn't exist`);
      if (existing!.Session !== op.Session) {
        fail(
          `failed session check for key "${key}", current session "${
            existing!.Session ?? ""
          }" != "${op.Session}"`,
        );
      }
      return wireEntry(existing!, false);
    case "check-not-exists":
      if (existing) fail(`key "${key}" exists`);
      return undefined;
    case "delete":
      if (state.deleteKey(key, index)) changes.push({ key });
      return undefined;
    case "delete-cas":
      if (existing && existing.ModifyIndex !== op.Index) {
        fail(`failed to delete key "${key}", index is stale`);
      }
      if (state.deleteKey(key, index)) changes.push({ key });
      return undefined;
    default:
      return fail(`unknown KV verb "${op.Verb}"`);
  }
}
