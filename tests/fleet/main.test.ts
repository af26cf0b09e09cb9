/**
 * The fleet's command as the README prints it: its `deno task fleet` lines
 * parse, and `--check` judges a kept history with the exit status the
 * README gives (0 none, 1 an overlap it doesn't admit, 2 only admitted ones,
 * 64 bad flags).
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import { parseFlags } from "../../scripts/fleet/flags.ts";
import type { HistoryEvent } from "../../scripts/fleet/history.ts";

const MAIN = new URL("../../scripts/fleet/main.ts", import.meta.url).pathname;
const README = await Deno.readTextFile(
  new URL("../../README.md", import.meta.url),
);

async function fleet(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    code: out.code,
    stdout: decode(out.stdout),
    stderr: decode(out.stderr),
  };
}

/** A redis history with two jobs at once, under `fault`, the README's limits declared. */
function overlapping(fault: string): HistoryEvent[] {
  const b = "redis";
  return [
    {
      ev: "run",
      b,
      ms: 0,
      fences: true,
      limit: 1,
      ttlMs: 3_000,
      nodes: 2,
      intervalMs: 500,
      knownLimits: ["stop-primary"],
    },
    {
      ev: "fault",
      b,
      id: 1,
      fault,
      phase: "apply",
      ms: 500,
      target: "r1 (primary)",
    },
    {
      ev: "start",
      b,
      node: "n1",
      tick: "n1.1",
      ms: 1_000,
      pid: 10,
      token: "5",
      slot: "0",
    },
    {
      ev: "start",
      b,
      node: "n2",
      tick: "n2.1",
      ms: 1_500,
      pid: 11,
      token: "6",
      slot: "0",
    },
    { ev: "end", b, node: "n1", tick: "n1.1", ms: 2_000, pid: 10 },
    { ev: "end", b, node: "n2", tick: "n2.1", ms: 2_500, pid: 11 },
    { ev: "stop", b, ms: 3_000 },
  ];
}

Deno.test("the README's deno task fleet lines parse as printed", () => {
  const section = README.slice(README.indexOf("## Tested under faults"));
  const lines = [...section.matchAll(/^deno task fleet(.*?)(?:\s+#.*)?$/gm)]
    .map(([, rest]) => rest.trim().split(/\s+/).filter((w) => w !== ""));
  const inline = [...section.matchAll(/`deno task fleet([^`]*)`/g)]
    .map(([, rest]) => rest.trim().split(/\s+/).filter((w) => w !== ""));
  assert(lines.length >= 3, `found ${lines.length} lines`);
  for (const argv of [...lines, ...inline]) parseFlags(argv);
});

Deno.test("--check: 0 for a clean history, 1 for an overlap the README doesn't admit, 2 for an admitted one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const write = async (name: string, events: HistoryEvent[]) => {
      await Deno.writeTextFile(
        `${dir}/${name}`,
        events.map((e) => JSON.stringify(e)).join("\n") + "\n",
      );
      return `${dir}/${name}`;
    };
    const clean = overlapping("stop-primary").filter((e) =>
      !("node" in e && e.node === "n2")
    );
    const ok = await fleet(["--check", await write("clean.jsonl", clean)]);
    assertEquals(ok.code, 0, ok.stderr);
    assert(/0 overlaps/.test(ok.stdout), ok.stdout);

    const unexpected = await fleet([
      "--check",
      await write("bad.jsonl", overlapping("kill-primary")),
    ]);
    assertEquals(unexpected.code, 1, unexpected.stderr);
    assert(/OVERLAP on redis/.test(unexpected.stdout), unexpected.stdout);

    const known = await fleet([
      "--check",
      await write("known.jsonl", overlapping("stop-primary")),
      "--json",
    ]);
    assertEquals(known.code, 2, known.stderr);
    const report = JSON.parse(known.stdout).report;
    assertEquals(report.overlaps, 1);
    assertEquals(report.unexpectedOverlaps, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad flags: one line on stderr, exit 64", async () => {
  const out = await fleet(["--backend", "mongodb"]);
  assertEquals(out.code, 64);
  assertEquals(out.stderr.trim().split("\n").length, 1);
  assert(/^fleet: --backend 'mongodb'/.test(out.stderr), out.stderr);
});
