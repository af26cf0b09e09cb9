/**
 * A 3-node (or n-node) ZooKeeper 3.8 ensemble on loopback: each node a
 * server of its own with a `myid` file and `server.N=127.0.0.1:peer:election`
 * lines (3 ports per node, taken up front). The JVMs are kept small (serial
 * GC, C1 only, 128 MiB heap), since a loaded 2-core host starts three of
 * them. tickTime 500 ms lets session timeouts from 1 s to 10 s through, as
 * the single-server recipe does. A node is ready once `srvr` says it leads
 * or follows, i.e. it serves sessions in a quorum; `leader()` asks the same.
 *
 * @module
 */

import {
  type ClusterMember,
  freePorts,
  startMember,
  stopMember,
} from "./cluster_ports.ts";
import type { ServerRecipe } from "./server.ts";

const JARS = "/usr/share/java";

/** A running ensemble. */
export interface ZooKeeperEnsemble extends AsyncDisposable {
  /** The nodes, `zk1` … `zkN`; each `port` is its client port. */
  readonly members: readonly ClusterMember[];
  /** The index in `members` of the leader now, or -1 when none answers. */
  leader(): Promise<number>;
  /** Kills every node and removes their dirs. */
  close(): Promise<void>;
}

/** The `Mode:` a node reports to `srvr`, or undefined when it serves none. */
export async function zookeeperMode(
  port: number,
): Promise<string | undefined> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(new TextEncoder().encode("srvr"));
      const chunks: Uint8Array[] = [];
      const buffer = new Uint8Array(4096);
      const deadline = Date.now() + 1_000;
      while (Date.now() < deadline) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const read = await Promise.race([
          conn.read(buffer),
          new Promise<null>((resolve) =>
            timer = setTimeout(resolve, deadline - Date.now(), null)
          ),
        ]);
        clearTimeout(timer);
        if (read === null) break;
        chunks.push(buffer.slice(0, read));
      }
      const text = new TextDecoder().decode(
        new Uint8Array(chunks.flatMap((c) => [...c])),
      );
      return /^Mode: (\w+)/m.exec(text)?.[1];
    } finally {
      try {
        conn.close();
      } catch { /* closed by the server */ }
    }
  } catch {
    return undefined;
  }
}

function nodeRecipe(
  id: number,
  client: number,
  servers: string[],
): ServerRecipe {
  return {
    kind: "zookeeper",
    requires: [
      `${JARS}/zookeeper.jar`,
      `${JARS}/slf4j-simple.jar`,
      "/usr/bin/java",
    ],
    async prepare(dir) {
      await Deno.mkdir(`${dir}/data`);
      await Deno.writeTextFile(`${dir}/data/myid`, `${id}\n`);
      await Deno.writeTextFile(
        `${dir}/zoo.cfg`,
        [
          `dataDir=${dir}/data`,
          `clientPort=${client}`,
          "clientPortAddress=127.0.0.1",
          "tickTime=500",
          "initLimit=20",
          "syncLimit=6",
          "maxClientCnxns=0",
          "admin.enableServer=false",
          "reconfigEnabled=false",
          "4lw.commands.whitelist=ruok,srvr",
          ...servers,
          "",
        ].join("\n"),
      );
    },
    command: (dir) => ({
      cmd: "/usr/bin/java",
      args: [
        "-Xshare:auto",
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-Xmx128m",
        "-Xss512k",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-Dzookeeper.forceSync=no",
        "-cp",
        `${JARS}/zookeeper.jar:${JARS}/slf4j-simple.jar`,
        "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        `${dir}/zoo.cfg`,
      ],
    }),
    ready: async () => {
      const mode = await zookeeperMode(client);
      return mode === "leader" || mode === "follower";
    },
  };
}

/** Starts `size` nodes at once and resolves when each serves in a quorum. */
export async function startZooKeeperEnsemble(
  size = 3,
): Promise<ZooKeeperEnsemble> {
  const ports = freePorts(3 * size);
  const servers = Array.from(
    { length: size },
    (_, i) =>
      `server.${i + 1}=127.0.0.1:${ports[3 * i + 1]}:${ports[3 * i + 2]}`,
  );
  const started = await Promise.allSettled(
    servers.map((_, i) =>
      startMember(
        `zk${i + 1}`,
        nodeRecipe(i + 1, ports[3 * i], servers),
        ports.slice(3 * i, 3 * i + 3),
      )
    ),
  );
  const members = started.flatMap((s) =>
    s.status === "fulfilled" ? [s.value] : []
  );
  const close = async () => {
    await Promise.all(members.map(stopMember));
  };
  const failed = started.find((s) => s.status === "rejected");
  if (failed) {
    await close();
    throw (failed as PromiseRejectedResult).reason;
  }
  return {
    members,
    async leader() {
      const modes = await Promise.all(
        members.map((m) => zookeeperMode(m.port)),
      );
      return modes.indexOf("leader");
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
