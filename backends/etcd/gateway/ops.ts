/**
 * The etcd recipe's calls ({@linkcode EtcdOps}) as v3 JSON gateway calls:
 * keys and values travel in base64, int64s as strings.
 *
 * @module
 */

import { type Gateway, GatewayError, type Json } from "./client.ts";
import { prefixEnd } from "../keys.ts";
import type {
  EtcdOps,
  KeyChange,
  KeyState,
  LeasedPut,
  OwnedKey,
} from "../ops.ts";

const NOT_FOUND = 5;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function b64(text: string): string {
  return btoa(String.fromCharCode(...encoder.encode(text)));
}

function unb64(text: unknown): string {
  const binary = atob(String(text ?? ""));
  return decoder.decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
}

function keyState(response: Json, header: Json): KeyState | undefined {
  const kv = (response.kvs as Json[] | undefined)?.[0];
  if (!kv) return undefined;
  return {
    createRevision: BigInt(String(kv.create_revision)),
    value: unb64(kv.value),
    revision: BigInt(String(header.revision)),
  };
}

function owned({ key, value, createRevision }: OwnedKey): Json[] {
  return [
    { key: b64(key), target: "VALUE", result: "EQUAL", value: b64(value) },
    {
      key: b64(key),
      target: "CREATE",
      result: "EQUAL",
      create_revision: String(createRevision),
    },
  ];
}

/**
 * {@linkcode EtcdOps} as JSON gateway calls; int64s travel as strings.
 *
 * @example
 * ```ts ignore
 * import { Gateway } from "./client.ts";
 * import { GatewayOps } from "./ops.ts";
 * const ops = new GatewayOps(new Gateway({ endpoints: ["http://127.0.0.1:2379"], username: "", password: undefined, timeoutMs: 5_000 }));
 * console.log(await ops.read("coolock/a/1f", AbortSignal.timeout(5_000)));
 * await ops.close();
 * ```
 */
export class GatewayOps implements EtcdOps {
  /** Wraps a gateway client. */
  constructor(private readonly gateway: Gateway) {}

  #txn(body: Json, signal: AbortSignal): Promise<Json> {
    return this.gateway.call("/v3/kv/txn", body, signal);
  }

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
        if (!(error instanceof GatewayError && error.code === NOT_FOUND)) {
          throw error;
        }
      },
    );
  }

  async create(
    { key, value, lease, ifEmpty }: LeasedPut,
    signal: AbortSignal,
  ): Promise<KeyState | "held" | undefined> {
    const read = { request_range: { key: b64(key) } };
    const compare = ifEmpty === undefined
      ? { key: b64(key) }
      : { key: b64(ifEmpty), range_end: b64(prefixEnd(ifEmpty)) };
    let answer: Json;
    try {
      answer = await this.#txn({
        compare: [{ ...compare, target: "CREATE", create_revision: "0" }],
        success: [
          { request_put: { key: b64(key), value: b64(value), lease } },
          read,
        ],
        failure: ifEmpty === undefined ? [read] : [],
      }, signal);
    } catch (error) {
      if (error instanceof GatewayError && error.code === NOT_FOUND) {
        return undefined;
      }
      throw error;
    }
    // A failed txn has no `succeeded` field at all.
    if (ifEmpty !== undefined && answer.succeeded !== true) return "held";
    const responses = answer.responses as Json[];
    const range = responses[responses.length - 1].response_range as Json;
    return keyState(range, answer.header as Json);
  }

  async read(key: string, signal: AbortSignal): Promise<KeyState | undefined> {
    const answer = await this.gateway.call(
      "/v3/kv/range",
      { key: b64(key) },
      signal,
    );
    return keyState(answer, answer.header as Json);
  }

  async predecessor(
    prefix: string,
    below: bigint,
    signal: AbortSignal,
  ): Promise<{ key: string; revision: bigint } | undefined> {
    const answer = await this.gateway.call("/v3/kv/range", {
      key: b64(prefix),
      range_end: b64(prefixEnd(prefix)),
      sort_order: "DESCEND",
      sort_target: "CREATE",
      limit: 1,
      max_create_revision: String(below - 1n),
      keys_only: true,
    }, signal);
    const kv = (answer.kvs as Json[] | undefined)?.[0];
    if (!kv) return undefined;
    return {
      key: unb64(kv.key),
      revision: BigInt(String((answer.header as Json).revision)),
    };
  }

  async replace(
    held: OwnedKey,
    lease: string,
    signal: AbortSignal,
  ): Promise<boolean> {
    const { key, value } = held;
    const answer = await this.#txn({
      compare: owned(held),
      success: [{ request_put: { key: b64(key), value: b64(value), lease } }],
    }, signal);
    return answer.succeeded === true;
  }

  async remove(held: OwnedKey, signal: AbortSignal): Promise<boolean> {
    const answer = await this.#txn({
      compare: owned(held),
      success: [{ request_delete_range: { key: b64(held.key) } }],
    }, signal);
    return answer.succeeded === true;
  }

  async nextChange(
    key: string,
    fromRevision: bigint,
    signal: AbortSignal,
  ): Promise<KeyChange> {
    const stream = this.gateway.stream("/v3/watch", {
      create_request: { key: b64(key), start_revision: String(fromRevision) },
    }, signal);
    for await (const message of stream) {
      if (message.canceled) {
        throw new Error(`the watch was cancelled: ${message.cancel_reason}`);
      }
      const event = (message.events as Json[] | undefined)?.[0];
      if (!event) continue;
      const kv = event.kv as Json;
      const revision = BigInt(String(kv.mod_revision));
      return event.type === "DELETE"
        ? { kind: "delete", revision }
        : { kind: "put", value: unb64(kv.value), revision };
    }
    throw new Error("the watch ended");
  }

  close(): Promise<void> {
    this.gateway.close();
    return Promise.resolve();
  }
}
