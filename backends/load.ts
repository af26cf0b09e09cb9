/**
 * The scheme table for the CLI, loaded lazily: a family's module is imported
 * only when its scheme is used, with a specifier that Deno can't read ahead.
 *
 * Why: Deno builds the module graph of every literal `import()` at start-up,
 * npm packages included, even when the import never runs. Through
 * `backends/mod.ts` (whose static imports name every family) each run would
 * resolve the npm clients of all nine backends: +40 ms and +25 MB for a
 * file-backend run that loads none of them. Here a run resolves only its own
 * family's client, and the file and etcd backends none at all.
 *
 * `deno compile` embeds only what it can see, so `scripts/build.ts` passes
 * each of these modules to `--include`; a test checks that this table and
 * `backends/mod.ts` open the same backend for every scheme.
 *
 * @module
 */

import type { Backend } from "../src/backend.ts";
import { redactUri } from "../src/uri.ts";

/** Scheme → the family's module (relative to this file) and its factory. */
export const FAMILY_MODULES: Readonly<
  Record<string, { readonly module: string; readonly factory: string }>
> = {
  file: { module: "./file/mod.ts", factory: "file" },
  redis: { module: "./redis/mod.ts", factory: "redis" },
  rediss: { module: "./redis/mod.ts", factory: "redis" },
  etcd: { module: "./etcd/gateway/mod.ts", factory: "etcd" },
  "etcd+http": { module: "./etcd/gateway/mod.ts", factory: "etcd" },
  "etcd+https": { module: "./etcd/gateway/mod.ts", factory: "etcd" },
  etcd3: { module: "./etcd/grpc/mod.ts", factory: "etcd3" },
  "etcd3+http": { module: "./etcd/grpc/mod.ts", factory: "etcd3" },
  "etcd3+https": { module: "./etcd/grpc/mod.ts", factory: "etcd3" },
  consul: { module: "./consul/mod.ts", factory: "consul" },
  "consul+http": { module: "./consul/mod.ts", factory: "consul" },
  "consul+https": { module: "./consul/mod.ts", factory: "consul" },
  zookeeper: { module: "./zookeeper/mod.ts", factory: "zookeeper" },
  kazoo: { module: "./zookeeper/mod.ts", factory: "zookeeper" },
  postgresql: { module: "./sql/postgres/mod.ts", factory: "postgres" },
  postgres: { module: "./sql/postgres/mod.ts", factory: "postgres" },
  mysql: { module: "./sql/mysql/mod.ts", factory: "mysql" },
  memcached: { module: "./memcached/mod.ts", factory: "memcached" },
};

/** The URI schemes coolock knows, in a stable order. */
export const SCHEMES: readonly string[] = Object.keys(FAMILY_MODULES);

/**
 * The family that serves `uri`'s scheme. Throws `TypeError` for a missing or
 * unknown scheme, naming the schemes there are; never the URI's secrets.
 */
export function familyOf(
  uri: string,
): { readonly module: string; readonly factory: string } {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(uri)?.[1]?.toLowerCase();
  const family = scheme === undefined ? undefined : FAMILY_MODULES[scheme];
  if (family) return family;
  const schemes = SCHEMES.join(", ");
  throw new TypeError(
    scheme === undefined
      ? `Backend URI '${redactUri(uri)}' has no scheme: use one of ${schemes}`
      : `Unknown backend scheme '${scheme}' in '${
        redactUri(uri)
      }': use one of ${schemes}`,
  );
}

/**
 * Opens the backend that `uri` names, as `openBackend` does, importing only
 * its family. Rejects with `TypeError` for an unknown scheme or a malformed
 * URI (the message never contains the password).
 */
export async function loadBackend(uri: string): Promise<Backend> {
  const family = familyOf(uri);
  // A variable, not a literal: see the module comment.
  const loaded = await import(new URL(family.module, import.meta.url).href);
  return (loaded[family.factory] as (uri: string) => Backend)(uri);
}
