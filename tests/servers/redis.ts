/** redis-server, without persistence. */

import { ask, type ServerRecipe } from "./server.ts";

export const redisServer: ServerRecipe = {
  kind: "redis",
  requires: ["/usr/bin/redis-server"],
  command: (_dir, [port]) => ({
    cmd: "/usr/bin/redis-server",
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "no",
    ],
  }),
  ready: async (_dir, [port]) => (await ask(port, "PING\r\n")).startsWith("+PONG"),
};
