/**
 * The etcd backend over etcd's v3 JSON gateway, on plain `fetch`: no npm
 * client at all. The lock recipe (a lease per acquisition, a fair queue by
 * create revision, watches instead of polling) is in `etcd_lock.ts`, shared
 * with the gRPC `etcd3` backend so that the two exclude each other.
 *
 * @module
 */

import type { Backend } from "../../../src/backend.ts";
import { readFileParam } from "../../../src/uri.ts";
import { Gateway } from "./client.ts";
import { GatewayOps } from "./ops.ts";
import { EtcdBackend } from "../mod.ts";
import { endpointsOf, parseEtcdUri } from "../uri.ts";

/**
 * The etcd backend on the v3 JSON gateway (etcd 3.4 and later). URIs:
 * `etcd://[user:password@]host[:port][,host[:port]...][/key-root]`,
 * `etcd+https://…?ca=ca.pem&cert=client.pem&key=client-key.pem`, and
 * `?timeout=` seconds per call (default 5). Keys go under `coolock/` unless
 * the URI has a path.
 *
 * @example
 * ```ts ignore
 * import { etcd } from "./mod.ts";
 * import { withLock } from "../../../mod.ts";
 * await using backend = etcd("etcd://127.0.0.1:2379,127.0.0.2:2379");
 * await withLock({ backend, lock: "nightly", guardTime: 0 }, () => "ran");
 * ```
 */
export function etcd(uri: string | URL): Backend {
  const config = parseEtcdUri(uri, "etcd");
  const { uri: parsed, timeoutMs } = config;
  const ca = readFileParam(parsed, "ca");
  const cert = readFileParam(parsed, "cert");
  const key = readFileParam(parsed, "key");
  const endpoints = endpointsOf(config);
  return new EtcdBackend(parsed.scheme, config, () =>
    Promise.resolve(
      new GatewayOps(
        new Gateway({
          endpoints,
          username: parsed.username,
          password: parsed.password,
          timeoutMs,
          caCerts: ca === undefined ? undefined : [ca],
          cert,
          key,
        }),
      ),
    ));
}
