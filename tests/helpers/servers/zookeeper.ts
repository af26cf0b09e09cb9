/**
 * ZooKeeper 3.8 from Debian, standalone, on its jars in /usr/share/java. The
 * short tickTime lets session timeouts from 1 s to 10 s through; a super
 * digest lets the tests' out-of-band client delete nodes that a digest-auth
 * session created with its own ACL.
 */

import { ask, type ServerRecipe } from "./server.ts";

const JARS = "/usr/share/java";

/** The out-of-band operator identity, as `user:password` for digest auth. */
export const ZOOKEEPER_SUPER = "super:coolock-test-super";

async function superDigest(): Promise<string> {
  const [user] = ZOOKEEPER_SUPER.split(":");
  const hash = await crypto.subtle.digest(
    "SHA-1",
    new TextEncoder().encode(ZOOKEEPER_SUPER),
  );
  return `${user}:${btoa(String.fromCharCode(...new Uint8Array(hash)))}`;
}

/** Whether the server answers a session handshake (a ConnectRequest). */
async function handshakes(port: number): Promise<boolean> {
  const request = new DataView(new ArrayBuffer(48));
  request.setInt32(0, 44); // length; protocol version, zxid, session id: 0
  request.setInt32(16, 1_000); // session timeout in ms
  request.setInt32(28, 16); // password length, 16 zero bytes
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(new Uint8Array(request.buffer));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const read = await Promise.race([
        conn.read(new Uint8Array(64)),
        new Promise<null>((resolve) => timer = setTimeout(resolve, 200, null)),
      ]);
      clearTimeout(timer);
      return (read ?? 0) > 0;
    } finally {
      conn.close();
    }
  } catch {
    return false;
  }
}

export const zookeeperServer: ServerRecipe = {
  kind: "zookeeper",
  requires: [
    `${JARS}/zookeeper.jar`,
    `${JARS}/slf4j-simple.jar`,
    "/usr/bin/java",
  ],
  async prepare(dir, [port]) {
    await Deno.mkdir(`${dir}/data`);
    await Deno.writeTextFile(
      `${dir}/zoo.cfg`,
      [
        `dataDir=${dir}/data`,
        `clientPort=${port}`,
        "clientPortAddress=127.0.0.1",
        "tickTime=500",
        "maxClientCnxns=0",
        "admin.enableServer=false",
        "4lw.commands.whitelist=ruok",
        "",
      ].join("\n"),
    );
    await Deno.writeTextFile(`${dir}/super.digest`, await superDigest());
  },
  command: (dir) => ({
    cmd: "/usr/bin/java",
    args: [
      "-Xshare:auto",
      "-XX:TieredStopAtLevel=1",
      "-XX:+UseSerialGC",
      "-Xmx256m",
      "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
      "-Dzookeeper.forceSync=no",
      `-Dzookeeper.DigestAuthenticationProvider.superDigest=${
        Deno.readTextFileSync(`${dir}/super.digest`)
      }`,
      // zookeeper.jar's manifest names the rest of its classpath.
      "-cp",
      `${JARS}/zookeeper.jar:${JARS}/slf4j-simple.jar`,
      "org.apache.zookeeper.server.ZooKeeperServerMain",
      `${dir}/zoo.cfg`,
    ],
  }),
  // `ruok` answers before the server serves sessions, so a real handshake
  // must succeed too.
  ready: async (_dir, [port]) =>
    (await ask(port, "ruok")) === "imok" && await handshakes(port),
};
