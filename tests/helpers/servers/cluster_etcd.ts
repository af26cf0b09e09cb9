/**
 * A 3-member (or n-member) etcd 3.4 cluster on loopback: each member a
 * server of its own (temp dir, log, pause/kill/restart), client and peer
 * ports taken up front, so `--initial-cluster` names them all. No fsync;
 * etcd's default heartbeat (100 ms) and election timeout (1 s), since the
 * single-member recipe's 10/100 ms would flap leaders on a loaded host.
 * `leader()` asks each member's `/v3/maintenance/status`.
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

/** A running etcd cluster. */
export interface EtcdCluster extends AsyncDisposable {
  /** The members, `m1` … `mN`; each `port` is its client port. */
  readonly members: readonly ClusterMember[];
  /** The index in `members` of the leader now, or -1 when none answers. */
  leader(): Promise<number>;
  /** Kills every member and removes their dirs. */
  close(): Promise<void>;
}

async function health(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/health`, {
      signal: AbortSignal.timeout(1_000),
    });
    return response.ok && (await response.text()).includes("true");
  } catch {
    return false;
  }
}

/** One member's status: its own id and the leader it follows. */
async function status(
  port: number,
): Promise<{ id: string; leader: string } | undefined> {
  try {
    const response = await fetch(
      `http://127.0.0.1:${port}/v3/maintenance/status`,
      { method: "POST", body: "{}", signal: AbortSignal.timeout(1_000) },
    );
    if (!response.ok) return undefined;
    const answer = await response.json();
    const id = String(answer?.header?.member_id ?? "");
    const leader = String(answer?.leader ?? "");
    return id && leader ? { id, leader } : undefined;
  } catch {
    return undefined;
  }
}

function memberRecipe(
  name: string,
  client: number,
  peer: number,
  initialCluster: string,
  token: string,
): ServerRecipe {
  return {
    kind: "etcd",
    requires: ["/usr/bin/etcd"],
    command: (dir) => ({
      cmd: "/usr/bin/etcd",
      args: [
        "--name",
        name,
        "--data-dir",
        `${dir}/data`,
        "--listen-client-urls",
        `http://127.0.0.1:${client}`,
        "--advertise-client-urls",
        `http://127.0.0.1:${client}`,
        "--listen-peer-urls",
        `http://127.0.0.1:${peer}`,
        "--initial-advertise-peer-urls",
        `http://127.0.0.1:${peer}`,
        "--initial-cluster",
        initialCluster,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        token,
        "--unsafe-no-fsync",
        "--heartbeat-interval=100",
        "--election-timeout=1000",
      ],
    }),
    // A member is healthy once the cluster has a leader, so the members
    // must start together.
    ready: () => health(client),
  };
}

/** Starts `size` members at once and resolves when each reports healthy. */
export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  const ports = freePorts(2 * size);
  const names = Array.from({ length: size }, (_, i) => `m${i + 1}`);
  const initialCluster = names
    .map((name, i) => `${name}=http://127.0.0.1:${ports[2 * i + 1]}`)
    .join(",");
  const started = await Promise.allSettled(names.map((name, i) =>
    startMember(
      name,
      memberRecipe(
        name,
        ports[2 * i],
        ports[2 * i + 1],
        initialCluster,
        // One token for all members: it seeds the cluster's ID.
        `coolock-${ports[0]}`,
      ),
      [ports[2 * i], ports[2 * i + 1]],
    )
  ));
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
      const answers = await Promise.all(members.map((m) => status(m.port)));
      const leaderId = answers.find((a) => a)?.leader;
      return answers.findIndex((a) => a?.id === leaderId);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
