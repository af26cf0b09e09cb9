/**
 * The etcd family's test setup: one shared etcd 3.4 for the test process,
 * the contract fixture of each transport (`etcd` on the JSON gateway,
 * `etcd3` on gRPC), and the small helpers the etcd-specific tests share
 * (lock names, one-attempt requests, the keys of a lock on the server).
 *
 * @module
 */

import { etcd } from "../../../backends/etcd/gateway/mod.ts";
import { etcd3 } from "../../../backends/etcd/grpc/mod.ts";
import { lockPrefix } from "../../../backends/etcd/keys.ts";
import type { Backend, LockRequest } from "../../../src/backend.ts";
import type { ContractFixture } from "../../contract/fixture.ts";
import {
  etcdDeletePrefix,
  etcdKeys,
  etcdServer,
} from "../../helpers/servers/etcd.ts";
import {
  freePort,
  sharedServer,
  type TestServer,
} from "../../helpers/servers/server.ts";

export { sleep } from "../../contract/common.ts";

/** The shared etcd server of the test process, if etcd runs here. */
export const server: TestServer | undefined = await sharedServer(etcdServer);

/** Skips a test when etcd can't run here. */
export const withServer = { ignore: !server, sanitizeOps: false };

/** The two transports, by scheme. */
export const FACTORIES = { etcd, etcd3 } as const;

/** A URI of `scheme` for the shared server (or another port). */
export function uriOf(
  scheme: "etcd" | "etcd3",
  port = server?.port ?? 1,
  query = "",
): string {
  return `${scheme}://127.0.0.1:${port}${query}`;
}

/** The key prefix of a lock, under the default root. */
export const prefixOf = (lock: string): string => lockPrefix("coolock", lock);

/** The queue entries of a lock on the shared server (no slot keys), oldest first. */
export async function entriesOf(lock: string) {
  const prefix = prefixOf(lock);
  const keys = await etcdKeys(server!.port, prefix);
  return keys.filter((kv) => /^[0-9a-f]+$/.test(kv.key.slice(prefix.length)));
}

let unique = 0;
/** A fresh lock name for one test. */
export function lockName(tag: string): string {
  return `etcd-${tag}-${Date.now().toString(36)}-${unique++}`;
}

/** One direct backend request, with overrides. */
export function request(
  name: string,
  overrides: Partial<LockRequest> = {},
): LockRequest {
  return {
    name,
    owner: `test:${Deno.pid}:${crypto.randomUUID().slice(0, 8)}`,
    node: "test",
    limit: 1,
    expiresInMs: 10_000,
    guardMs: 0,
    wait: false,
    signal: AbortSignal.timeout(10_000),
    ...overrides,
  };
}

/** The contract fixture of one transport on the shared server. */
export function etcdFixture(
  scheme: "etcd" | "etcd3",
): ContractFixture | undefined {
  if (!server) return undefined;
  const open: (uri: string) => Backend = FACTORIES[scheme];
  const uri = uriOf(scheme);
  // gRPC's first load stalls the event loop; a TTL of 3 s leaves room.
  const ttl = scheme === "etcd" ? 2 : 3;
  return {
    name: scheme,
    uri,
    uriAt: (port) => uriOf(scheme, port),
    uriWithSecret: (secret) =>
      `${scheme}://root:${encodeURIComponent(secret)}@127.0.0.1:${server.port}`,
    unreachableUri: uriOf(scheme, freePort(), "?timeout=2"),
    open: (other = uri) => open(other),
    entry: scheme === "etcd"
      ? { module: "backends/etcd/gateway/mod.ts", factory: "etcd" }
      : { module: "backends/etcd/grpc/mod.ts", factory: "etcd3" },
    ttl,
    freeWithinMs: ttl * 1000 + 1_000,
    server,
    // Leases live in etcd's data dir: a restart on it keeps every lock.
    faults: { pause: true, partition: true, restart: "keeps" },
    remove: (lock) => etcdDeletePrefix(server.port, prefixOf(lock)),
  };
}
