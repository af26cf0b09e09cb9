/**
 * The fleet's pipeline on real processes: the monitor (scripts/fleet/
 * monitor.ts) sees a job's PID go, and the whole chain (node loops running
 * the real CLI, the job script, the monitor, the checker) finds overlaps
 * when there are some, and none when the lock holds.
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import { check } from "../../scripts/fleet/checker.ts";
import {
  type GoneEvent,
  HistoryTail,
  HistoryWriter,
  parseHistory,
} from "../../scripts/fleet/history.ts";
import { JobMonitor } from "../../scripts/fleet/monitor.ts";
import { FleetNode } from "../../scripts/fleet/node.ts";

Deno.test("the monitor reports a job gone (alive when last seen) and drops one that wrote its end", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/history.jsonl`;
    const history = new HistoryWriter(path);
    const monitor = new JobMonitor(new HistoryTail(path), history);
    const killed = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const ended = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const started = Date.now();
    for (const [child, tick] of [[killed, "n1.1"], [ended, "n2.1"]] as const) {
      history.append({
        ev: "start",
        b: "x",
        node: tick.slice(0, 2),
        tick,
        ms: started,
        pid: child.pid,
        token: "1",
        slot: "0",
      });
    }
    monitor.poll();
    assertEquals(monitor.holders("x").map((j) => j.tick).sort(), [
      "n1.1",
      "n2.1",
    ]);
    history.append({
      ev: "end",
      b: "x",
      node: "n2",
      tick: "n2.1",
      ms: Date.now(),
      pid: ended.pid,
    });
    killed.kill("SIGKILL");
    await killed.status;
    const dead = Date.now();
    monitor.poll();
    assertEquals(monitor.holders("x"), []);
    ended.kill("SIGKILL");
    await ended.status;
    history.close();
    const gone = parseHistory(await Deno.readTextFile(path)).events
      .filter((e): e is GoneEvent => e.ev === "gone");
    assertEquals(gone.map((g) => g.tick), ["n1.1"]);
    assert(
      gone[0].seen >= started && gone[0].seen <= dead,
      "seen alive outside its life",
    );
    assert(gone[0].ms >= dead, "gone before it died");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs two nodes on the file backend for `ms`; each node its own lock dir, or one shared. */
async function twoNodes(shared: boolean, ms: number) {
  const dir = await Deno.makeTempDir();
  await Deno.chmod(dir, 0o755);
  try {
    const path = `${dir}/history.jsonl`;
    await Deno.writeTextFile(path, "");
    const history = new HistoryWriter(path);
    const monitor = new JobMonitor(new HistoryTail(path), history);
    history.append({
      ev: "run",
      b: "file",
      ms: Date.now(),
      fences: false,
      limit: 1,
      ttlMs: 3_000,
      nodes: 2,
      intervalMs: 300,
      knownLimits: [],
    });
    const nodes = ["n1", "n2"].map((node, i) =>
      new FleetNode({
        backend: "file",
        node,
        uri: `file://${dir}/locks${shared ? "" : `-${node}`}`,
        lock: "fleet-test",
        ttlS: 3,
        killAfterS: 0.5,
        intervalMs: 300,
        phaseMs: i * 150,
        maxInFlight: 2,
        holdS: () => 0.6,
        history,
        logPath: `${dir}/${node}.log`,
        home: dir,
      })
    );
    const stopMonitor = new AbortController();
    const monitoring = monitor.run(stopMonitor.signal);
    const phase = AbortSignal.timeout(ms);
    await Promise.all(nodes.map((n) => n.loop(phase)));
    await Promise.all(nodes.map((n) => n.drain(10_000)));
    stopMonitor.abort();
    await monitoring;
    history.close();
    return check(parseHistory(await Deno.readTextFile(path)).events);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("two nodes whose locks don't exclude each other: the checker finds their overlaps", async () => {
  const report = await twoNodes(false, 6_000);
  const [file] = report.backends;
  assert(file.total.ran >= 4, `only ${file.total.ran} jobs ran`);
  assert(report.overlaps > 0, "no overlap found between unlocked nodes");
  assert(
    file.overlaps.every((o) =>
      o.first.node !== o.second.node || o.first.tick !== o.second.tick
    ),
  );
});

Deno.test("the same two nodes on one lock: jobs run, no overlap", async () => {
  const report = await twoNodes(true, 6_000);
  const [file] = report.backends;
  assert(file.total.ran >= 2, `only ${file.total.ran} jobs ran`);
  assertEquals(report.overlaps, 0);
  assertEquals(file.possibleOverlaps.length, 0);
  assert((file.total.exitCodes["3"] ?? 0) > 0, "no tick found the lock held");
});
