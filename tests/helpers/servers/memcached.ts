/** memcached with the binary protocol, which the backend's CAS calls need. */

import { acceptsTcp, type ServerRecipe } from "./server.ts";

export const memcachedServer: ServerRecipe = {
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
    ],
  }),
  ready: (_dir, [port]) => acceptsTcp(port),
};
