/**
 * Opens a backend by its URI's scheme, for the library: every family's
 * factory, imported statically. Each factory loads its npm client lazily, on
 * first use, so that opening a Redis backend never loads mysql2. The CLI
 * uses `load.ts` instead, which imports only the family in use.
 *
 * @module
 */

import type { Backend } from "../src/backend.ts";
import { familyOf, SCHEMES as KNOWN_SCHEMES } from "./load.ts";
import { consul } from "./consul/mod.ts";
import { etcd } from "./etcd/gateway/mod.ts";
import { etcd3 } from "./etcd/grpc/mod.ts";
import { file } from "./file/mod.ts";
import { memcached } from "./memcached/mod.ts";
import { mysql } from "./sql/mysql/mod.ts";
import { postgres } from "./sql/postgres/mod.ts";
import { redis } from "./redis/mod.ts";
import { zookeeper } from "./zookeeper/mod.ts";

// The scheme table lives once, in load.ts; here each family's factory by
// name, imported statically for the library (and `deno compile`).
const FACTORIES: Readonly<Record<string, (uri: string) => Backend>> = {
  file: (uri) => file(uri),
  redis,
  memcached,
  etcd,
  etcd3,
  consul,
  zookeeper,
  postgres,
  mysql,
};

/** The URI schemes that {@linkcode openBackend} knows, in a stable order. */
export const SCHEMES: readonly string[] = KNOWN_SCHEMES;

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
  return FACTORIES[familyOf(text).factory](text);
}
