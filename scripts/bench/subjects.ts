/**
 * What the benchmark measures: coolock on each backend whose server can run
 * here, and the yardsticks beside it (an empty `deno run`, `flock(1)`, and
 * `etcdctl lock` when etcdctl is installed). Each subject says how to run
 * one whole `-g 0 -w 0 -- true` process, and, for the handoff, how to run a
 * job under the lock and how to tell that a waiter waits.
 *
 * coolock runs from source, with the permissions of `cli.ts`'s shebang
 * line: the way `./cli.ts` and `deno task start` run it, and what the
 * compiled binary is given (scoped flags, never `--allow-all`).
 *
 * @module
 */

import type {
  ServerRecipe,
  TestServer,
} from "../../tests/helpers/servers/server.ts";
import { redisServer } from "../../tests/helpers/servers/redis.ts";
import { memcachedServer } from "../../tests/helpers/servers/memcached.ts";
import { etcdServer } from "../../tests/helpers/servers/etcd.ts";
import { zookeeperServer } from "../../tests/helpers/servers/zookeeper.ts";
import {
  POSTGRES_DATABASE,
  POSTGRES_PASSWORD,
  POSTGRES_USER,
  postgresServer,
} from "../../tests/helpers/servers/postgres.ts";
import {
  MARIADB_DATABASE,
  MARIADB_PASSWORD,
  MARIADB_USER,
  mariadbServer,
} from "../../tests/helpers/servers/mariadb.ts";
import { consulFakeServer } from "../../tests/helpers/servers/consul_fake.ts";
import { onPath, type Proc } from "./procs.ts";

/** A lock tool as the benchmark drives it. */
export interface Tool {
  /** One whole run that takes `lock`, runs `true` and gives it back. */
  once(lock: string): string[];
  /** Runs `job` under `lock` (a semaphore of `limit`), waiting for it; undefined: no handoff. */
  locked?(lock: string, job: readonly string[], limit: number): string[];
  /** Whether `locked` takes a limit above 1. */
  readonly limits?: boolean;
  /** Resolves once `waiter` (started by `locked`) waits for the lock. */
  waiting?(waiter: Proc, signal: AbortSignal): Promise<void>;
}

/** One row of the table. */
export interface Subject {
  /** The row's label. */
  readonly label: string;
  /** The backend, for the goals; undefined for a yardstick. */
  readonly backend?: string;
  /** The server it needs; subjects with the same recipe share one. */
  readonly recipe?: ServerRecipe;
  /** A program it needs, looked up on PATH. */
  readonly program?: string;
  tool(server: TestServer | undefined, scratch: string): Tool;
}

const DENO = Deno.execPath();
const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** The `--allow-*` flags of cli.ts's shebang line. */
export function shebangPermissions(): string[] {
  const first = Deno.readTextFileSync(CLI).split("\n", 1)[0];
  if (!first.startsWith("#!")) throw new Error(`${CLI} has no shebang line`);
  return first.split(/\s+/).filter((word) => word.startsWith("--allow-"));
}

const PERMISSIONS = shebangPermissions();

/** How long a handoff's waiter may wait, in seconds. */
const WAIT_SECONDS = 60;

function coolock(uri: string): Tool {
  const run = (lock: string, extra: readonly string[]) => [
    DENO,
    "run",
    ...PERMISSIONS,
    CLI,
    "--backend",
    uri,
    "--lock",
    lock,
    "--guard-time",
    "0",
    ...extra,
  ];
  return {
    once: (lock) => [
      ...run(lock, ["--wait-timeout", "0", "--log-file", "/dev/null"]),
      "--",
      "true",
    ],
    // Debug lines on stderr tell when the waiter waits.
    locked: (lock, job, limit) => [
      ...run(lock, [
        "--wait-timeout",
        String(WAIT_SECONDS),
        "--limit",
        String(limit),
        "--log-file",
        "-",
        "--log-level",
        "debug",
      ]),
      "--",
      ...job,
    ],
    limits: true,
    waiting: async (waiter, signal) => {
      await waiter.stderr.find(/is held; waiting/, signal);
    },
  };
}

/** Tools that say nothing while they wait: give them this long to get there. */
const QUIET_WAIT_MS = 300;

const quietly = async (_waiter: Proc, signal: AbortSignal) => {
  await new Promise((resolve) => setTimeout(resolve, QUIET_WAIT_MS));
  signal.throwIfAborted();
};

const at = (server: TestServer | undefined) => `127.0.0.1:${server!.port}`;
const backend = (
  name: string,
  uri: (server: TestServer | undefined, scratch: string) => string,
  recipe?: ServerRecipe,
): Subject => ({
  label: `coolock, ${name}`,
  backend: name.split(" ")[0],
  recipe,
  tool: (server, scratch) => coolock(uri(server, scratch)),
});

/** Every row, yardsticks first. */
export const SUBJECTS: readonly Subject[] = [
  {
    label: "deno run (empty script)",
    tool: (_, scratch) => ({
      once: () => [DENO, "run", "--quiet", `${scratch}/empty.ts`],
    }),
  },
  {
    label: "flock",
    program: "flock",
    tool: (_, scratch) => ({
      once: (lock) => ["flock", "-n", `${scratch}/${lock}.flock`, "true"],
      locked: (lock, job) => ["flock", `${scratch}/${lock}.flock`, ...job],
      waiting: quietly,
    }),
  },
  {
    label: "etcdctl lock",
    program: "etcdctl",
    recipe: etcdServer,
    tool: (server) => {
      const etcdctl = (lock: string, job: readonly string[]) => [
        "etcdctl",
        `--endpoints=http://${at(server)}`,
        "lock",
        lock,
        "--",
        ...job,
      ];
      return {
        once: (lock) => etcdctl(lock, ["true"]),
        locked: (lock, job) => etcdctl(lock, job),
        waiting: quietly,
      };
    },
  },
  backend("file", (_, scratch) => `file://${scratch}/locks`),
  backend("redis", (s) => `redis://${at(s)}`, redisServer),
  backend("memcached", (s) => `memcached://${at(s)}`, memcachedServer),
  backend("etcd", (s) => `etcd://${at(s)}`, etcdServer),
  backend("etcd3", (s) => `etcd3://${at(s)}`, etcdServer),
  backend("zookeeper", (s) => `zookeeper://${at(s)}`, zookeeperServer),
  backend(
    "postgres",
    (s) =>
      `postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${
        at(s)
      }/${POSTGRES_DATABASE}`,
    postgresServer,
  ),
  backend(
    "mysql",
    (s) =>
      `mysql://${MARIADB_USER}:${MARIADB_PASSWORD}@${
        at(s)
      }/${MARIADB_DATABASE}`,
    mariadbServer,
  ),
  backend("consul (fake)", (s) => `consul://${at(s)}`, consulFakeServer),
];

/** Whether the subject's program is installed (true when it needs none). */
export function installed(subject: Subject): boolean {
  return subject.program === undefined ||
    onPath(subject.program) !== undefined;
}
