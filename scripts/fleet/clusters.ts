/**
 * The deployments the fleet runs against, one per backend (the contract is
 * deployment.ts; the single servers are in servers.ts): real servers on
 * loopback (the recipes in tests/helpers/servers/), each node's proxies to
 * them (proxy.ts) and the URI a node uses through its proxies, the TTL, and
 * the cluster faults the nemesis may apply, with their heals.
 *
 * | backend    | servers                                   | cluster faults                                       |
 * | ---------- | ----------------------------------------- | ---------------------------------------------------- |
 * | etcd/etcd3 | 3 members (one cluster each)              | kill-leader, kill-member, stop-member, restart-member |
 * | zookeeper  | 3-node ensemble                           | the same                                             |
 * | redis      | primary, 2 replicas, 3 Sentinels          | kill-primary, stop-primary, restart-replica          |
 * | postgres   | one server                                | restart-server, stop-server                          |
 * | mysql      | one MariaDB server                        | restart-server, stop-server                          |
 * | memcached  | one server                                | restart-server, stop-server                          |
 * | consul     | the fake, one agent per node              | restart-server, stop-server, leader-change           |
 * | file       | a directory on this host                  | none (no network: no partition either)               |
 *
 * `kill-*` keeps the member down past the TTL, then restarts it;
 * `restart-*` restarts at once; `stop-*` SIGSTOPs past the TTL.
 *
 * @module
 */

import { startEtcdCluster } from "../../tests/helpers/servers/cluster_etcd.ts";
import type { ClusterMember } from "../../tests/helpers/servers/cluster_ports.ts";
import { startRedisSentinelCluster } from "../../tests/helpers/servers/cluster_redis.ts";
import { startZooKeeperEnsemble } from "../../tests/helpers/servers/cluster_zookeeper.ts";
import {
  type Deployment,
  type DeployOptions,
  hosts,
  memberFaults,
  networks,
  pick,
} from "./deployment.ts";
import type { AppliedFault } from "./nemesis.ts";
import { NODE_FAULTS } from "./nemesis.ts";
import { portRewrite } from "./proxy.ts";
import { deployConsul, deployFile, deploySingle } from "./servers.ts";

export type { Deployment, DeployOptions };

/** Every backend the fleet knows, in the order it reports them. */
export const BACKENDS = [
  "etcd",
  "etcd3",
  "zookeeper",
  "redis",
  "postgres",
  "mysql",
  "memcached",
  "consul",
  "file",
] as const;

/** etcd, etcd3 and ZooKeeper: a quorum of members with a leader. */
function quorumFaults(
  members: readonly ClusterMember[],
  leader: () => Promise<number>,
) {
  const faults = memberFaults();
  return async (fault: string, rand: () => number): Promise<AppliedFault> => {
    const lead = await leader();
    const followers = members.filter((_, i) => i !== lead);
    const chosen = fault === "kill-leader"
      ? members[lead] ?? pick(members, rand)
      : fault === "kill-member"
      ? pick(followers, rand)
      : pick(members, rand);
    const role = members.indexOf(chosen) === lead ? "leader" : "follower";
    const target = `${chosen.name} (${role})`;
    switch (fault) {
      case "kill-leader":
      case "kill-member":
        return await faults.kill(chosen.server, target);
      case "stop-member":
        return faults.stop(chosen.server, target);
      case "restart-member":
        return await faults.restart(chosen.server, target);
    }
    throw new RangeError(`Unknown fault '${fault}'`);
  };
}

const QUORUM_FAULTS = [
  "kill-leader",
  "kill-member",
  "stop-member",
  "restart-member",
];

async function deployEtcd(
  scheme: "etcd" | "etcd3",
  options: DeployOptions,
): Promise<Deployment> {
  const ttlS = Math.max(options.ttlS, 2);
  const cluster = await startEtcdCluster(3);
  const ports = cluster.members.map((m) => m.port);
  const nets = networks(options.nodes, ports);
  return {
    backend: scheme,
    description: "etcd 3.4, 3 members",
    ttlS,
    freeWithinMs: ttlS * 1_000,
    fences: true,
    knownLimits: [],
    clusterFaults: QUORUM_FAULTS,
    nodeFaults: NODE_FAULTS,
    uri: (i) => `${scheme}://${hosts(nets[i], ports)}`,
    networks: nets,
    partition: (i) => nets[i].partition(),
    heal: (i) => nets[i].heal(),
    applyClusterFault: quorumFaults(cluster.members, cluster.leader),
    async close() {
      await Promise.all(nets.map((n) => n.close()));
      await cluster.close();
    },
  };
}

async function deployZooKeeper(options: DeployOptions): Promise<Deployment> {
  const ttlS = Math.max(options.ttlS, 2);
  const ensemble = await startZooKeeperEnsemble(3);
  const ports = ensemble.members.map((m) => m.port);
  const nets = networks(options.nodes, ports);
  return {
    backend: "zookeeper",
    description: "ZooKeeper 3.8, 3-node ensemble",
    ttlS,
    freeWithinMs: ttlS * 1_000,
    fences: true,
    knownLimits: [],
    clusterFaults: QUORUM_FAULTS,
    nodeFaults: NODE_FAULTS,
    uri: (i) => `zookeeper://${hosts(nets[i], ports)}`,
    networks: nets,
    partition: (i) => nets[i].partition(),
    heal: (i) => nets[i].heal(),
    applyClusterFault: quorumFaults(ensemble.members, ensemble.leader),
    async close() {
      await Promise.all(nets.map((n) => n.close()));
      await ensemble.close();
    },
  };
}

async function deployRedis(options: DeployOptions): Promise<Deployment> {
  const ttlS = options.ttlS;
  const cluster = await startRedisSentinelCluster({
    replicas: 2,
    sentinels: 3,
  });
  const serverPorts = cluster.servers.map((m) => m.port);
  const sentinelPorts = cluster.sentinels.map((m) => m.port);
  // Each node's Sentinel proxies rewrite ports into the node's proxies, so
  // the primary a Sentinel names is reached through the node's network too.
  const maps = Array.from(
    { length: options.nodes },
    () => new Map<number, number>(),
  );
  const nets = networks(options.nodes, serverPorts);
  nets.forEach((net, i) => {
    for (const port of sentinelPorts) {
      const proxy = net.add(port, portRewrite(maps[i]));
      if (String(proxy.port).length !== String(port).length) {
        throw new Error(
          `Proxy port ${proxy.port} and ${port} differ in length`,
        );
      }
    }
    for (const port of [...serverPorts, ...sentinelPorts]) {
      maps[i].set(port, net.port(port));
    }
  });
  const faults = memberFaults();
  const primary = async () => {
    const port = await cluster.master();
    return cluster.servers.find((m) => m.port === port);
  };
  return {
    backend: "redis",
    description: "Redis 7.0, 1 primary, 2 replicas, 3 Sentinels",
    ttlS,
    freeWithinMs: ttlS * 1_000,
    fences: true,
    // README, Redis: "replication is asynchronous, so a Sentinel failover can
    // lose a lock".
    knownLimits: ["kill-primary", "stop-primary"],
    clusterFaults: ["kill-primary", "stop-primary", "restart-replica"],
    nodeFaults: NODE_FAULTS,
    uri: (i) => `redis://${hosts(nets[i], sentinelPorts)}/0?sentinel=mymaster`,
    networks: nets,
    partition: (i) => nets[i].partition(),
    heal: (i) => nets[i].heal(),
    async applyClusterFault(fault, rand) {
      const master = await primary();
      if (!master) throw new Error("the Sentinels name no primary");
      if (fault === "kill-primary") {
        return await faults.kill(master.server, `${master.name} (primary)`);
      }
      if (fault === "stop-primary") {
        return faults.stop(master.server, `${master.name} (primary)`);
      }
      if (fault === "restart-replica") {
        const replica = pick(cluster.servers.filter((m) => m !== master), rand);
        return await faults.restart(
          replica.server,
          `${replica.name} (replica)`,
        );
      }
      throw new RangeError(`Unknown fault '${fault}'`);
    },
    async close() {
      await Promise.all(nets.map((n) => n.close()));
      await cluster.close();
    },
  };
}

/** Starts one backend's servers and proxies. */
export async function deploy(
  backend: string,
  options: DeployOptions,
): Promise<Deployment> {
  switch (backend) {
    case "etcd":
    case "etcd3":
      return await deployEtcd(backend, options);
    case "zookeeper":
      return await deployZooKeeper(options);
    case "redis":
      return await deployRedis(options);
    case "postgres":
    case "mysql":
    case "memcached":
      return await deploySingle(backend, options);
    case "consul":
      return await deployConsul(options);
    case "file":
      return await deployFile(options);
  }
  throw new RangeError(`Unknown backend '${backend}'`);
}
