/**
 * Redis with one primary, replicas (`--replicaof`) and Sentinels on
 * loopback, as `mymaster` with a quorum of 2: the servers use the plain
 * recipe (no persistence), the Sentinels watch with a 1 s
 * `down-after-milliseconds`, so that a dead primary is failed over within
 * seconds. `master()` asks the Sentinels where the primary is now; the
 * cluster is ready once every Sentinel knows every replica and every other
 * Sentinel (hello messages, every 2 s), so a failover can start at once.
 *
 * @module
 */

import { freePorts, startMember, stopMember } from "./cluster_ports.ts";
import type { ClusterMember } from "./cluster_ports.ts";
import { redisServerWith } from "./redis.ts";
import { acceptsTcp, type ServerRecipe } from "./server.ts";

/** The master name the Sentinels monitor. */
export const SENTINEL_MASTER = "mymaster";

/** A running primary, replicas and Sentinels. */
export interface RedisSentinelCluster extends AsyncDisposable {
  /** The Redis servers; `servers[0]` started as the primary. */
  readonly servers: readonly ClusterMember[];
  readonly sentinels: readonly ClusterMember[];
  /** The port of the primary as the Sentinels see it, or undefined. */
  master(): Promise<number | undefined>;
  /** Kills every process and removes their dirs. */
  close(): Promise<void>;
}

/** Sends one inline command and reads the reply until it goes quiet. */
export async function redisAsk(port: number, command: string): Promise<string> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(new TextEncoder().encode(`${command}\r\n`));
      const decoder = new TextDecoder();
      let text = "";
      const buffer = new Uint8Array(16 * 1024);
      // The first bytes may take a while; after them, 100 ms of quiet ends
      // the reply (these replies come in one write).
      let wait = 1_000;
      while (true) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const read = await Promise.race([
          conn.read(buffer),
          new Promise<null>((resolve) =>
            timer = setTimeout(resolve, wait, null)
          ),
        ]);
        clearTimeout(timer);
        if (read === null) break;
        text += decoder.decode(buffer.subarray(0, read));
        wait = 100;
      }
      return text;
    } finally {
      conn.close();
    }
  } catch {
    return "";
  }
}

/** A field of a `SENTINEL master` reply (a flat list of bulk strings). */
function field(reply: string, name: string): string | undefined {
  return new RegExp(`\\r\\n${name}\\r\\n\\$\\d+\\r\\n([^\\r]*)\\r\\n`)
    .exec(reply)?.[1];
}

function sentinelRecipe(port: number, masterPort: number): ServerRecipe {
  return {
    kind: "redis-sentinel",
    requires: ["/usr/bin/redis-server"],
    prepare: (dir) =>
      Deno.writeTextFile(
        `${dir}/sentinel.conf`,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER} 2`,
          "",
        ].join("\n"),
      ),
    command: (dir) => ({
      cmd: "/usr/bin/redis-server",
      args: [`${dir}/sentinel.conf`, "--sentinel"],
    }),
    ready: () => acceptsTcp(port),
  };
}

/** Starts the servers, then the Sentinels, and waits until they know each other. */
export async function startRedisSentinelCluster(
  options: { replicas?: number; sentinels?: number } = {},
): Promise<RedisSentinelCluster> {
  const replicas = options.replicas ?? 2;
  const sentinelCount = options.sentinels ?? 3;
  const ports = freePorts(1 + replicas + sentinelCount);
  const [primaryPort] = ports;
  const servers: ClusterMember[] = [];
  const sentinels: ClusterMember[] = [];
  const close = async () => {
    await Promise.all([...sentinels, ...servers].map(stopMember));
  };
  try {
    const plain = (port: number, extra: string[]) => {
      const recipe = redisServerWith(extra);
      return {
        ...recipe,
        command: (dir: string) => recipe.command(dir, [port]),
        ready: (dir: string) => recipe.ready(dir, [port]),
      };
    };
    servers.push(
      await startMember("r1", plain(primaryPort, []), [primaryPort]),
    );
    servers.push(
      ...await Promise.all(
        ports.slice(1, 1 + replicas).map((port, i) =>
          startMember(
            `r${i + 2}`,
            plain(port, ["--replicaof", "127.0.0.1", String(primaryPort)]),
            [port],
          )
        ),
      ),
    );
    sentinels.push(
      ...await Promise.all(
        ports.slice(1 + replicas).map((port, i) =>
          startMember(`s${i + 1}`, sentinelRecipe(port, primaryPort), [port])
        ),
      ),
    );
    const deadline = Date.now() + 30_000;
    for (const sentinel of sentinels) {
      while (true) {
        const reply = await redisAsk(
          sentinel.port,
          `SENTINEL master ${SENTINEL_MASTER}`,
        );
        if (
          Number(field(reply, "num-slaves")) >= replicas &&
          Number(field(reply, "num-other-sentinels")) >= sentinelCount - 1
        ) break;
        if (Date.now() > deadline) {
          throw new Error(
            `Sentinel ${sentinel.name} did not find the others: ${reply}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  } catch (error) {
    await close();
    throw error;
  }
  return {
    servers,
    sentinels,
    async master() {
      for (const sentinel of sentinels) {
        const reply = await redisAsk(
          sentinel.port,
          `SENTINEL get-master-addr-by-name ${SENTINEL_MASTER}`,
        );
        const port = /\r\n(\d+)\r\n$/.exec(reply)?.[1];
        if (port) return Number(port);
      }
      return undefined;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
