/**
 * What the fleet prints: the compact table (backend × fault), the overlaps
 * with the history lines that show them, and the README's table in
 * Markdown.
 *
 * @module
 */

import type { BackendReport, CheckReport, Overlap, Tally } from "./checker.ts";
import { NO_FAULT } from "./checker.ts";
import type { HistoryEvent } from "./history.ts";

const seconds = (ms: number) => `${(ms / 1_000).toFixed(1)} s`;

function exits(tally: Tally): string {
  return Object.entries(tally.exitCodes)
    .sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true }))
    .map(([code, n]) => `${code}:${n}`)
    .join(" ");
}

function pad(cells: string[][]): string {
  const widths = cells[0].map((_, i) =>
    Math.max(...cells.map((row) => row[i].length))
  );
  return cells.map((row) =>
    row.map((cell, i) =>
      i === 0 || i === 1 || i === row.length - 1
        ? cell.padEnd(widths[i])
        : cell.padStart(widths[i])
    ).join("  ").trimEnd()
  ).join("\n");
}

function row(backend: string, fault: string, t: Tally): string[] {
  return [
    backend,
    fault,
    fault === NO_FAULT ? "-" : String(t.faults),
    String(t.ticks),
    String(t.ran),
    String(t.overlaps),
    String(t.possibleOverlaps),
    String(t.tokensOutOfOrder),
    String(t.lost),
    seconds(t.unavailableMaxMs),
    seconds(t.unavailableTotalMs),
    exits(t),
  ];
}

/** The compact table: one line per backend and fault, then its total. */
export function formatTable(report: CheckReport): string {
  const cells = [[
    "backend",
    "fault",
    "n",
    "ticks",
    "ran",
    "overlaps",
    "possible",
    "tokens",
    "lost",
    "unavail max",
    "total",
    "exit codes (3: held elsewhere)",
  ]];
  for (const backend of report.backends) {
    const faults = Object.keys(backend.byFault)
      .sort((a, b) =>
        a === NO_FAULT ? -1 : b === NO_FAULT ? 1 : a.localeCompare(b)
      );
    faults.forEach((fault, i) =>
      cells.push(
        row(i === 0 ? backend.backend : "", fault, backend.byFault[fault]),
      )
    );
    cells.push(row("", "(all)", backend.total));
  }
  return pad(cells);
}

function describe(o: Overlap): string {
  const end = (j: Overlap["first"]) =>
    j.how === "gone"
      ? `alive at ${j.endLow}, gone by ${j.endHigh}`
      : j.how === "open"
      ? "end unknown"
      : `ended ${j.endLow}${j.how === "term" ? " (SIGTERM)" : ""}`;
  return `${o.first.node} (tick ${o.first.tick}, token ${o.first.token}) ran ` +
    `${o.first.start}…, ${
      end(o.first)
    }; ${o.second.node} (tick ${o.second.tick}, ` +
    `token ${o.second.token}) started ${o.second.start}` +
    (o.ms > 0 ? `: ${o.ms} ms together` : "") +
    ` [fault: ${o.fault}${o.known ? ", a limit the README states" : ""}]`;
}

/** The history lines of an overlap's two jobs and ticks, and the faults near it. */
function excerpt(events: readonly HistoryEvent[], o: Overlap): string[] {
  const ticks = new Set([o.first.tick, o.second.tick]);
  const from = o.first.start - 5_000, to = o.second.start + 5_000;
  return events.filter((e) =>
    e.b === o.first.backend && (
      ("tick" in e && ticks.has(e.tick)) ||
      (e.ev === "fault" && e.ms >= from && e.ms <= to)
    )
  ).map((e) => "    " + JSON.stringify(e));
}

/** Every overlap and token disorder, with the lines that show them. */
export function formatFindings(
  report: CheckReport,
  events: readonly HistoryEvent[],
  most = 5,
): string {
  const lines: string[] = [];
  for (const backend of report.backends) {
    for (const o of backend.overlaps.slice(0, most)) {
      lines.push(`OVERLAP on ${backend.backend}: ${describe(o)}`);
      lines.push(...excerpt(events, o));
    }
    if (backend.overlaps.length > most) {
      lines.push(
        `… and ${
          backend.overlaps.length - most
        } more overlaps on ${backend.backend}`,
      );
    }
    for (const o of backend.possibleOverlaps.slice(0, most)) {
      lines.push(`possible overlap on ${backend.backend}: ${describe(o)}`);
    }
    for (const d of backend.disorders.slice(0, most)) {
      lines.push(
        `token out of order on ${backend.backend}: ${d.job.node} got ${d.job.token} ` +
          `at ${d.job.start}, after ${d.previous.node}'s ${d.previous.token} at ` +
          `${d.previous.start} [fault: ${d.fault}${
            d.known ? ", a limit the README states" : ""
          }]`,
      );
    }
    if (backend.unfinished > 0) {
      lines.push(
        `${backend.backend}: ${backend.unfinished} jobs whose end the history never tells`,
      );
    }
  }
  return lines.join("\n");
}

function faultList(backend: BackendReport): string {
  return Object.entries(backend.byFault)
    .filter(([fault]) => fault !== NO_FAULT)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([fault, t]) => `${fault} ${t.faults}`)
    .join(", ");
}

/** The README's table: one line per backend. */
export function formatMarkdown(report: CheckReport): string {
  const lines = [
    "| backend | faults (how many of each) | ticks | jobs ran | overlaps | tokens out of order | lost (75) | worst unavailability |",
    "| ------- | ------------------------- | ----: | -------: | -------: | ------------------: | --------: | -------------------: |",
  ];
  for (const b of report.backends) {
    const t = b.total;
    lines.push(
      `| ${b.backend} | ${
        faultList(b)
      } | ${t.ticks} | ${t.ran} | ${t.overlaps} | ` +
        `${t.tokensOutOfOrder} | ${t.lost} | ${seconds(t.unavailableMaxMs)} |`,
    );
  }
  return lines.join("\n");
}
