/**
 * The single-server deployments, and the two without a real server: one
 * PostgreSQL, one MariaDB and one memcached (restarted, or stopped past the
 * TTL); the Consul fake, with one agent per node (restarted, stopped, or a
 * leader election); the file backend's directory (no server, no network).
 *
 * @module
 */

import { consulFakeRecipe } from "../../tests/helpers/servers/consul_fake.ts";
import {
  MARIADB_DATABASE,
  MARIADB_PASSWORD,
  MARIADB_USER,
  mariadbServer,
} from "../../tests/helpers/servers/mariadb.ts";
import { memcachedServer } from "../../tests/helpers/servers/memcached.ts";
import {
  POSTGRES_DATABASE,
  POSTGRES_PASSWORD,
  POSTGRES_USER,
  postgresServer,
  wholeServer,
} from "../../tests/helpers/servers/postgres.ts";
import {
  startServer,
  type TestServer,
} from "../../tests/helpers/servers/server.ts";
import {
  type Deployment,
  type DeployOptions,
  memberFaults,
  networks,
  stopServer,
} from "./deployment.ts";
import { NODE_FAULTS } from "./nemesis.ts";
import { NodeNetwork } from "./proxy.ts";

const SINGLE_FAULTS = ["restart-server", "stop-server"];

/** One server (postgres, mysql, memcached): restarted or stopped. */
function single(
  backend: string,
  description: string,
  server: TestServer,
  options: DeployOptions,
  uri: (port: number) => string,
  freeWithinMs: number,
): Deployment {
  const nets = networks(options.nodes, [server.port]);
  const faults = memberFaults();
  return {
    backend,
    description,
    ttlS: options.ttlS,
    freeWithinMs,
    fences: true,
    knownLimits: [],
    clusterFaults: SINGLE_FAULTS,
    nodeFaults: NODE_FAULTS,
    uri: (i) => uri(nets[i].port(server.port)),
    networks: nets,
    partition: (i) => nets[i].partition(),
    heal: (i) => nets[i].heal(),
    async applyClusterFault(fault) {
      if (fault === "restart-server") {
        return await faults.restart(server, backend);
      }
      if (fault === "stop-server") return faults.stop(server, backend);
      throw new RangeError(`Unknown fault '${fault}'`);
    },
    async close() {
      await Promise.all(nets.map((n) => n.close()));
      await stopServer(server);
    },
  };
}

export async function deployConsul(
  options: DeployOptions,
): Promise<Deployment> {
  // Consul's servers refuse session TTLs under 10 s by default.
  const ttlS = Math.max(options.ttlS, 10);
  // One agent per node, as each host runs its own.
  const server = await startServer({
    ...consulFakeRecipe([], "consul-fleet"),
    ports: options.nodes,
  });
  const nets = Array.from({ length: options.nodes }, (_, i) => {
    const net = new NodeNetwork();
    net.add(server.ports[i]);
    return net;
  });
  const faults = memberFaults();
  return {
    backend: "consul",
    description: "the Consul fake, one agent per node",
    ttlS,
    // README, Consul: free within 2 × TTL + lock-delay (the TTL) + 1 s.
    freeWithinMs: 3 * ttlS * 1_000 + 1_000,
    fences: true,
    knownLimits: [],
    clusterFaults: ["restart-server", "stop-server", "leader-change"],
    nodeFaults: NODE_FAULTS,
    uri: (i) => `consul://127.0.0.1:${nets[i].port(server.ports[i])}`,
    networks: nets,
    partition: (i) => nets[i].partition(),
    heal: (i) => nets[i].heal(),
    async applyClusterFault(fault) {
      if (fault === "restart-server") {
        return await faults.restart(server, "consul servers");
      }
      if (fault === "stop-server") return faults.stop(server, "consul servers");
      if (fault === "leader-change") {
        const response = await fetch(
          `http://127.0.0.1:${server.port}/fake/leader-change?gap=2000`,
          { method: "PUT", signal: AbortSignal.timeout(5_000) },
        );
        await response.body?.cancel();
        if (!response.ok) throw new Error(`leader-change: ${response.status}`);
        return {
          target: "consul servers (2 s without a leader)",
          heal: () => {},
        };
      }
      throw new RangeError(`Unknown fault '${fault}'`);
    },
    async close() {
      await Promise.all(nets.map((n) => n.close()));
      await stopServer(server);
    },
  };
}

export async function deployFile(options: DeployOptions): Promise<Deployment> {
  const dir = `${options.dir}/file-locks`;
  await Deno.mkdir(dir, { mode: 0o755 });
  return {
    backend: "file",
    description: "a directory on this host",
    ttlS: options.ttlS,
    freeWithinMs: options.ttlS * 1_000,
    fences: true,
    knownLimits: [],
    clusterFaults: [],
    // One host, no network: nothing to partition.
    nodeFaults: NODE_FAULTS.filter((f) => f !== "partition-node"),
    uri: () => `file://${dir}`,
    networks: [],
    partition: () => {},
    heal: () => {},
    applyClusterFault: (fault) => {
      throw new RangeError(`Unknown fault '${fault}'`);
    },
    close: async () => {},
  };
}

/** PostgreSQL, MariaDB (as `mysql`) or memcached, one server each. */
export async function deploySingle(
  backend: string,
  options: DeployOptions,
): Promise<Deployment> {
  switch (backend) {
    case "postgres": {
      const server = wholeServer(await startServer(postgresServer));
      return single(
        "postgres",
        "PostgreSQL 15, one server",
        server,
        options,
        (port) =>
          `postgres://${POSTGRES_USER}:${POSTGRES_PASSWORD}@127.0.0.1:${port}/${POSTGRES_DATABASE}`,
        options.ttlS * 1_000,
      );
    }
    case "mysql": {
      const server = await startServer(mariadbServer);
      return single(
        "mysql",
        "MariaDB 10.11, one server",
        server,
        options,
        (port) =>
          `mysql://${MARIADB_USER}:${MARIADB_PASSWORD}@127.0.0.1:${port}/${MARIADB_DATABASE}`,
        options.ttlS * 1_000,
      );
    }
    case "memcached": {
      const server = await startServer(memcachedServer);
      return single(
        "memcached",
        "memcached, one server",
        server,
        options,
        (port) => `memcached://127.0.0.1:${port}`,
        // Whole-second expiry: up to TTL + 1 s.
        options.ttlS * 1_000 + 1_000,
      );
    }
  }
  throw new RangeError(`Unknown backend '${backend}'`);
}
