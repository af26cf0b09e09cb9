/**
 * The benchmark's one table, and the goals of issue 14 judged against it.
 * Ratios are to the empty `deno run` of the same run, never to a figure
 * from elsewhere: the machine's speed moves from run to run.
 *
 * @module
 */

import { mb, ms, spread, type Summary } from "./stats.ts";

/** Everything measured for one subject. */
export interface Row {
  readonly label: string;
  readonly backend?: string;
  readonly wall?: Summary;
  /** Peak RSS, median of the runs, in MB. */
  readonly rss?: Summary;
  readonly handoff?: Summary;
  readonly holderExit?: Summary;
  readonly handoffLimit3?: Summary;
  /** Why the row has no figures (not installed, failed). */
  readonly note?: string;
}

const HEADER = [
  "",
  "wall median",
  "wall p90",
  "× empty deno run",
  "peak RSS",
  "handoff median / p90",
  "holder exit median / p90",
  "handoff --limit 3 median / p90",
];

/** The Markdown table; `floor` is the empty `deno run`'s median wall time. */
export function table(rows: readonly Row[], floor: number): string {
  const lines = [
    `| ${HEADER.join(" | ")} |`,
    `| ${HEADER.map(() => "---").join(" | ")} |`,
  ];
  for (const row of rows) {
    const cells = row.note !== undefined && !row.wall
      ? [row.label, row.note, "", "", "", "", "", ""]
      : [
        row.label,
        ms(row.wall?.median ?? NaN),
        ms(row.wall?.p90 ?? NaN),
        row.wall ? `${(row.wall.median / floor).toFixed(2)}×` : "–",
        mb(row.rss?.median ?? NaN),
        spread(row.handoff),
        spread(row.holderExit),
        spread(row.handoffLimit3) + (row.note ? ` (${row.note})` : ""),
      ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

interface Check {
  readonly goal: string;
  readonly what: string;
  readonly value: number;
  readonly limit: number;
  readonly unit: string;
  /** `<` rather than `≤`. */
  readonly strict?: boolean;
}

const HANDOFF_10MS = [
  "file",
  "redis",
  "etcd",
  "etcd3",
  "zookeeper",
  "postgres",
  "mysql",
];

function checks(rows: readonly Row[], floor: number): Check[] {
  const found: Check[] = [];
  for (const row of rows) {
    const name = row.backend;
    if (name === undefined || !row.wall) continue;
    const ratio = row.wall.median / floor;
    const rss = row.rss?.median ?? NaN;
    if (name === "file" || name === "etcd") {
      found.push(
        {
          goal: "1",
          what: `${name} wall`,
          value: ratio,
          limit: 2.5,
          unit: "×",
        },
        { goal: "1", what: `${name} RSS`, value: rss, limit: 40, unit: " MB" },
      );
    }
    found.push({
      goal: "2",
      what: `${name} RSS`,
      value: rss,
      limit: 60,
      unit: " MB",
      strict: true,
    });
    if (name !== "etcd3") {
      found.push({
        goal: "2",
        what: `${name} wall`,
        value: ratio,
        limit: 4,
        unit: "×",
      });
    }
    if (row.handoff && (HANDOFF_10MS.includes(name) || name === "memcached")) {
      found.push({
        goal: "3",
        what: `${name} handoff`,
        value: row.handoff.median,
        limit: name === "memcached" ? 60 : 10,
        unit: " ms",
      });
    }
    if (row.holderExit) {
      found.push({
        goal: "4",
        what: `${name} holder exit`,
        value: row.holderExit.median,
        limit: 5,
        unit: " ms",
      });
    }
  }
  return found;
}

const GOALS: Record<string, string> = {
  "1": "file and etcd: wall ≤ 2.5× an empty deno run, peak RSS ≤ 40 MB",
  "2": "every backend: peak RSS < 60 MB, wall ≤ 4× (etcd3 aside)",
  "3": "handoff median ≤ 10 ms (memcached ≤ 60 ms)",
  "4": "the holder exits ≤ 5 ms after its job ends (no guard time left)",
};

/** One line per goal: met, or which figures miss it and by how much. */
export function verdicts(rows: readonly Row[], floor: number): string {
  const all = checks(rows, floor);
  const lines: string[] = [];
  for (const [goal, text] of Object.entries(GOALS)) {
    const mine = all.filter((check) => check.goal === goal);
    const misses = mine.filter((check) =>
      !(check.strict ? check.value < check.limit : check.value <= check.limit)
    );
    const shown = (check: Check) =>
      `${check.what} ${
        check.value.toFixed(check.unit === "×" ? 2 : 1)
      }${check.unit}`;
    const status = mine.length === 0
      ? "not measured"
      : misses.length === 0
      ? "met"
      : `missed by ${misses.map(shown).join(", ")}`;
    lines.push(`- Goal ${goal} (${text}): ${status}`);
  }
  return lines.join("\n");
}
