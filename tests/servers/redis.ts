/** redis-server, without persistence. */

import { acceptsTcp, ask, run, type ServerRecipe } from "./server.ts";

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
  ready: async (_dir, [port]) =>
    (await ask(port, "PING\r\n")).startsWith("+PONG"),
};

/**
 * redis-server on a TLS port only, with a throwaway CA; clients must show a
 * certificate the CA signed. The CA, client cert and key are in the dir.
 */
export const redisTlsServer: ServerRecipe = {
  kind: "redis-tls",
  requires: ["/usr/bin/redis-server", "/usr/bin/openssl"],
  prepare: async (dir) => {
    const ssl = (...args: string[]) =>
      run("/usr/bin/openssl", args, { cwd: dir });
    await ssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=coolock-test-ca",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
    );
    for (
      const [name, ext] of [["server", "subjectAltName=IP:127.0.0.1"], [
        "client",
        "extendedKeyUsage=clientAuth",
      ]]
    ) {
      await ssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        `/CN=coolock-${name}`,
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
      );
      await Deno.writeTextFile(`${dir}/${name}.ext`, `${ext}\n`);
      await ssl(
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        `${name}.ext`,
        "-out",
        `${name}.crt`,
      );
    }
    for (const file of ["ca.crt", "client.crt", "client.key", "server.key"]) {
      await Deno.chmod(`${dir}/${file}`, 0o644);
    }
  },
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
