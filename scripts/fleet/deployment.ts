/**
 * What a deployment is (clusters.ts, servers.ts): one backend's servers as
 * the nodes and the nemesis see them, and the parts they share: each node's
 * proxies, the URI's host list, and the faults on one server process.
 *
 * @module
 */

import type { TestServer } from "../../tests/helpers/servers/server.ts";
import type { AppliedFault } from "./nemesis.ts";
import { NodeNetwork } from "./proxy.ts";

/** One backend's servers, as the nodes and the nemesis see them. */
export interface Deployment {
  readonly backend: string;
  /** What runs, for the report: `etcd 3.4, 3 members`. */
  readonly description: string;
  readonly ttlS: number;
  /** Within how long a dead holder's lock comes free (README's figure). */
  readonly freeWithinMs: number;
  readonly fences: boolean;
  /** Fault kinds under which the README says locks can be lost. */
  readonly knownLimits: readonly string[];
  readonly clusterFaults: readonly string[];
  readonly nodeFaults: readonly string[];
  /** The URI node `index` (0-based) uses, through its own proxies. */
  uri(index: number): string;
  /** Each node's proxies (none for the file backend). */
  readonly networks: readonly NodeNetwork[];
  /** Cuts node `index` off from every server, or lets it through again. */
  partition(index: number): void;
  heal(index: number): void;
  applyClusterFault(fault: string, rand: () => number): Promise<AppliedFault>;
  /** Stops the proxies and every server, and removes their dirs. */
  close(): Promise<void>;
}

/** What every deployment is given. */
export interface DeployOptions {
  readonly nodes: number;
  /** The TTL asked for; raised to the backend's minimum. */
  readonly ttlS: number;
  /** A directory of the run's, for the file backend's locks. */
  readonly dir: string;
}

export const pick = <T>(items: readonly T[], rand: () => number): T =>
  items[Math.floor(rand() * items.length) % items.length];

/** Each node's proxies to `targets`; ports of the same length as theirs. */
export function networks(
  nodes: number,
  targets: readonly number[],
  rewrite?: (node: number) => Parameters<NodeNetwork["add"]>[1],
): NodeNetwork[] {
  return Array.from({ length: nodes }, (_, node) => {
    const network = new NodeNetwork();
    for (const target of targets) {
      const proxy = network.add(target, rewrite?.(node));
      if (String(proxy.port).length !== String(target).length) {
        throw new Error(
          `Proxy port ${proxy.port} and server port ${target} differ in length`,
        );
      }
    }
    return network;
  });
}

export const hosts = (network: NodeNetwork, ports: readonly number[]) =>
  ports.map((port) => `127.0.0.1:${network.port(port)}`).join(",");

export async function stopServer(server: TestServer): Promise<void> {
  await server.kill();
  await Deno.remove(server.dir, { recursive: true }).catch(() => {});
}

/** Faults on one member server: down past the TTL, stopped, restarted. */
export function memberFaults() {
  return {
    async kill(server: TestServer, target: string): Promise<AppliedFault> {
      await server.kill();
      return { target, heal: () => server.restart() };
    },
    stop(server: TestServer, target: string): AppliedFault {
      server.pause();
      return { target, heal: () => server.resume() };
    },
    async restart(server: TestServer, target: string): Promise<AppliedFault> {
      await server.kill();
      await server.restart();
      return { target, heal: () => {} };
    },
  };
}
