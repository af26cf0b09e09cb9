/**
 * `deno task bench [--runs N] [--only file,redis,...]`: for each backend whose
 * server runs here, the wall time of a whole `coolock ... -- true` process
 * (median and p90), next to the runtime's floor (`deno run` of an empty
 * script) and `flock -n`; the handoff latency in wait mode; and the peak RSS
 * of coolock while it holds a lock. Prints a Markdown table; asserts nothing.
 *
 * @module
 */

import { openBackend } from "../backends/mod.ts";
import { acquire } from "../src/lease.ts";
import {
  available,
  type ServerRecipe,
  startServer,
  type TestServer,
} from "../tests/helpers/servers/server.ts";
import { redisServer } from "../tests/helpers/servers/redis.ts";
import { memcachedServer } from "../tests/helpers/servers/memcached.ts";
import { etcdServer } from "../tests/helpers/servers/etcd.ts";
import { zookeeperServer } from "../tests/helpers/servers/zookeeper.ts";
import {
  POSTGRES_DATABASE,
  POSTGRES_PASSWORD,
  POSTGRES_USER,
  postgresServer,
} from "../tests/helpers/servers/postgres.ts";
import {
  MARIADB_DATABASE,
  MARIADB_PASSWORD,
  MARIADB_USER,
  mariadbServer,
} from "../tests/helpers/servers/mariadb.ts";
import { consulFakeServer } from "../tests/helpers/servers/consul_fake.ts";

interface Subject {
  readonly name: string;
  readonly recipe?: ServerRecipe;
  uri(server: TestServer | undefined, dir: string): string;
}

const at = (server: TestServer | undefined) => `127.0.0.1:${server!.port}`;
const SUBJECTS: readonly Subject[] = [
  { name: "file", uri: (_, dir) => `file://${dir}/locks` },
  { name: "redis", recipe: redisServer, uri: (s) => `redis://${at(s)}` },
  {
    name: "memcached",
    recipe: memcachedServer,
    uri: (s) => `memcached://${at(s)}`,
  },
  { name: "etcd", recipe: etcdServer, uri: (s) => `etcd://${at(s)}` },
  { name: "etcd3", recipe: etcdServer, uri: (s) => `etcd3://${at(s)}` },
  {
    name: "zookeeper",
    recipe: zookeeperServer,
    uri: (s) => `zookeeper://${at(s)}`,
  },
  {
    name: "postgres",
    recipe: postgresServer,
    uri: (s) =>
      `postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${
        at(s)
      }/${POSTGRES_DATABASE}`,
  },
  {
    name: "mysql",
    recipe: mariadbServer,
    uri: (s) =>
      `mysql://${MARIADB_USER}:${MARIADB_PASSWORD}@${
        at(s)
      }/${MARIADB_DATABASE}`,
  },
  {
    name: "consul (fake)",
    recipe: consulFakeServer,
    uri: (s) => `consul://${at(s)}`,
  },
];

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const DENO = Deno.execPath();

function flagValue(name: string): string | undefined {
  const index = Deno.args.indexOf(name);
  return index >= 0 ? Deno.args[index + 1] : undefined;
}
const RUNS = Number(flagValue("--runs") ?? 15);
const ONLY = flagValue("--only")?.split(",");

function quantile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function timeCommand(argv: string[], runs = RUNS): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdout: "null",
      stderr: "piped",
    })
      .output();
    samples.push(performance.now() - started);
    if (!out.success) {
      throw new Error(
        `'${argv.join(" ")}' failed: ${new TextDecoder().decode(out.stderr)}`,
      );
    }
  }
  return samples;
}

function cli(uri: string, lock: string, ...command: string[]): string[] {
  return [
    DENO,
    "run",
    "--allow-all",
    "--quiet",
    CLI,
    "--backend",
    uri,
    "--lock",
    lock,
    "--guard-time",
    "0",
    "--log-file",
    "/dev/null",
    "--",
    ...command,
  ];
}

async function handoff(
  uri: string,
  lock: string,
  runs = 10,
): Promise<number[]> {
  await using holderSide = openBackend(uri);
  await using waiterSide = openBackend(uri);
  const options = { lock, guardTime: 0, ttl: 10, node: "bench" };
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const held = await acquire({ ...options, backend: holderSide });
    const waiting = acquire({
      ...options,
      backend: waiterSide,
      waitTimeout: 30,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await held.release();
    const releasedAt = performance.now();
    const next = await waiting;
    samples.push(performance.now() - releasedAt);
    await next.release();
  }
  return samples;
}

async function peakRss(uri: string, lock: string): Promise<number> {
  const [cmd, ...args] = cli(uri, lock, "sleep", "2");
  const child = new Deno.Command(cmd, { args, stdout: "null", stderr: "null" })
    .spawn();
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const status = await Deno.readTextFile(`/proc/${child.pid}/status`).catch(
    () => "",
  );
  await child.status;
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

const ms = (value: number) => `${value.toFixed(1)} ms`;
const dir = await Deno.makeTempDir({ prefix: "coolock-bench-" });
const empty = `${dir}/empty.ts`;
await Deno.writeTextFile(empty, "");
const rows: string[][] = [];

const floor = await timeCommand([DENO, "run", "--quiet", empty]);
rows.push([
  "deno run (empty script)",
  ms(quantile(floor, 0.5)),
  ms(quantile(floor, 0.9)),
  "",
  "",
]);
try {
  const flock = await timeCommand(["flock", "-n", `${dir}/flock`, "true"]);
  rows.push([
    "flock -n … true",
    ms(quantile(flock, 0.5)),
    ms(quantile(flock, 0.9)),
    "",
    "",
  ]);
} catch {
  rows.push(["flock -n … true", "not installed", "", "", ""]);
}

for (const subject of SUBJECTS) {
  if (ONLY && !ONLY.some((name) => subject.name.startsWith(name))) continue;
  if (subject.recipe && !available(subject.recipe)) {
    rows.push([subject.name, "server not installed", "", "", ""]);
    continue;
  }
  const server = subject.recipe ? await startServer(subject.recipe) : undefined;
  try {
    const uri = subject.uri(server, dir);
    const lock = `bench-${subject.name.split(" ")[0]}`;
    const runs = await timeCommand(cli(uri, lock, "true"));
    const handoffs = await handoff(uri, `${lock}-handoff`);
    const rss = await peakRss(uri, `${lock}-rss`);
    rows.push([
      `coolock, ${subject.name}`,
      ms(quantile(runs, 0.5)),
      ms(quantile(runs, 0.9)),
      `${ms(quantile(handoffs, 0.5))} / ${ms(quantile(handoffs, 0.9))}`,
      `${rss.toFixed(0)} MiB`,
    ]);
  } catch (error) {
    rows.push([
      subject.name,
      `failed: ${(error as Error).message.split("\n")[0]}`,
      "",
      "",
      "",
    ]);
  } finally {
    await server?.kill();
  }
}

const header = [
  "",
  "wall median",
  "wall p90",
  "handoff median / p90",
  "peak RSS holding",
];
console.log(
  `Runs: ${RUNS} per command, on ${Deno.build.target}, Deno ${Deno.version.deno}\n`,
);
console.log(`| ${header.join(" | ")} |`);
console.log(`| ${header.map(() => "---").join(" | ")} |`);
for (const row of rows) console.log(`| ${row.join(" | ")} |`);
await Deno.remove(dir, { recursive: true });
