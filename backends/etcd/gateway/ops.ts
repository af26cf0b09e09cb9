/**
 * The etcd recipe's transport ({@linkcode EtcdOps}) as v3 JSON gateway
 * calls: keys and values travel in base64, int64s as strings, enums by
 * name.
 *
 * @module
 */

import { CODES, type Gateway, GatewayError, type Json } from "./client.ts";
import {
  type AuthState,
  type Compare,
  type EtcdOps,
  type KeyChange,
  type KeyValue,
  LeaseGoneError,
  type Member,
  type Ping,
  type RangeQuery,
  type ServerStatus,
  type TxnOp,
  type TxnResult,
  type WatchQuery,
} from "../ops.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function b64(text: string): string {
  return btoa(String.fromCharCode(...encoder.encode(text)));
}

function unb64(text: unknown): string {
  const binary = atob(String(text ?? ""));
  return decoder.decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
}

function keyValue(kv: Json): KeyValue {
  return {
    key: unb64(kv.key),
    value: unb64(kv.value),
    createRevision: BigInt(String(kv.create_revision ?? 0)),
    modRevision: BigInt(String(kv.mod_revision ?? 0)),
    lease: String(kv.lease ?? "0"),
  };
}

function rangeBody(query: RangeQuery): Json {
  return {
    key: b64(query.key),
    range_end: query.end === undefined ? undefined : b64(query.end),
    limit: query.limit,
    sort_target: query.order ? "CREATE" : undefined,
    sort_order: query.order === undefined
      ? undefined
      : query.order === "oldest"
      ? "ASCEND"
      : "DESCEND",
    max_create_revision: query.maxCreateRevision === undefined
      ? undefined
      : String(query.maxCreateRevision),
  };
}

function compareBody(compare: Compare): Json {
  const key = b64(compare.key);
  if (compare.target === "value") {
    return {
      key,
      target: "VALUE",
      result: "EQUAL",
      value: b64(compare.equals),
    };
  }
  const range_end = compare.end === undefined ? undefined : b64(compare.end);
  return compare.target === "create"
    ? {
      key,
      range_end,
      target: "CREATE",
      result: "EQUAL",
      create_revision: String(compare.equals),
    }
    : {
      key,
      range_end,
      target: "MOD",
      result: "EQUAL",
      mod_revision: String(compare.equals),
    };
}

function opBody(op: TxnOp): Json {
  if ("put" in op) {
    const { key, value, lease } = op.put;
    return { request_put: { key: b64(key), value: b64(value), lease } };
  }
  if ("delete" in op) return { request_delete_range: { key: b64(op.delete) } };
  return { request_range: rangeBody(op.range) };
}

/** {@linkcode EtcdOps} as JSON gateway calls. */
export class GatewayOps implements EtcdOps {
  /** Wraps a gateway client. */
  constructor(private readonly gateway: Gateway) {}

  async grant(ttl: number, signal: AbortSignal): Promise<[string, number]> {
    const answer = await this.gateway.call(
      "/v3/lease/grant",
      { TTL: ttl },
      signal,
    );
    return [String(answer.ID), Number(answer.TTL)];
  }

  async keepAlive(lease: string, signal: AbortSignal): Promise<number> {
    const answer = await this.gateway.call(
      "/v3/lease/keepalive",
      { ID: lease },
      signal,
    );
    return Number((answer.result as Json | undefined)?.TTL ?? 0);
  }

  async revoke(lease: string, signal: AbortSignal): Promise<void> {
    await this.gateway.call("/v3/lease/revoke", { ID: lease }, signal).catch(
      (error) => {
        if (
          !(error instanceof GatewayError && error.code === CODES.NOT_FOUND)
        ) throw error;
      },
    );
  }

  async timeToLive(lease: string, signal: AbortSignal): Promise<number> {
    const answer = await this.gateway.call(
      "/v3/lease/timetolive",
      { ID: lease },
      signal,
    );
    return Number(answer.TTL ?? -1);
  }

  async txn(
    compare: readonly Compare[],
    success: readonly TxnOp[],
    failure: readonly TxnOp[],
    signal: AbortSignal,
  ): Promise<TxnResult> {
    let answer: Json;
    try {
      answer = await this.gateway.call("/v3/kv/txn", {
        compare: compare.map(compareBody),
        success: success.map(opBody),
        failure: failure.map(opBody),
      }, signal);
    } catch (error) {
      if (error instanceof GatewayError && error.code === CODES.NOT_FOUND) {
        throw new LeaseGoneError(error.message);
      }
      throw error;
    }
    // A failed txn has no `succeeded` field at all.
    const responses = (answer.responses ?? []) as Json[];
    return {
      succeeded: answer.succeeded === true,
      revision: BigInt(String((answer.header as Json).revision)),
      ranges: responses.flatMap((response) =>
        response.response_range
          ? [
            ((response.response_range as Json).kvs as Json[] | undefined ?? [])
              .map(keyValue),
          ]
          : []
      ),
    };
  }

  async watch(query: WatchQuery, signal: AbortSignal): Promise<KeyChange> {
    const stream = this.gateway.stream("/v3/watch", {
      create_request: {
        key: b64(query.key),
        range_end: query.end === undefined ? undefined : b64(query.end),
        start_revision: String(query.fromRevision),
        filters: query.deletesOnly ? ["NOPUT"] : undefined,
      },
    }, signal);
    for await (const message of stream) {
      if (message.canceled) {
        throw new Error(`the watch was cancelled: ${message.cancel_reason}`);
      }
      const event = (message.events as Json[] | undefined)?.[0];
      if (!event) continue;
      const kv = event.kv as Json;
      return {
        kind: event.type === "DELETE" ? "delete" : "put",
        key: unb64(kv.key),
        value: unb64(kv.value),
        revision: BigInt(String(kv.mod_revision)),
      };
    }
    throw new Error("the watch ended");
  }

  async status(signal: AbortSignal): Promise<ServerStatus> {
    const answer = await this.gateway.call(
      "/v3/maintenance/status",
      {},
      signal,
    );
    return {
      version: String(answer.version ?? ""),
      leader: String(answer.leader ?? "0"),
      member: String((answer.header as Json | undefined)?.member_id ?? "0"),
      errors: ((answer.errors ?? []) as unknown[]).map(String),
    };
  }

  async members(signal: AbortSignal): Promise<Member[]> {
    const answer = await this.gateway.call(
      "/v3/cluster/member/list",
      {},
      signal,
    );
    return ((answer.members ?? []) as Json[]).map((member) => ({
      id: String(member.ID),
      name: String(member.name ?? ""),
    }));
  }

  auth(signal: AbortSignal): Promise<AuthState> {
    return this.gateway.auth(signal);
  }

  ping(endpoint: string, signal: AbortSignal): Promise<Ping> {
    return this.gateway.ping(endpoint, signal);
  }

  close(): Promise<void> {
    this.gateway.close();
    return Promise.resolve();
  }
}
