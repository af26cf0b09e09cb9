/**
 * The fleet's checker (scripts/fleet/checker.ts) on synthetic histories:
 * each case builds the lines jobs and the harness would write and asserts
 * what the checker makes of them.
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import { check, NO_FAULT, verdict } from "../../scripts/fleet/checker.ts";
import { jobsOf } from "../../scripts/fleet/jobs.ts";
import {
  type HistoryEvent,
  parseHistory,
} from "../../scripts/fleet/history.ts";

/** A little history builder, backend `b` unless told. */
function history(b = "etcd", known: string[] = [], fences = true, limit = 1) {
  const events: HistoryEvent[] = [{
    ev: "run",
    b,
    ms: 0,
    fences,
    limit,
    ttlMs: 3_000,
    nodes: 3,
    intervalMs: 500,
    knownLimits: known,
  }];
  let pid = 1_000;
  const api = {
    events,
    /** A job that ran from `start` to `end` (an end line), via a tick. */
    job(
      node: string,
      start: number,
      end: number | { seen: number; gone: number } | null,
      token: string,
      slot = "0",
      opts: { launch?: number; code?: number; sig?: string } = {},
    ) {
      const tick = `${node}.${start}`;
      const p = pid++;
      const launch = opts.launch ?? start - 200;
      events.push({
        ev: "start",
        b,
        node,
        tick,
        ms: start,
        pid: p,
        token,
        slot,
      });
      let exit = start;
      if (typeof end === "number") {
        events.push({
          ev: "end",
          b,
          node,
          tick,
          ms: end,
          pid: p,
          ...(opts.sig ? { sig: opts.sig } : {}),
        });
        exit = end + 5;
      } else if (end) {
        events.push({
          ev: "gone",
          b,
          node,
          tick,
          pid: p,
          seen: end.seen,
          ms: end.gone,
        });
        exit = end.gone;
      }
      events.push({
        ev: "tick",
        b,
        node,
        tick,
        pid: p + 50_000,
        launch,
        exit,
        code: opts.code ?? 0,
      });
      return api;
    },
    /** A tick that found the lock held (or failed) without running a job. */
    miss(
      node: string,
      launch: number,
      exit: number,
      code = 3,
      signal?: string,
    ) {
      events.push({
        ev: "tick",
        b,
        node,
        tick: `${node}.miss${launch}`,
        pid: pid++,
        launch,
        exit,
        code,
        ...(signal ? { signal } : {}),
      });
      return api;
    },
    fault(fault: string, apply: number, heal: number, id = 1) {
      events.push({
        ev: "fault",
        b,
        id,
        fault,
        phase: "apply",
        ms: apply,
        target: "m1",
      });
      events.push({
        ev: "fault",
        b,
        id,
        fault,
        phase: "heal",
        ms: heal,
        target: "m1",
      });
      return api;
    },
    stop(ms: number) {
      events.push({ ev: "stop", b, ms });
      return api;
    },
  };
  return api;
}

Deno.test("a clean handoff history has no overlap, tokens in order, every job counted", () => {
  const h = history()
    .job("n1", 1_000, 2_000, "10")
    .miss("n2", 1_500, 1_800)
    .job("n2", 2_300, 3_000, "11")
    .job("n3", 3_400, 4_000, "15")
    .stop(4_500);
  const report = check(h.events);
  const etcd = report.backends[0];
  assertEquals(etcd.backend, "etcd");
  assertEquals(etcd.overlaps.length, 0);
  assertEquals(etcd.total.ran, 3);
  assertEquals(etcd.total.ticks, 4);
  assertEquals(etcd.total.exitCodes, { "0": 3, "3": 1 });
  assertEquals(etcd.total.tokensOutOfOrder, 0);
  assertEquals(verdict(report), 0);
});

Deno.test("a job that starts before another's end line is an overlap, in the fault's window", () => {
  const h = history()
    .job("n1", 1_000, 2_000, "10")
    .fault("kill-leader", 5_000, 8_000)
    .job("n1", 6_000, 9_000, "11")
    .job("n2", 8_500, 9_500, "12")
    .stop(10_000);
  const report = check(h.events);
  const etcd = report.backends[0];
  assertEquals(etcd.overlaps.length, 1);
  const [overlap] = etcd.overlaps;
  assertEquals(overlap.first.node, "n1");
  assertEquals(overlap.second.node, "n2");
  assertEquals(overlap.fault, "kill-leader");
  assertEquals(overlap.ms, 500);
  assertEquals(overlap.known, false);
  assertEquals(etcd.byFault["kill-leader"].overlaps, 1);
  assertEquals(etcd.byFault["kill-leader"].faults, 1);
  assertEquals(etcd.byFault[NO_FAULT].overlaps, 0);
  assertEquals(report.unexpectedOverlaps, 1);
  assertEquals(verdict(report), 1);
});

Deno.test("jobs that only touch (one's end = the next's start) don't overlap", () => {
  const h = history().job("n1", 1_000, 2_000, "1").job("n2", 2_000, 3_000, "2");
  assertEquals(check(h.events).overlaps, 0);
});

Deno.test("a SIGKILLed job: overlap before it was last seen, only possible after", () => {
  const sure = history()
    .job("n1", 1_000, { seen: 4_000, gone: 4_050 }, "1")
    .job("n2", 3_990, 5_000, "2");
  const r1 = check(sure.events).backends[0];
  assertEquals(r1.overlaps.length, 1);
  assertEquals(r1.overlaps[0].ms, 10);
  assertEquals(r1.possibleOverlaps.length, 0);

  const unsure = history()
    .job("n1", 1_000, { seen: 4_000, gone: 4_050 }, "1")
    .job("n2", 4_020, 5_000, "2");
  const r2 = check(unsure.events);
  assertEquals(r2.backends[0].overlaps.length, 0);
  assertEquals(r2.backends[0].possibleOverlaps.length, 1);
  assertEquals(r2.backends[0].total.possibleOverlaps, 1);
  // A possible overlap is reported, but doesn't fail the run.
  assertEquals(verdict(r2), 0);

  const after = history()
    .job("n1", 1_000, { seen: 4_000, gone: 4_050 }, "1")
    .job("n2", 4_050, 5_000, "2");
  assertEquals(check(after.events).backends[0].possibleOverlaps.length, 0);
});

Deno.test("an overlap under a fault the README admits is counted, marked known, exit 2", () => {
  const h = history("redis", ["kill-primary"])
    .fault("kill-primary", 1_000, 3_000)
    .job("n1", 500, 5_000, "7")
    .job("n2", 3_500, 4_000, "7");
  const report = check(h.events);
  const redis = report.backends[0];
  assertEquals(redis.overlaps.length, 1);
  assertEquals(redis.overlaps[0].known, true);
  assertEquals(redis.total.overlaps, 1);
  // The repeated token is a disorder, known too.
  assertEquals(redis.disorders.length, 1);
  assertEquals(redis.disorders[0].known, true);
  assertEquals(report.overlaps, 1);
  assertEquals(report.unexpectedOverlaps, 0);
  assertEquals(verdict(report), 2);
});

Deno.test("the same overlap on another backend's history is not excused", () => {
  const known = history("redis", ["kill-primary"])
    .fault("kill-primary", 1_000, 3_000)
    .job("n1", 500, 5_000, "7")
    .job("n2", 3_500, 4_000, "8");
  const other = history("postgres")
    .fault("restart-server", 1_000, 3_000)
    .job("n1", 500, 5_000, "7")
    .job("n2", 3_500, 4_000, "8");
  const report = check([...known.events, ...other.events]);
  assertEquals(report.backends.map((b) => b.backend), ["postgres", "redis"]);
  assertEquals(report.overlaps, 2);
  assertEquals(report.unexpectedOverlaps, 1);
  assertEquals(verdict(report), 1);
});

Deno.test("tokens must rise in start order on a fencing backend, compared as big integers", () => {
  const h = history()
    .job("n1", 1_000, 1_500, "9007199254740993")
    .job("n2", 2_000, 2_500, "9007199254740992") // below: out of order
    .job("n3", 3_000, 3_500, "9007199254740994")
    .job("n1", 4_000, 4_500, "9007199254740994") // repeated: out of order
    .job("n2", 5_000, 5_500, "") // none at all
    .job("n3", 6_000, 6_500, "9007199254740995");
  const etcd = check(h.events).backends[0];
  assertEquals(etcd.total.tokensOutOfOrder, 2);
  assertEquals(etcd.disorders.map((d) => d.job.token), [
    "9007199254740992",
    "9007199254740994",
  ]);
  assertEquals(etcd.disorders[0].previous.token, "9007199254740993");
  assertEquals(etcd.total.tokensMissing, 1);
  assertEquals(etcd.overlaps.length, 0);

  const plain = history("etcd", [], false)
    .job("n1", 1_000, 1_500, "5")
    .job("n2", 2_000, 2_500, "4");
  assertEquals(check(plain.events).backends[0].total.tokensOutOfOrder, 0);
});

Deno.test("unavailability runs from the first try in a holderless stretch to the end of the last", () => {
  const h = history()
    .job("n1", 1_000, 2_000, "1", "0", { launch: 800 })
    // The lock is free from 2000; n2 tries from 2500 to 2700, n3 from 4800
    // and gets in at 5000: unavailable 2500 → 5000.
    .miss("n2", 2_500, 2_700, 69)
    .job("n3", 5_000, 6_000, "2", "0", { launch: 4_800 })
    // Free from 6000 with nobody trying until 7000; n1 gets in at 7300.
    .job("n1", 7_300, 8_000, "3", "0", { launch: 7_000 })
    .stop(8_000);
  const etcd = check(h.events).backends[0];
  // The first acquisition's 200 ms counts too (800 → 1000).
  assertEquals(etcd.total.unavailableMaxMs, 2_500);
  assertEquals(etcd.total.unavailableTotalMs, 200 + 2_500 + 300);
  assertEquals(etcd.total.exitCodes, { "0": 3, "69": 1 });
});

Deno.test("unavailability and ticks are laid at the fault in whose window they start", () => {
  const h = history()
    .job("n1", 1_000, 2_000, "1", "0", { launch: 900 })
    .fault("partition-node", 3_000, 6_000)
    .miss("n2", 3_100, 3_400, 69)
    .miss("n3", 4_000, 7_000, 75)
    .job("n2", 9_000, 9_500, "2", "0", { launch: 8_900 })
    .fault("kill-coolock", 10_000, 10_000, 2)
    .miss("n1", 10_050, 10_100, 137, "SIGKILL")
    .stop(11_000);
  const etcd = check(h.events).backends[0];
  assertEquals(etcd.byFault[NO_FAULT].ticks, 1);
  assertEquals(etcd.byFault[NO_FAULT].unavailableMaxMs, 100);
  const partition = etcd.byFault["partition-node"];
  assertEquals(partition.ticks, 3);
  assertEquals(partition.lost, 1);
  assertEquals(partition.exitCodes, { "0": 1, "69": 1, "75": 1 });
  // One holderless stretch, 2000 → 9000: from the first try (3100) to the
  // end of the last (9000), lulls between tries included.
  assertEquals(partition.unavailableMaxMs, 5_900);
  assertEquals(partition.unavailableTotalMs, 5_900);
  assertEquals(etcd.byFault["kill-coolock"].exitCodes, { SIGKILL: 1 });
  assertEquals(etcd.total.ticks, 5);
  assertEquals(etcd.total.lost, 1);
});

Deno.test("a semaphore: other slots may run together; the same slot, or one too many, may not", () => {
  const ok = history("zookeeper", [], true, 2)
    .job("n1", 1_000, 3_000, "1", "0")
    .job("n2", 1_500, 3_500, "2", "1");
  assertEquals(check(ok.events).overlaps, 0);

  const sameSlot = history("zookeeper", [], true, 2)
    .job("n1", 1_000, 3_000, "1", "0")
    .job("n2", 1_500, 3_500, "2", "0");
  assertEquals(check(sameSlot.events).overlaps, 1);

  const three = history("zookeeper", [], true, 2)
    .job("n1", 1_000, 3_000, "1", "0")
    .job("n2", 1_500, 3_500, "2", "1")
    .job("n3", 2_000, 2_500, "3", "2");
  const report = check(three.events).backends[0];
  assertEquals(report.overlaps.length, 2);
  assertEquals(report.overlaps.map((o) => o.second.node), ["n3", "n3"]);
});

Deno.test("a job's end comes from its end line (SIGTERM noted), else its gone line, else it is unfinished", () => {
  const h = history()
    .job("n1", 1_000, 2_000, "1", "0", { sig: "TERM", code: 75 })
    .job("n2", 3_000, { seen: 3_500, gone: 3_600 }, "2")
    .job("n3", 4_000, null, "3");
  const jobs = jobsOf(h.events).get("etcd")!;
  assertEquals(jobs.map((j) => j.how), ["term", "gone", "open"]);
  assertEquals(jobs[1].endLow, 3_500);
  assertEquals(jobs[1].endHigh, 3_600);
  assertEquals(jobs[2].endHigh, Infinity);
  const etcd = check(h.events).backends[0];
  assertEquals(etcd.unfinished, 1);
  assertEquals(etcd.total.lost, 1);
});

Deno.test("history lines that are not events are counted, not fatal", () => {
  const text = [
    JSON.stringify({
      ev: "start",
      b: "x",
      node: "n1",
      tick: "t",
      ms: 1,
      pid: 2,
      token: "1",
      slot: "0",
    }),
    '{"ev":"start","b":"x","node":"n2"', // torn
    "not json",
    JSON.stringify({ ev: "mystery", b: "x" }),
    "",
    JSON.stringify({ ev: "end", b: "x", node: "n1", tick: "t", ms: 5, pid: 2 }),
  ].join("\n");
  const { events, bad } = parseHistory(text);
  assertEquals(events.length, 2);
  assertEquals(bad, 3);
  // Without a header the backend is still judged, as a fencing mutex.
  const report = check(events);
  assertEquals(report.backends[0].backend, "x");
  assertEquals(report.backends[0].total.ran, 1);
  assert(report.backends[0].fences);
});
