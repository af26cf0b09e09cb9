/**
 * `check` on the etcd recipe, on either transport: each endpoint's
 * `GET /version` (round trip, version), the URI's credentials, a probe key
 * and lease under the key root, the clock skew from the HTTP `Date` header
 * (narrowed well below its whole second), and the cluster's members,
 * leader and alarms.
 *
 * @module
 */

import type { CheckResult } from "../../src/backend.ts";
import type { EtcdOps, Ping } from "./ops.ts";
import type { EtcdTarget } from "./uri.ts";

const failure = (name: string, error: unknown): CheckResult => ({
  name,
  status: "fail",
  detail: String((error as Error)?.message ?? error).replace(/\s+/g, " "),
});

/** `check`: reachable, version, credentials, permissions, clock, cluster. */
export async function checkEtcd(
  ops: EtcdOps,
  target: EtcdTarget,
  signal: AbortSignal,
): Promise<CheckResult[]> {
  const pings = await Promise.all(target.endpoints.map(async (endpoint) => {
    const sentAt = performance.now();
    try {
      const ping = await ops.ping(endpoint, signal);
      return { endpoint, ping, ms: performance.now() - sentAt };
    } catch (error) {
      signal.throwIfAborted();
      return { endpoint, error: failure("reachable", error).detail };
    }
  }));
  const up = pings.filter((p) => p.ping !== undefined);
  const results: CheckResult[] = [];
  const listed = pings.map((p) =>
    p.ping ? `${host(p.endpoint)} ${p.ms!.toFixed(1)} ms` : p.error
  ).join("; ");
  if (up.length === 0) {
    return [{ name: "reachable", status: "fail", detail: listed }];
  }
  results.push({
    name: "reachable",
    status: up.length === pings.length ? "ok" : "warn",
    detail: pings.length === 1
      ? `round trip ${up[0].ms!.toFixed(1)} ms`
      : `${up.length} of ${pings.length} endpoints answer: ${listed}`,
    ms: Math.round(Math.min(...up.map((p) => p.ms!)) * 100) / 100,
  });
  const versions = [...new Set(up.map((p) => p.ping!.version))];
  const old = versions.filter((v) => older(v, [3, 4]));
  results.push({
    name: "version",
    status: old.length > 0 ? "warn" : "ok",
    detail: `etcd ${versions.join(", ")}${
      old.length > 0 ? ": coolock needs etcd 3.4 or later" : ""
    }`,
  });
  results.push(await credentials(ops, target, signal));
  results.push(await permissions(ops, target, signal));
  results.push(await clock(ops, up[0].endpoint, signal));
  results.push(await cluster(ops, signal));
  return results;
}

function host(endpoint: string): string {
  return endpoint.replace(/^https?:\/\//, "");
}

function older(version: string, [major, minor]: [number, number]): boolean {
  const [a, b] = version.split(".").map(Number);
  return a < major || (a === major && b < minor);
}

async function credentials(
  ops: EtcdOps,
  target: EtcdTarget,
  signal: AbortSignal,
): Promise<CheckResult> {
  const user = target.uri.username;
  try {
    const state = await ops.auth(signal);
    if (state === "required") {
      return {
        name: "credentials",
        status: "fail",
        detail:
          "the server has auth enabled: put user:password in the backend URI",
      };
    }
    return {
      name: "credentials",
      status: "ok",
      detail: state === "disabled"
        ? `auth is disabled on the server${
          user === "" ? "" : `: the user '${user}' is not needed`
        }`
        : `authenticated as '${user}'`,
    };
  } catch (error) {
    signal.throwIfAborted();
    const result = failure("credentials", error);
    return {
      ...result,
      detail: `the server refused user '${user}': ${
        result.detail.replace(/^etcdserver: /, "")
      }`,
    };
  }
}

async function permissions(
  ops: EtcdOps,
  target: EtcdTarget,
  signal: AbortSignal,
): Promise<CheckResult> {
  const probe = `${target.root}/.coolock-check-${crypto.randomUUID()}`;
  let lease: string | undefined;
  try {
    [lease] = await ops.grant(10, signal);
    // etcd refuses a put and a delete of one key in one transaction.
    await ops.txn(
      [],
      [{ put: { key: probe, value: "probe", lease } }],
      [],
      signal,
    );
    await ops.txn([], [{ delete: probe }], [], signal);
    return {
      name: "permissions",
      status: "ok",
      detail: `may grant leases and write keys under '${target.root}/'`,
    };
  } catch (error) {
    signal.throwIfAborted();
    const result = failure("permissions", error);
    return {
      ...result,
      detail: `can't ${
        lease === undefined ? "grant a lease" : `write under '${target.root}/'`
      }: ${result.detail}`,
    };
  } finally {
    if (lease !== undefined) await ops.revoke(lease, signal).catch(() => {});
  }
}

/** At most this many `Date` probes, within this long, narrow the skew. */
const CLOCK_PROBES = 5;
const CLOCK_BUDGET_MS = 2_500;

/**
 * The skew of this host's clock against the server's, from the HTTP `Date`
 * header (whole seconds). One answer bounds the offset to a second; each
 * further request is timed to land where the server's clock would tick if
 * the offset were the middle of what is left, which halves it.
 */
async function clock(
  ops: EtcdOps,
  endpoint: string,
  signal: AbortSignal,
): Promise<CheckResult> {
  const now = () => performance.timeOrigin + performance.now();
  // offset = server clock − this host's clock, within [low, high).
  let [low, high] = [-Infinity, Infinity];
  let rtt = Infinity;
  const started = performance.now();
  try {
    for (let probe = 0; probe < CLOCK_PROBES; probe++) {
      if (probe > 0) {
        const middle = (low + high) / 2;
        // The next local time at which server time (t + middle) is whole.
        const target = Math.ceil((now() + rtt / 2 + 5 + middle) / 1000) *
            1000 - middle - rtt / 2;
        const wait = target - now();
        if (performance.now() - started + wait > CLOCK_BUDGET_MS) break;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
      const sentAt = now();
      const ping: Ping = await ops.ping(endpoint, signal);
      const receivedAt = now();
      if (ping.date === undefined) {
        return {
          name: "clock",
          status: "warn",
          detail: `${host(endpoint)} sends no HTTP Date header: skew unknown`,
        };
      }
      rtt = Math.min(rtt, receivedAt - sentAt);
      low = Math.max(low, ping.date - receivedAt);
      high = Math.min(high, ping.date + 1000 - sentAt);
      if (high - low < 2 * rtt + 20) break;
    }
  } catch (error) {
    signal.throwIfAborted();
    return failure("clock", error);
  }
  if (low > high) [low, high] = [high, low];
  const offset = (low + high) / 2;
  const within = Math.max(1, (high - low) / 2);
  // ms: how far this host's clock is ahead of the server's.
  const skew = -offset;
  const amount = `${(Math.abs(skew) / 1000).toFixed(3)} s`;
  return {
    name: "clock",
    status: Math.abs(skew) - within > 1_000 ? "warn" : "ok",
    detail: `${
      Math.abs(skew) <= within
        ? "this host's clock agrees with the server's"
        : `this host's clock is ${amount} ${
          skew > 0 ? "ahead of" : "behind"
        } the server's`
    } (±${(within / 1000).toFixed(3)} s, from the HTTP Date header of ${
      host(endpoint)
    }); etcd's leases run on the server's clock`,
    ms: Math.round(skew),
  };
}

async function cluster(
  ops: EtcdOps,
  signal: AbortSignal,
): Promise<CheckResult> {
  try {
    const [status, members] = await Promise.all([
      ops.status(signal),
      ops.members(signal),
    ]);
    const leader = members.find((m) => m.id === status.leader);
    const count = `${members.length} member${members.length === 1 ? "" : "s"}`;
    if (status.leader === "0") {
      return {
        name: "cluster",
        status: "fail",
        detail: `${count}, no leader: the cluster has no quorum`,
      };
    }
    if (status.errors.length > 0) {
      return {
        name: "cluster",
        status: "fail",
        detail: `${count}; the server reports: ${status.errors.join(", ")}`,
      };
    }
    return {
      name: "cluster",
      status: "ok",
      detail: `${count}, leader ${
        leader?.name || status.leader
      } (as the answering member sees it)`,
    };
  } catch (error) {
    signal.throwIfAborted();
    return failure("cluster", error);
  }
}
