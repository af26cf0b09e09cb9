/** redis-server recipes: plain (without persistence), TLS, Sentinel. */

import { makeCertificates } from "../certs.ts";
import { acceptsTcp, ask, type ServerRecipe } from "./server.ts";

/**
 * redis-server without persistence, plus `extra` arguments (a password, a
 * renamed command, a save point), for a server of a test's own.
 */
export function redisServerWith(extra: readonly string[] = []): ServerRecipe {
  return {
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
        ...extra,
      ],
    }),
    // NOAUTH means it is up too, behind a password.
    ready: async (_dir, [port]) =>
      /^(\+PONG|-NOAUTH)/.test(await ask(port, "PING\r\n")),
  };
}

/** redis-server, without persistence: a restart loses every lock. */
export const redisServer: ServerRecipe = redisServerWith();

/**
 * redis-server on a TLS port only, with a throwaway CA; clients must show a
 * certificate the CA signed. The CA, client cert and key are in the dir.
 */
export const redisTlsServer: ServerRecipe = {
  kind: "redis-tls",
  requires: ["/usr/bin/redis-server", "/usr/bin/openssl"],
  prepare: (dir) =>
    makeCertificates(dir, {
      ca: ["ca.crt", "ca.key"],
      server: ["server.crt", "server.key"],
      client: ["client.crt", "client.key"],
    }, "IP:127.0.0.1"),
  command: (dir, [port]) => ({
    cmd: "/usr/bin/redis-server",
    args: [
      "--port",
      "0",
      "--tls-port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--tls-cert-file",
      `${dir}/server.crt`,
      "--tls-key-file",
      `${dir}/server.key`,
      "--tls-ca-cert-file",
      `${dir}/ca.crt`,
      "--tls-auth-clients",
      "yes",
      "--save",
      "",
      "--appendonly",
      "no",
    ],
  }),
  ready: (_dir, [port]) => acceptsTcp(port),
};

/** One Sentinel that watches the master on `masterPort` as `mymaster`. */
export function redisSentinel(masterPort: number): ServerRecipe {
  return {
    kind: "redis-sentinel",
    requires: ["/usr/bin/redis-server"],
    prepare: (dir, [port]) =>
      Deno.writeTextFile(
        `${dir}/sentinel.conf`,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `sentinel monitor mymaster 127.0.0.1 ${masterPort} 1`,
          "",
        ].join("\n"),
      ),
    command: (dir) => ({
      cmd: "/usr/bin/redis-server",
      args: [`${dir}/sentinel.conf`, "--sentinel"],
    }),
    ready: async (_dir, [port]) =>
      (await ask(port, "SENTINEL get-master-addr-by-name mymaster\r\n"))
        .includes(String(masterPort)),
  };
}
