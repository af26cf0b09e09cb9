/** The fleet's flags (scripts/fleet/flags.ts): sizes, lists, and one line for each mistake. */

import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { BACKENDS } from "../../scripts/fleet/clusters.ts";
import {
  type FleetConfig,
  parseFlags,
  UsageError,
} from "../../scripts/fleet/flags.ts";

const config = (args: string[]) => parseFlags(args) as FleetConfig;

Deno.test("--short: every backend, 3 nodes, a cadence within the launch budget, no fixed length", () => {
  const short = config(["--short", "--seed", "5"]);
  assertEquals(short.backends, [...BACKENDS]);
  assertEquals(short.nodes, 3);
  assertEquals(short.phaseMs, undefined);
  // 9 backends × 3 nodes at 6 launches a second.
  assertEquals(short.intervalMs, 4_500);
  assertEquals(short.seed, 5);
});

Deno.test("a long run of one backend: 10 minutes, 5 nodes, the given cadence", () => {
  const long = config(["--minutes", "10", "--backend", "etcd"]);
  assertEquals(long.backends, ["etcd"]);
  assertEquals(long.phaseMs, 600_000);
  assertEquals(long.nodes, 5);
  assertEquals(long.intervalMs, 834);
  assertEquals(
    config(["--backend", "etcd", "--interval-ms", "300"]).intervalMs,
    300,
  );
  assertEquals(config(["--backend", "etcd", "--nodes", "2"]).intervalMs, 500);
});

Deno.test("--backend is repeatable and takes comma lists, without duplicates", () => {
  assertEquals(
    config([
      "--backend",
      "redis,etcd",
      "--backend",
      "etcd",
      "--backend",
      "file",
    ]).backends,
    ["redis", "etcd", "file"],
  );
});

Deno.test("bad flags are a UsageError naming the flag", () => {
  for (
    const [args, pattern] of [
      [["--backend", "mongodb"], /--backend 'mongodb'/],
      [["--minutes", "0"], /--minutes/],
      [["--nodes", "x"], /--nodes/],
      [["--seed", "1.5"], /--seed/],
      [["--short", "--minutes", "2"], /--short/],
      [["--what"], /what/],
      [["stray"], /stray|positional/i],
    ] as const
  ) {
    const error = assertThrows(() => parseFlags([...args]), UsageError);
    assertEquals(
      pattern.test(error.message),
      true,
      `${args}: ${error.message}`,
    );
  }
  assertEquals(parseFlags(["--help"]), "help");
});
