/**
 * The etcd3 backend over gRPC, with `npm:etcd3`. It runs the same lock
 * recipe as the `etcd` gateway backend (`etcd_lock.ts`), on the library's
 * lease, txn and watch calls, so locks of the two exclude each other. The
 * library's own `lock()` is not used: it never waits.
 *
 * @module
 */

import type { IOptions } from "npm:etcd3@1.1.2";
import type { Backend } from "../../../src/backend.ts";
import { readFileParam } from "../../../src/uri.ts";
import { GrpcOps } from "./ops.ts";
import { EtcdBackend } from "../mod.ts";
import type { EtcdOps } from "../ops.ts";
import { endpointsOf, type EtcdConfig, parseEtcdUri } from "../uri.ts";

/**
 * Per-host fault handling instead of the library's circuit breakers, which
 * keep a recovered server out for 5 s: a host that just failed is skipped
 * while another one has not, so that streams (keepalive, watch) fail over too.
 */
function hostPolicies(
  hosts: readonly string[],
  recoverable: (error: Error) => boolean,
) {
  const failedAt = new Map<string, number>();
  const failing = (host: string) =>
    performance.now() - (failedAt.get(host) ?? -Infinity) < SKIP_FAILED_MS;
  return (host: string) => ({
    async execute<T>(fn: (context: unknown) => T | Promise<T>): Promise<T> {
      if (failing(host) && hosts.some((other) => !failing(other))) {
        throw new Error(`${host} failed a moment ago`);
      }
      try {
        const result = await fn({ signal: new AbortController().signal });
        failedAt.delete(host);
        return result;
      } catch (error) {
        if (recoverable(error as Error)) failedAt.set(host, performance.now());
        throw error;
      }
    },
  });
}

const SKIP_FAILED_MS = 2_000;

async function connect(config: EtcdConfig): Promise<EtcdOps> {
  const { Etcd3, castGrpcError, isRecoverableError } = await import(
    "npm:etcd3@1.1.2"
  );
  const { Buffer } = await import("node:buffer");
  const { uri, timeoutMs } = config;
  const file = (name: string) => {
    const text = readFileParam(uri, name);
    return text === undefined ? undefined : Buffer.from(text);
  };
  const [ca, cert, key] = [file("ca"), file("cert"), file("key")];
  const hosts = endpointsOf(config);
  const options: IOptions = {
    hosts,
    auth: uri.username === ""
      ? undefined
      : { username: uri.username, password: uri.password ?? "" },
    // Without a CA file, grpc-js trusts the system's roots.
    credentials: ca || cert
      ? { rootCertificate: ca!, certChain: cert, privateKey: key }
      : undefined,
    defaultCallOptions: (context) =>
      context.isStream ? {} : { deadline: Date.now() + timeoutMs },
    faultHandling: {
      host: hostPolicies(hosts, isRecoverableError) as never,
    },
  };
  const client = new Etcd3(options);
  return new GrpcOps(
    client,
    (text) => Buffer.from(text),
    timeoutMs,
    hosts.length,
    (error) => isRecoverableError(castGrpcError(error)),
  );
}

/**
 * The etcd3 backend on gRPC (`npm:etcd3`). URIs:
 * `etcd3://[user:password@]host[:port][,host[:port]...][/key-root]`,
 * `etcd3+https://…?ca=ca.pem&cert=client.pem&key=client-key.pem`, and
 * `?timeout=` seconds per call (default 5). The keys and values are those of
 * the `etcd` backend, so both can share a lock.
 *
 * @example
 * ```ts ignore
 * import { etcd3 } from "./mod.ts";
 * import { withLock } from "../../../mod.ts";
 * await using backend = etcd3("etcd3://127.0.0.1:2379");
 * await withLock({ backend, lock: "nightly", guardTime: 0 }, () => "ran");
 * ```
 */
export function etcd3(uri: string | URL): Backend {
  const config = parseEtcdUri(uri, "etcd3");
  for (const name of ["ca", "cert", "key"]) readFileParam(config.uri, name);
  return new EtcdBackend(config.uri.scheme, config, () => connect(config));
}
