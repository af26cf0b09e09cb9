/**
 * The `etcd3` backend: etcd over gRPC, with `npm:etcd3` (`client.ts` loads
 * it on first use). It runs the same lock recipe as the `etcd` JSON gateway
 * backend (`../mod.ts`), on raw lease, txn and watch calls, so that locks of
 * the two exclude each other. The library's own `lock()` is not used: it
 * never waits.
 *
 * @module
 */

import type { Backend } from "../../../src/backend.ts";
import { EtcdBackend } from "../mod.ts";
import { etcdTarget } from "../uri.ts";
import { connect } from "./client.ts";
import { GrpcOps } from "./ops.ts";

export type {
  Backend,
  BackendCapabilities,
  CheckResult,
  Claim,
  HolderStatus,
  LockRequest,
  LockStatus,
  Removal,
} from "../../../src/backend.ts";

/**
 * The etcd3 backend on gRPC (`npm:etcd3`). URIs:
 * `etcd3://[user:password@]host[:port][,host[:port]...][/key-root]`,
 * `etcd3+https://…?ca=ca.pem&cert=client.pem&key=client-key.pem` (a host
 * name, not an IP address, for TLS), and `?timeout=` seconds per call
 * (default 5). The keys and values are those of the `etcd` backend, so both
 * can share a lock. The client is loaded and connected on first use; a bad
 * URI throws `TypeError` at once, its password redacted.
 *
 * @example Run a function under a lock
 * ```ts ignore
 * import { etcd3 } from "@coolock/coolock/etcd3";
 * import { withLock } from "@coolock/coolock";
 * await using backend = etcd3("etcd3://127.0.0.1:2379");
 * await withLock({ backend, lock: "nightly", guardTime: 0 }, () => "ran");
 * ```
 *
 * @param uri an `etcd3://`, `etcd3+http://` or `etcd3+https://` URI
 * @returns the backend, not yet connected
 */
export function etcd3(uri: string | URL): Backend {
  const target = etcdTarget(uri, "etcd3");
  return new EtcdBackend(
    target,
    async (signal) =>
      new GrpcOps(
        await connect(target, signal),
        target.timeoutMs,
        target.endpoints.length,
      ),
    // grpc-js reads variables of its own (GRPC_*, proxies).
    [...target.permissions, { name: "env" }],
  );
}
