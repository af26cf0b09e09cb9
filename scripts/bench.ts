/**
 * `deno task bench [--runs N] [--handoffs N] [--only file,redis,...]`: the
 * speed and memory of coolock on every backend whose server runs here, next
 * to an empty `deno run`, `flock(1)` and `etcdctl lock`, as one Markdown
 * table, followed by the goals of issue 14, met or missed. Asserts nothing:
 * timing belongs here, not in tests.
 *
 * - **wall**: one whole `coolock -g 0 -w 0 -- true` process from source,
 *   `--runs` times (default 20), median and p90. The rows take turns, one
 *   run each per round, so that a load that comes and goes on a shared
 *   machine weighs on every row alike; hence the ratio to the empty
 *   `deno run` of the same rounds.
 * - **peak RSS**: the same command under GNU time (`%M`), as many times;
 *   the median.
 * - **handoff** and **holder exit** (see bench/handoff.ts), `--handoffs`
 *   samples (default 10) each, with guard time 0; and the handoff with
 *   `--limit 3`: three holders, one waiter, one holder lets go.
 *
 * The servers are the tests' recipes (tests/helpers/servers/), started once
 * on free loopback ports and stopped at the end.
 *
 * @module
 */

import {
  available,
  startServer,
  type TestServer,
} from "../tests/helpers/servers/server.ts";
import { type HandoffSample, handoffSample } from "./bench/handoff.ts";
import { GNU_TIME, peakRss, timeRun } from "./bench/procs.ts";
import { type Row, table, verdicts } from "./bench/report.ts";
import { summarize } from "./bench/stats.ts";
import {
  installed,
  type Subject,
  SUBJECTS,
  type Tool,
} from "./bench/subjects.ts";

function flag(name: string): string | undefined {
  const index = Deno.args.indexOf(name);
  return index >= 0 ? Deno.args[index + 1] : undefined;
}
const RUNS = Number(flag("--runs") ?? 20);
const HANDOFFS = Number(flag("--handoffs") ?? 10);
const ONLY = flag("--only")?.split(",");

const log = (text: string) => console.error(`bench: ${text}`);

/** A subject that can run here, with its tool. */
interface Ready {
  readonly subject: Subject;
  readonly tool: Tool;
  readonly lock: string;
  readonly wall: number[];
  readonly rss: number[];
  failed?: string;
}

function wanted(subject: Subject): boolean {
  if (!subject.backend || !ONLY) return true;
  return ONLY.some((name) => subject.backend === name);
}

function machine(): string {
  const cpu = (() => {
    try {
      return /model name\s*:\s*(.+)/.exec(
        Deno.readTextFileSync("/proc/cpuinfo"),
      )?.[1];
    } catch {
      return undefined;
    }
  })();
  const memory = Deno.systemMemoryInfo().total / 2 ** 30;
  return `${navigator.hardwareConcurrency} × ${cpu ?? "CPU"}, ${
    memory.toFixed(0)
  } GiB, ${Deno.build.target}, Linux ${Deno.osRelease()}`;
}

const load = () => Deno.loadavg().map((value) => value.toFixed(2)).join(" ");

const scratch = await Deno.makeTempDir({ prefix: "coolock-bench-" });
await Deno.writeTextFile(`${scratch}/empty.ts`, "");
const servers = new Map<string, TestServer>();
const rows = new Map<Subject, Row>();
const ready: Ready[] = [];
const loadBefore = load();
const started = new Date();

try {
  for (const subject of SUBJECTS.filter(wanted)) {
    if (!installed(subject)) {
      rows.set(subject, {
        label: subject.label,
        note: `${subject.program} not installed`,
      });
      continue;
    }
    let server: TestServer | undefined;
    if (subject.recipe) {
      if (!available(subject.recipe)) {
        rows.set(subject, {
          label: subject.label,
          note: "server not installed",
        });
        continue;
      }
      server = servers.get(subject.recipe.kind);
      if (!server) {
        log(`starting ${subject.recipe.kind}`);
        server = await startServer(subject.recipe);
        servers.set(subject.recipe.kind, server);
      }
    }
    const lock = `bench-${subject.backend ?? subject.label.split(" ")[0]}`;
    ready.push({
      subject,
      tool: subject.tool(server, scratch),
      lock,
      wall: [],
      rss: [],
    });
  }

  // One warm-up run each: Deno's caches, the servers' first connections.
  for (const each of ready) {
    await timeRun(each.tool.once(each.lock)).catch((error) =>
      each.failed = (error as Error).message
    );
  }
  for (let round = 1; round <= RUNS; round++) {
    log(`wall and RSS, round ${round} of ${RUNS} (load ${load()})`);
    for (const each of ready) {
      if (each.failed) continue;
      try {
        each.wall.push(await timeRun(each.tool.once(each.lock)));
        each.rss.push(await peakRss(each.tool.once(each.lock), scratch));
      } catch (error) {
        each.failed = (error as Error).message;
      }
    }
  }

  for (const each of ready) {
    const { subject, tool } = each;
    const samples = async (limit: number) => {
      const found: HandoffSample[] = [];
      for (let i = 0; i < HANDOFFS; i++) {
        found.push(
          await handoffSample(
            tool,
            `${each.lock}-handoff-${limit}`,
            limit,
            scratch,
          ),
        );
      }
      return found;
    };
    let one: HandoffSample[] = [];
    let three: HandoffSample[] = [];
    let note = each.failed;
    if (!note && tool.locked && HANDOFFS > 0) {
      try {
        log(`handoff, ${subject.label}`);
        one = await samples(1);
        if (tool.limits) {
          log(`handoff with --limit 3, ${subject.label}`);
          three = await samples(3);
        }
      } catch (error) {
        note = `handoff failed: ${(error as Error).message}`;
      }
    }
    rows.set(subject, {
      label: subject.label,
      backend: subject.backend,
      wall: each.wall.length ? summarize(each.wall) : undefined,
      rss: each.rss.some(Number.isFinite) ? summarize(each.rss) : undefined,
      handoff: one.length
        ? summarize(one.map((sample) => sample.handoff))
        : undefined,
      holderExit: one.length
        ? summarize(one.map((sample) => sample.holderExit))
        : undefined,
      handoffLimit3: three.length
        ? summarize(three.map((sample) => sample.handoff))
        : undefined,
      note,
    });
  }
} finally {
  for (const server of servers.values()) await server.kill();
  await Deno.remove(scratch, { recursive: true }).catch(() => {});
}

const ordered = SUBJECTS.flatMap((subject) => rows.get(subject) ?? []);
const floor = ordered.find((row) => !row.backend && row.wall)?.wall?.median ??
  NaN;
console.log(
  [
    `${
      started.toISOString().slice(0, 10)
    }, Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${machine()}`,
    `${RUNS} runs per row for wall and RSS, rows taking turns; ${HANDOFFS} handoff samples per row; load average ${loadBefore} before, ${load()} after`,
    GNU_TIME ? "" : "(GNU time is not installed: no peak RSS)",
    table(ordered, floor),
    "",
    verdicts(ordered, floor),
  ].filter((line, i) => i !== 2 || line).join("\n"),
);
