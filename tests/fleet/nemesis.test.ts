/** The nemesis's schedule (scripts/fleet/nemesis.ts): seeded, and shaped as documented. */

import { assert, assertEquals } from "../helpers/assert.ts";
import {
  NODE_FAULTS,
  planFaults,
  random,
  seedFor,
} from "../../scripts/fleet/nemesis.ts";

const CLUSTER = ["kill-leader", "kill-member", "stop-member", "restart-member"];
const base = {
  clusterFaults: CLUSTER,
  nodeFaults: NODE_FAULTS,
  durationMs: 600_000,
  ttlMs: 3_000,
  freeWithinMs: 3_000,
};

Deno.test("the same seed gives the same schedule; another seed another", () => {
  const a = planFaults({ ...base, seed: 42 });
  const b = planFaults({ ...base, seed: 42 });
  const c = planFaults({ ...base, seed: 43 });
  assertEquals(a, b);
  assert(JSON.stringify(a) !== JSON.stringify(c), "seeds 42 and 43 agree");
  assertEquals(random(7)(), random(7)());
  assert(seedFor(1, "etcd") !== seedFor(1, "etcd3"));
});

Deno.test("a shorter phase gets a prefix of the longer one's schedule", () => {
  const long = planFaults({ ...base, seed: 9 });
  const short = planFaults({ ...base, seed: 9, durationMs: 60_000 });
  assert(short.length > 0 && short.length < long.length);
  assertEquals(short, long.slice(0, short.length));
  const capped = planFaults({ ...base, seed: 9, maxFaults: 2 });
  assertEquals(capped, long.slice(0, 2));
});

Deno.test("cluster and node faults alternate, each kind once before any repeats", () => {
  const plan = planFaults({ ...base, seed: 5 });
  const cluster = plan.filter((_, i) => i % 2 === 0).map((p) => p.fault);
  const node = plan.filter((_, i) => i % 2 === 1).map((p) => p.fault);
  assert(cluster.every((f) => CLUSTER.includes(f)));
  assert(node.every((f) => (NODE_FAULTS as readonly string[]).includes(f)));
  assertEquals(new Set(cluster.slice(0, CLUSTER.length)).size, CLUSTER.length);
  assertEquals(
    new Set(node.slice(0, NODE_FAULTS.length)).size,
    NODE_FAULTS.length,
  );
});

Deno.test("faults fit the phase, hold past the TTL where that matters, and leave the lock time to free", () => {
  for (const seed of [1, 2, 3]) {
    const plan = planFaults({
      ...base,
      seed,
      freeWithinMs: 31_000,
      durationMs: 120_000,
    });
    let previousEnd = 0;
    for (const step of plan) {
      assert(
        step.at >= previousEnd,
        `fault ${step.id} starts before the last settled`,
      );
      if (/^(stop-|partition-|kill-(leader|member|primary))/.test(step.fault)) {
        assert(step.holdMs > 3_000, `${step.fault} holds ${step.holdMs} ms`);
      }
      if (step.fault === "kill-coolock" || step.fault.startsWith("restart-")) {
        assertEquals(step.holdMs, 0);
      }
      previousEnd = step.at + step.holdMs + 31_000 + 2_000;
      assert(
        previousEnd <= 120_000 + 1_000,
        `fault ${step.id} runs past the phase`,
      );
    }
  }
  // A backend without cluster faults (file) gets node faults only.
  const file = planFaults({
    ...base,
    seed: 1,
    clusterFaults: [],
    nodeFaults: ["kill-coolock"],
  });
  assert(file.length > 1 && file.every((p) => p.fault === "kill-coolock"));
});

Deno.test("spread: a few faults share the phase's slack, still each after the last settled", () => {
  const options = { ...base, seed: 3, durationMs: 150_000, maxFaults: 4 };
  const bunched = planFaults(options);
  const spread = planFaults({ ...options, spread: true });
  assertEquals(spread.map((p) => p.fault), bunched.map((p) => p.fault));
  assertEquals(spread.map((p) => p.holdMs), bunched.map((p) => p.holdMs));
  assertEquals(spread[0].at, bunched[0].at);
  const gaps = spread.slice(1).map((p, i) => p.at - spread[i].at);
  const bunchedGaps = bunched.slice(1).map((p, i) => p.at - bunched[i].at);
  assert(
    gaps.every((gap, i) => gap > bunchedGaps[i]),
    `${gaps} vs ${bunchedGaps}`,
  );
  const last = spread[spread.length - 1];
  assert(
    last.at + last.holdMs + 3_000 + 2_000 <= 150_000,
    "the last fault can't settle",
  );
});
