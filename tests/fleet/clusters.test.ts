/**
 * The fleet's clusters, on real servers: the multi-member recipes
 * (tests/helpers/servers/cluster_*.ts) elect and fail over as the nemesis
 * expects, and a deployment's per-node URIs reach the cluster through that
 * node's proxies only, so that a partition cuts off one node and not the
 * others (for Redis, through the Sentinel port rewrite, with the real
 * client).
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import { runCli } from "../helpers/cli.ts";
import { startEtcdCluster } from "../helpers/servers/cluster_etcd.ts";
import {
  redisAsk,
  startRedisSentinelCluster,
} from "../helpers/servers/cluster_redis.ts";
import { startZooKeeperEnsemble } from "../helpers/servers/cluster_zookeeper.ts";
import { available } from "../helpers/servers/server.ts";
import { etcdServer } from "../helpers/servers/etcd.ts";
import { redisServer } from "../helpers/servers/redis.ts";
import { zookeeperServer } from "../helpers/servers/zookeeper.ts";
import { deploy } from "../../scripts/fleet/clusters.ts";

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

const exists = async (path: string) => {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
};

/**
 * Runs one coolock tick with a job that prints its token; a conflict exits
 * 3. (A fresh Redis grants no lock for its first TTL: coolock can't tell a
 * new server from one that restarted and lost a holder's lock.)
 */
function tick(uri: string, lock: string, ttl = 3) {
  return runCli([
    "--conflict-exit-code",
    "3",
    "--backend",
    uri,
    "--lock",
    lock,
    "--ttl",
    String(ttl),
    "--kill-after",
    "0.5",
    "--guard-time",
    "0",
    "-w",
    "0",
    "--log-file",
    "-",
    "--shell",
    "--",
    'echo "token=$COOLOCK_FENCING_TOKEN"',
  ]);
}

Deno.test({
  name:
    "etcd cluster: three members elect a leader, and another after the leader is killed",
  ignore: !available(etcdServer),
  async fn() {
    const cluster = await startEtcdCluster(3);
    try {
      const first = await eventually("a leader", async () => {
        const i = await cluster.leader();
        return i >= 0 ? i : undefined;
      });
      const dead = cluster.members[first];
      await dead.server.kill();
      const second = await eventually("a new leader", async () => {
        const i = await cluster.leader();
        return i >= 0 && i !== first ? i : undefined;
      });
      assert(second !== first);
      await dead.server.restart();
      assertEquals(cluster.members.length, 3);
    } finally {
      await cluster.close();
    }
    for (const member of cluster.members) {
      assert(
        !(await exists(member.server.dir)),
        `${member.server.dir} left behind`,
      );
    }
  },
});

Deno.test({
  name:
    "ZooKeeper ensemble: three nodes, one leader, a new one after it is killed",
  ignore: !available(zookeeperServer),
  async fn() {
    const ensemble = await startZooKeeperEnsemble(3);
    try {
      const first = await eventually("a leader", async () => {
        const i = await ensemble.leader();
        return i >= 0 ? i : undefined;
      });
      await ensemble.members[first].server.kill();
      const second = await eventually("a new leader", async () => {
        const i = await ensemble.leader();
        return i >= 0 && i !== first ? i : undefined;
      }, 30_000);
      assert(second !== first);
    } finally {
      await ensemble.close();
    }
  },
});

Deno.test({
  name:
    "Redis with Sentinels: a killed primary is failed over, and comes back as a replica",
  ignore: !available(redisServer),
  async fn() {
    const cluster = await startRedisSentinelCluster();
    try {
      const [primary] = cluster.servers;
      assertEquals(await cluster.master(), primary.port);
      await primary.server.kill();
      const promoted = await eventually("a failover", async () => {
        const port = await cluster.master();
        return port !== undefined && port !== primary.port ? port : undefined;
      });
      assert(cluster.servers.some((m) => m.port === promoted));
      await primary.server.restart();
      await eventually(
        "the old primary as a replica",
        async () =>
          (await redisAsk(primary.port, "ROLE")).includes("slave")
            ? true
            : undefined,
      );
    } finally {
      await cluster.close();
    }
  },
});

Deno.test({
  name:
    "a Redis deployment's nodes reach the primary through their own proxies only",
  ignore: !available(redisServer),
  async fn() {
    const dir = await Deno.makeTempDir();
    const redis = await deploy("redis", { nodes: 2, ttlS: 3, dir });
    try {
      const lock = `fleet-test-${crypto.randomUUID()}`;
      const through0 = await eventually(
        "a lock from a young server",
        async () => {
          const result = await tick(redis.uri(0), lock);
          return result.code === 3 ? undefined : result;
        },
      );
      assertEquals(through0.code, 0, through0.stderr);
      assert(/token=\d+/.test(through0.stdout), through0.stdout);
      // Cut node 0 off from the primary only, not from the Sentinels: had
      // its client followed a Sentinel's answer to the primary's real port,
      // it would still get through.
      const [net0] = redis.networks;
      const roles = await Promise.all(
        net0.targets().map(async (port) => ({
          port,
          role: await redisAsk(port, "ROLE"),
        })),
      );
      const primary = roles.find((r) => /^\*\d+\r\n\$6\r\nmaster/.test(r.role));
      assert(primary, `no primary among ${JSON.stringify(roles)}`);
      net0.proxy(primary.port).partition();
      const [cut, other] = await Promise.all([
        tick(redis.uri(0), lock),
        tick(redis.uri(1), `${lock}-other`),
      ]);
      assertEquals(cut.code, 69, cut.stderr);
      assertEquals(other.code, 0, other.stderr);
      net0.proxy(primary.port).heal();
      const healed = await tick(redis.uri(0), lock);
      assertEquals(healed.code, 0, healed.stderr);
      // And the whole node's network, Sentinels too.
      redis.partition(0);
      assertEquals((await tick(redis.uri(0), lock)).code, 69);
      redis.heal(0);
    } finally {
      await redis.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "an etcd deployment: each node's URI lists its proxies to all three members",
  ignore: !available(etcdServer),
  async fn() {
    const dir = await Deno.makeTempDir();
    const etcd = await deploy("etcd3", { nodes: 2, ttlS: 3, dir });
    try {
      const hosts = (uri: string) =>
        /^etcd3:\/\/([^?]+)/.exec(uri)![1].split(",");
      assertEquals(hosts(etcd.uri(0)).length, 3);
      assertEquals(
        hosts(etcd.uri(0)).filter((h) => hosts(etcd.uri(1)).includes(h)),
        [],
      );
      const lock = `fleet-test-${crypto.randomUUID()}`;
      const first = await tick(etcd.uri(0), lock);
      assertEquals(first.code, 0, first.stderr);
      etcd.partition(0);
      const [cut, other] = await Promise.all([
        tick(etcd.uri(0), lock),
        tick(etcd.uri(1), lock),
      ]);
      assert(cut.code !== 0, `a partitioned node got the lock: ${cut.stdout}`);
      assertEquals(other.code, 0, other.stderr);
    } finally {
      await etcd.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
