/**
 * The `etcd` backend: etcd's v3 JSON gateway over plain `fetch`, with no
 * npm client at all, so that it starts as fast as Deno does. The lock
 * recipe (a lease per acquisition, a fair queue by create revision, the
 * semaphore's slots, watches instead of polling) is `../mod.ts`, shared with
 * the gRPC `etcd3` backend so that the two exclude each other.
 *
 * @module
 */

import type { Backend } from "../../../src/backend.ts";
import { EtcdBackend } from "../mod.ts";
import { etcdTarget } from "../uri.ts";
import { Gateway } from "./client.ts";
import { GatewayOps } from "./ops.ts";

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
 * The etcd backend on the v3 JSON gateway (etcd 3.4 and later). URIs:
 * `etcd://[user:password@]host[:port][,host[:port]...][/key-root]`,
 * `etcd+https://…?ca=ca.pem&cert=client.pem&key=client-key.pem`, and
 * `?timeout=` seconds per call (default 5). Keys go under `coolock/` unless
 * the URI has a path. Nothing connects until the backend is used; a bad
 * URI throws `TypeError` at once, its password redacted.
 *
 * @example Run a function under a lock
 * ```ts ignore
 * import { etcd } from "@coolock/coolock/etcd";
 * import { withLock } from "@coolock/coolock";
 * await using backend = etcd("etcd://127.0.0.1:2379,127.0.0.2:2379");
 * await withLock({ backend, lock: "nightly", guardTime: 0 }, () => "ran");
 * ```
 *
 * @param uri an `etcd://`, `etcd+http://` or `etcd+https://` URI
 * @returns the backend, not yet connected
 */
export function etcd(uri: string | URL): Backend {
  const target = etcdTarget(uri, "etcd");
  const { uri: parsed, timeoutMs, endpoints, pem } = target;
  return new EtcdBackend(
    target,
    () =>
      Promise.resolve(
        new GatewayOps(
          new Gateway({
            endpoints,
            username: parsed.username,
            password: parsed.password,
            timeoutMs,
            ...pem,
          }),
        ),
      ),
    target.permissions,
  );
}
