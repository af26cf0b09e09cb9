/**
 * `coolock check` on Redis: reachable (PING round trip), credentials,
 * permissions (SET, EVAL, DEL of a probe key), version, clock (`TIME`), and
 * what weakens a lock there: an eviction policy that may drop lock keys, no
 * persistence, and replication (a failover can lose a lock). Every detail is
 * one line, scrubbed of the URI's secrets by `RedisLinks.unavailable`.
 *
 * @module
 */

import type { CheckResult } from "../../src/backend.ts";
import type { RedisLinks } from "./client.ts";

const field = (text: string, name: string) =>
  new RegExp(`^${name}:(.*?)\\r?$`, "m").exec(text)?.[1];

/** One line from an error, scrubbed of secrets. */
function why(links: RedisLinks, error: unknown): string {
  const message = links.unavailable(error).message;
  return message.replace(/^Backend '.*?' is unavailable: /s, "");
}

const AUTH_ERROR = /WRONGPASS|NOAUTH|invalid password|invalid username/i;

/** Checks that the server is fit for coolock. */
export async function checkRedis(
  links: RedisLinks,
  signal: AbortSignal,
): Promise<CheckResult[]> {
  const { target } = links;
  const results: CheckResult[] = [];
  const add = (
    name: string,
    status: CheckResult["status"],
    detail: string,
    ms?: number,
  ) => results.push({ name, status, detail, ms });
  try {
    await links.run(async () => {}, signal);
  } catch (error) {
    if (signal.aborted) throw error;
    const cause = (error as Error)?.cause ?? error;
    if (cause instanceof RangeError) {
      add("reachable", "ok", `the server at ${target.address} answered`);
      add("database", "fail", cause.message);
      return results;
    }
    if (AUTH_ERROR.test(String((cause as Error)?.message))) {
      add("reachable", "ok", `the server at ${target.address} answered`);
      add("credentials", "fail", why(links, cause));
      return results;
    }
    throw error;
  }
  const started = performance.now();
  const pong = await links.run((c) => c.ping(), signal).then(
    () => undefined,
    (error) => error,
  );
  const rttMs = performance.now() - started;
  if (pong !== undefined) {
    const status = AUTH_ERROR.test(String(pong?.message)) ? "credentials" : "";
    add("reachable", "ok", `the server at ${target.address} answered`);
    add(status || "permissions", "fail", why(links, pong));
    return results;
  }
  add(
    "reachable",
    "ok",
    `round trip ${rttMs.toFixed(1)} ms to ${target.address}`,
    rttMs,
  );
  add(
    "credentials",
    "ok",
    target.secrets.length > 0
      ? `authenticated${
        (target.options.username as string | undefined)
          ? ` as user '${target.options.username}'`
          : " with a password"
      }`
      : "no credentials configured, and none needed",
  );
  // What a lock needs: SET with expiry, scripts (EVAL) and DEL.
  const probe = `coolock:check:${crypto.randomUUID()}`;
  const permitted = await links.run(async (c) => {
    await c.set(probe, "probe", "PX", 10_000, "NX");
    await c.eval("return redis.call('DEL', KEYS[1])", 1, probe);
  }, signal).then(() => undefined, (error) => error);
  add(
    "permissions",
    permitted === undefined ? "ok" : "fail",
    permitted === undefined
      ? "may SET, EVAL and DEL coolock:* keys"
      : why(links, permitted),
  );
  const info = await links.run(
    (c) => c.info("all"),
    signal,
  ).catch(() => "");
  const version = field(info, "redis_version");
  const major = Number(version?.split(".")[0]);
  add(
    "version",
    version === undefined ? "warn" : major >= 5 ? "ok" : "warn",
    version === undefined
      ? "the server refuses INFO, which coolock needs to tell a restarted server"
      : major >= 5
      ? `Redis ${version}`
      : `Redis ${version}: coolock needs Redis 5 or later`,
  );
  await checkClock(links, signal, add);
  checkEviction(info, add);
  await checkPersistence(links, info, signal, add);
  checkReplication(info, target.sentinel, add);
  return results;
}

type Add = (
  name: string,
  status: CheckResult["status"],
  detail: string,
  ms?: number,
) => void;

async function checkClock(
  links: RedisLinks,
  signal: AbortSignal,
  add: Add,
): Promise<void> {
  let before = 0;
  const [seconds, micros] = await links.run((c) => {
    before = Date.now();
    return c.time();
  }, signal);
  const after = Date.now();
  const serverMs = Number(seconds) * 1000 + Number(micros) / 1000;
  const skew = serverMs - (before + after) / 2;
  const size = Math.abs(skew);
  add(
    "clock",
    size > 1_000 ? "warn" : "ok",
    `the server's clock (TIME) is ${size.toFixed(0)} ms ${
      skew >= 0 ? "ahead of" : "behind"
    } this host's${
      size > 1_000 ? ": guard times and 'since' are off by as much" : ""
    }`,
    skew,
  );
}

function checkEviction(info: string, add: Add): void {
  const maxmemory = field(info, "maxmemory");
  const policy = field(info, "maxmemory_policy");
  if (maxmemory === undefined || policy === undefined) {
    add("eviction", "warn", "the server does not say its eviction policy");
  } else if (policy === "noeviction") {
    add("eviction", "ok", "maxmemory-policy is noeviction: no key is evicted");
  } else if (maxmemory === "0") {
    add(
      "eviction",
      "ok",
      `maxmemory is 0, so no key is evicted (maxmemory-policy ${policy} would evict lock keys once a limit is set)`,
    );
  } else {
    add(
      "eviction",
      "warn",
      `maxmemory-policy is ${policy}: Redis may evict a lock key when memory is full, and let a second holder in; use noeviction`,
    );
  }
}

async function checkPersistence(
  links: RedisLinks,
  info: string,
  signal: AbortSignal,
  add: Add,
): Promise<void> {
  const aof = field(info, "aof_enabled") === "1";
  const save = await links.run(
    (c) => c.config("GET", "save") as Promise<string[]>,
    signal,
  ).then((reply) => reply[1], () => undefined);
  const restart =
    "coolock then grants no lock until the server has been up for the lease time";
  if (aof) {
    add("persistence", "ok", `AOF is on: locks survive a restart`);
  } else if (save === undefined) {
    add(
      "persistence",
      "warn",
      `AOF is off and the RDB setting can't be read (CONFIG GET is refused): a restart may drop every lock; ${restart}`,
    );
  } else if (save.trim() === "") {
    add(
      "persistence",
      "warn",
      `neither RDB snapshots nor AOF: a restart drops every lock; ${restart}`,
    );
  } else {
    add(
      "persistence",
      "ok",
      `RDB snapshots (save ${save}): a crash loses the locks taken since the last one; ${restart}`,
    );
  }
}

function checkReplication(info: string, sentinel: boolean, add: Add): void {
  const role = field(info, "role");
  const replicas = Number(field(info, "connected_slaves") ?? 0);
  if (role === "slave") {
    add(
      "replication",
      "fail",
      "this server is a read-only replica: point coolock at the master",
    );
  } else if (sentinel || replicas > 0) {
    add(
      "replication",
      "warn",
      `${
        sentinel
          ? "a Sentinel failover"
          : `a failover to one of ${replicas} replica(s)`
      } can lose a lock: replication is asynchronous, and coolock uses one server (not Redlock)`,
    );
  } else {
    add("replication", "ok", "a single server without replicas");
  }
}
