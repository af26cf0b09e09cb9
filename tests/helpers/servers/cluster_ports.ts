/**
 * Ports and members for the multi-member cluster recipes (cluster_*.ts).
 * A cluster's members must know each other's ports before the first starts,
 * so the ports are taken up front, all distinct (each listener stays open
 * until all are chosen), and every member's recipe closes over them; the
 * members still run through `startServer`, with its temp dir, log file and
 * `pause`/`kill`/`restart`.
 *
 * @module
 */

import {
  freePort,
  type ServerRecipe,
  startServer,
  type TestServer,
} from "./server.ts";

/** `count` distinct TCP ports on 127.0.0.1 that were free a moment ago. */
export function freePorts(count: number): number[] {
  return Array.from({ length: count }, freePort);
}

/** One member of a cluster: its server, and the ports it serves on. */
export interface ClusterMember {
  /** The member's name in the cluster (`m1`, `zk2`, …). */
  readonly name: string;
  /** The port clients connect to. */
  readonly port: number;
  /** Every port it uses, client port first. */
  readonly ports: readonly number[];
  readonly server: TestServer;
}

/**
 * Starts a member whose recipe has its ports already (`ports: 0`, so that
 * `startServer` allocates none) and names them here.
 */
export async function startMember(
  name: string,
  recipe: ServerRecipe,
  ports: readonly number[],
): Promise<ClusterMember> {
  const server = await startServer({ ...recipe, ports: 0 });
  return { name, port: ports[0], ports, server };
}

/** Kills a member's server and removes its temp dir. */
export async function stopMember(member: ClusterMember): Promise<void> {
  await member.server.kill(); // SIGKILL ends a SIGSTOPped process too.
  await Deno.remove(member.server.dir, { recursive: true }).catch(() => {});
}
