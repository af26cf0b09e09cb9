/**
 * The table from URI scheme to backend factory. Each factory loads its npm
 * client lazily, on first use, so that opening a Redis backend never loads
 * mysql2.
 *
 * @module
 */

import type { Backend } from "../src/backend.ts";
import { redactUri } from "../src/uri.ts";
import { consul } from "./consul/mod.ts";
import { etcd } from "./etcd/gateway/mod.ts";
import { etcd3 } from "./etcd/grpc/mod.ts";
import { file } from "./file/mod.ts";
import { memcached } from "./memcached/mod.ts";
import { mysql } from "./sql/mysql/mod.ts";
import { postgres } from "./sql/postgres/mod.ts";
import { redis } from "./redis/mod.ts";
import { zookeeper } from "./zookeeper/mod.ts";

const FACTORIES: Readonly<Record<string, (uri: string) => Backend>> = {
  file: (uri) => file(uri),
  redis,
  rediss: redis,
  etcd,
  "etcd+http": etcd,
  "etcd+https": etcd,
  etcd3,
  "etcd3+http": etcd3,
  "etcd3+https": etcd3,
  consul,
  "consul+http": consul,
  "consul+https": consul,
  zookeeper,
  kazoo: zookeeper,
  postgresql: postgres,
  postgres,
  mysql,
  memcached,
};

/** The URI schemes that {@linkcode openBackend} knows, in a stable order. */
export const SCHEMES: readonly string[] = Object.keys(FACTORIES);

/**
 * Opens the backend that a URI names, by its scheme. Connections are made on
 * first use. Throws `TypeError` for an unknown scheme or a malformed URI; the
 * message never contains the URI's password.
 *
 * @example
 * ```ts
 * import { openBackend } from "./mod.ts";
 * await using backend = openBackend("file:///tmp/coolock-example");
 * console.log(backend.scheme); // file
 * ```
 */
export function openBackend(uri: string | URL): Backend {
  const text = String(uri);
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(text)?.[1]?.toLowerCase();
  const factory = scheme === undefined ? undefined : FACTORIES[scheme];
  if (!factory) {
    throw new TypeError(
      scheme === undefined
        ? `Backend URI '${redactUri(text)}' has no scheme: use one of ${
          SCHEMES.join(", ")
        }`
        : `Unknown backend scheme '${scheme}' in '${
          redactUri(text)
        }': use one of ${SCHEMES.join(", ")}`,
    );
  }
  return factory(text);
}
