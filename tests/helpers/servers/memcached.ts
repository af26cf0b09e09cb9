/** memcached with the binary protocol, which the backend's CAS calls need. */

import { acceptsTcp, type ServerRecipe } from "./server.ts";

/**
 * memcached plus `extra` arguments (`-M`, `-B ascii`, `-o idle_timeout=1`),
 * for a server of a test's own.
 */
export function memcachedServerWith(
  extra: readonly string[] = [],
): ServerRecipe {
  return {
    kind: "memcached",
    requires: ["/usr/bin/memcached"],
    command: (_dir, [port]) => ({
      cmd: "/usr/bin/memcached",
      args: [
        "-B",
        "auto",
        "-l",
        "127.0.0.1",
        "-p",
        String(port),
        "-U",
        "0",
        "-m",
        "64",
        ...(Deno.uid() === 0 ? ["-u", "nobody"] : []),
        ...extra,
      ],
    }),
    ready: (_dir, [port]) => acceptsTcp(port),
  };
}

/** memcached as the contract suite uses it: a restart loses every lock. */
export const memcachedServer: ServerRecipe = memcachedServerWith();
