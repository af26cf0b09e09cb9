/**
 * `check` on the ZooKeeper backend: the round trip and the session timeout
 * the server granted, the credentials, a probe node under the root (create,
 * write, delete), each server's version and mode, and the clock skew
 * against the mtime of the probe's write.
 *
 * The version comes from the `srvr` four-letter word over plain TCP, which
 * ZooKeeper 3.5+ answers whatever `4lw.commands.whitelist` says: the session
 * handshake carries no version.
 *
 * @module
 */

import type { CheckResult } from "../../src/backend.ts";
import { codeOf, msOf, NO_AUTH } from "./client.ts";
import type { ZkSession } from "./session.ts";
import type { ZooKeeperTarget } from "./uri.ts";

const FOUR_LETTER_MS = 2_000;

/** The `srvr` four-letter word's answer from one server, or why not. */
async function srvr(
  host: string,
  port: number,
  signal: AbortSignal,
): Promise<{ version?: string; mode?: string; why?: string }> {
  const stop = AbortSignal.any([signal, AbortSignal.timeout(FOUR_LETTER_MS)]);
  let conn: Deno.TcpConn | undefined;
  const onAbort = () => conn?.close();
  stop.addEventListener("abort", onAbort, { once: true });
  try {
    conn = await Deno.connect({ hostname: host, port, signal: stop });
    await conn.write(new TextEncoder().encode("srvr"));
    let text = "";
    const buffer = new Uint8Array(4096);
    for (let read; (read = await conn.read(buffer)) !== null;) {
      text += new TextDecoder().decode(buffer.subarray(0, read));
      if (text.length > 65_536) break;
    }
    const version = /Zookeeper version: ([0-9][^\s,-]*)/.exec(text)?.[1];
    const mode = /Mode: (\S+)/.exec(text)?.[1];
    if (version) return { version, mode };
    return {
      why: /whitelist/.test(text)
        ? "srvr is not in its 4lw.commands.whitelist"
        : "it gave no version to srvr",
    };
  } catch (error) {
    signal.throwIfAborted();
    return {
      why: stop.aborted
        ? `no answer to srvr within ${FOUR_LETTER_MS / 1000} s`
        : (error as Error).message,
    };
  } finally {
    stop.removeEventListener("abort", onAbort);
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

const failure = (name: string, why: string): CheckResult => ({
  name,
  status: "fail",
  detail: why.replace(/\s+/g, " "),
});

/**
 * `check` on an open session: reachable, credentials, permissions, version
 * and clock.
 */
export async function checkZooKeeper(
  session: ZkSession,
  target: ZooKeeperTarget,
  askedMs: number,
  signal: AbortSignal,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const sentAt = performance.now();
  await session.exists("/", signal);
  const rtt = performance.now() - sentAt;
  results.push({
    name: "reachable",
    status: "ok",
    detail: `round trip ${
      rtt.toFixed(1)
    } ms; the server granted a session timeout of ${
      session.timeoutMs / 1000
    } s (asked ${askedMs / 1000} s)`,
    ms: Math.round(rtt * 100) / 100,
  });
  results.push({
    name: "credentials",
    status: "ok",
    detail: session.user === undefined
      ? "none: coolock's nodes are open to everyone (world:anyone); put user:password in the URI to keep them to one digest identity"
      : `digest identity '${session.user}' (ZooKeeper takes any digest: the nodes' ACLs decide what it may do)`,
  });
  const probe = `${target.root}/.coolock-check-${crypto.randomUUID()}`;
  let step = "create the root";
  let clock: CheckResult;
  try {
    await session.mkdirp(target.root, signal);
    step = "create a node";
    await session.create(
      probe,
      new Uint8Array(),
      session.zk.CreateMode.EPHEMERAL,
      signal,
    );
    step = "write a node";
    const before = Date.now();
    const stat = await session.setData(probe, new Uint8Array([1]), -1, signal);
    const after = Date.now();
    // ms: how far this host's clock is ahead of the server's.
    const skew = Math.round((before + after) / 2 - msOf(stat.mtime));
    const within = Math.max(1, (after - before) / 2);
    clock = {
      name: "clock",
      status: Math.abs(skew) - within > 1_000 ? "warn" : "ok",
      detail: `${
        Math.abs(skew) <= within
          ? "this host's clock agrees with the server's"
          : `this host's clock is ${(Math.abs(skew) / 1000).toFixed(3)} s ${
            skew > 0 ? "ahead of" : "behind"
          } the server's`
      } (±${
        (within / 1000).toFixed(3)
      } s, from a write's mtime); guard and lease records run on the clock of the ensemble's leader`,
      ms: skew,
    };
    step = "delete a node";
    await session.remove(probe, -1, signal);
    results.push({
      name: "permissions",
      status: "ok",
      detail: `may create, write and delete nodes under '${target.root}'`,
    });
  } catch (error) {
    signal.throwIfAborted();
    const why = codeOf((error as Error).cause) === NO_AUTH
      ? "the node's ACL does not allow it (NO_AUTH)"
      : (error as Error).message.replace(/^Backend '.*?' is unavailable: /, "");
    results.push(
      failure("permissions", `can't ${step} under '${target.root}': ${why}`),
    );
    clock ??= {
      name: "clock",
      status: "warn",
      detail:
        "unknown: the skew is read from a probe node's write, which failed",
    };
    await session.remove(probe, -1).catch(() => {});
  }
  const answers = await Promise.all(
    target.hosts.map(async ({ host, port }) => ({
      at: `${host}:${port}`,
      ...await srvr(host, port, signal),
    })),
  );
  const known = answers.filter((answer) => answer.version);
  const versions = [...new Set(known.map((answer) => answer.version))];
  const old = versions.filter((v) => {
    const [major, minor] = v!.split(".").map(Number);
    return major < 3 || (major === 3 && minor < 4);
  });
  results.push({
    name: "version",
    status: old.length > 0 ? "fail" : "ok",
    detail: known.length === 0
      ? `not reported: ${
        answers[0].why
      } (the session handshake carries no version)`
      : `ZooKeeper ${versions.join(", ")} (${
        known.map((answer) => `${answer.at} ${answer.mode ?? "?"}`).join(", ")
      })${old.length > 0 ? ": coolock needs 3.4 or later (multi)" : ""}${
        known.length < answers.length
          ? `; ${answers.length - known.length} server(s) did not say`
          : ""
      }`,
  });
  results.push(clock!);
  return results;
}
