/**
 * No secret reaches any output, whatever characters it holds: errors,
 * `--print-config`, the log file, `status`/`check` output and the job's
 * environment, through the real CLI, for all nine schemes.
 *
 * Every secret is two markers around the character under test
 * (`Kx7Lq#Zp4Wm`), and the assertion is that **neither** marker appears:
 * a parser that splits the secret at the character (`bad port 'Kx7Lq'`)
 * leaks half of it, and a search for the whole secret would miss that.
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import { oneLine, runCli } from "../helpers/cli.ts";
import { redisServer } from "../helpers/servers/redis.ts";
import {
  ask,
  freePort,
  type ServerRecipe,
  sharedServer,
} from "../helpers/servers/server.ts";

const LEFT = "Kx7Lq";
const RIGHT = "Zp4Wm";
/** The characters of the brief: URI delimiters, '%', space, quotes, unicode. */
const CHARS = ["#", "?", "/", "@", ":", "%", " ", '"', "'", "é🔒", "&"];

/** A port with nothing behind it: connections are refused at once. */
const CLOSED = freePort();

/**
 * Where a secret goes in each scheme's URI, written as a user would, with
 * the character unencoded. `S` is the secret.
 */
const TEMPLATES: readonly string[] = [
  "file://:S@host/x",
  "file:///tmp/coolock-secrets?token=S",
  `redis://app:S@127.0.0.1:${CLOSED}/0`,
  `redis://127.0.0.1:${CLOSED}?sentinel=m&sentinel_password=S`,
  `rediss://:S@127.0.0.1:${CLOSED}`,
  `memcached://u:S@127.0.0.1:${CLOSED}`,
  `etcd://root:S@127.0.0.1:${CLOSED}`,
  `etcd3://root:S@127.0.0.1:${CLOSED}`,
  `zookeeper://u:S@127.0.0.1:${CLOSED}?session_timeout=1`,
  `postgres://u:S@127.0.0.1:${CLOSED}/db`,
  `mysql://u:S@127.0.0.1:${CLOSED}/db`,
  `consul://127.0.0.1:${CLOSED}?token=S`,
  `consul://127.0.0.1:${CLOSED}?dc=eu&acl_token=S`,
  ":S@127.0.0.1",
];

function leaks(text: string): boolean {
  return text.includes(LEFT) || text.includes(RIGHT);
}

function assertClean(what: string, ...texts: string[]): void {
  for (const text of texts) {
    assert(!leaks(text), `${what} shows part of the secret:\n${text}`);
  }
}

/** Runs `tasks` a few at a time: each is a CLI process. */
async function pool<T>(
  items: readonly T[],
  work: (item: T) => Promise<void>,
  width = 4,
): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        await work(item);
      }
    }),
  );
}

async function withTempDir(body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "coolock-secrets-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const CASES = TEMPLATES.flatMap((template) =>
  CHARS.flatMap((char) => {
    const secret = `${LEFT}${char}${RIGHT}`;
    return [
      template.replace("S", secret),
      // The same secret percent-encoded, as the user should write it.
      template.replace("S", encodeURIComponent(secret)),
    ];
  })
);

Deno.test("secrets: a run with any backend URI never shows its secret, on stderr or in the log", async () => {
  await withTempDir(async (dir) => {
    let index = 0;
    const run = async (uri: string) => {
      const log = `${dir}/run-${index++}.log`;
      const result = await runCli([
        "-b",
        uri,
        "-l",
        "secrets",
        "-g",
        "0",
        "-w",
        "0",
        "-f",
        log,
        "-v",
        "debug",
        "--",
        "true",
      ]);
      const logText = await Deno.readTextFile(log).catch(() => "");
      assertClean(
        `run with ${JSON.stringify(uri)}`,
        result.stdout,
        result.stderr,
        logText,
      );
      // Bad input or an unreachable backend, never a job without a lock.
      assert(
        [64, 69].includes(result.code),
        `${JSON.stringify(uri)}: exit ${result.code}: ${result.stderr}`,
      );
      oneLine(result.stderr);
    };
    // A ZooKeeper client waits out its connect bound (5 s) on a closed
    // port, idle: those runs get a wide pool of their own.
    const slow = CASES.filter((uri) => uri.startsWith("zookeeper:"));
    await Promise.all([
      pool(slow, run, 12),
      pool(CASES.filter((uri) => !slow.includes(uri)), run, 4),
    ]);
  });
});

Deno.test("secrets: --print-config masks the backend's secret from flags, the environment and YAML", async () => {
  await withTempDir(async (dir) => {
    // Each case through one of the three sources in turn: the masking is
    // the same whatever the source, and three runs of every case would
    // triple the processes for little.
    let index = 0;
    await pool(CASES, async (uri) => {
      const source = index++ % 3;
      const config = `${dir}/config-${index}.yaml`;
      await Deno.writeTextFile(config, `backend: ${JSON.stringify(uri)}\n`);
      const result = source === 0
        ? await runCli(["-b", uri, "--print-config"])
        : source === 1
        ? await runCli(["--print-config"], { env: { COOLOCK_BACKEND: uri } })
        : await runCli(["-c", config, "--print-config"]);
      assertClean(
        `--print-config of ${JSON.stringify(uri)} (source ${source})`,
        result.stdout,
        result.stderr,
      );
    });
    // The case: an unquoted YAML value with '#' inside.
    const config = `${dir}/plain.yaml`;
    await Deno.writeTextFile(config, `backend: redis://:${LEFT}#${RIGHT}@db\n`);
    for (const args of [["--print-config"], ["--", "true"]]) {
      const result = await runCli(["-c", config, ...args]);
      assertClean("the YAML file's backend", result.stdout, result.stderr);
    }
  });
});

/** redis-server with a password of every awkward character. */
const PASSWORD = `${LEFT}#?/@:% "'é🔒&${RIGHT}`;
const redisAuth: ServerRecipe = {
  ...redisServer,
  kind: "redis-secrets",
  command: (dir, ports) => {
    const { cmd, args } = redisServer.command(dir, ports);
    return { cmd, args: [...args, "--requirepass", PASSWORD] };
  },
  ready: async (_dir, [port]) =>
    (await ask(port, "PING\r\n")).startsWith("-NOAUTH"),
};
const server = await sharedServer(redisAuth);
const goodUri = server &&
  `redis://:${encodeURIComponent(PASSWORD)}@127.0.0.1:${server.port}`;

Deno.test({
  name:
    "secrets: the job's environment holds no COOLOCK_* setting, so no backend secret",
  ignore: !server,
  fn: async () => {
    await withTempDir(async (dir) => {
      const result = await runCli(
        [
          "-l",
          "secrets-env",
          "-g",
          "0",
          // A fresh Redis grants no lock until it has been up for the lease
          // time (the restart rule): a short TTL, and a wait, for that.
          "--ttl",
          "2",
          "--kill-after",
          "0.5",
          "-w",
          "10",
          "-f",
          `${dir}/env.log`,
          "-v",
          "debug",
          "--",
          "env",
        ],
        {
          env: {
            COOLOCK_BACKEND: goodUri!,
            COOLOCK_LOG_LEVEL: "debug",
            OTHER_VARIABLE: "kept",
          },
        },
      );
      assertEquals(result.code, 0, result.stderr);
      const env = new Map(
        result.stdout.trimEnd().split("\n").map((line) => {
          const equals = line.indexOf("=");
          return [line.slice(0, equals), line.slice(equals + 1)];
        }),
      );
      assertClean("the job's environment", result.stdout);
      assertClean(
        "the run's stderr and log",
        result.stderr,
        await Deno.readTextFile(`${dir}/env.log`),
      );
      assertEquals(
        [...env.keys()].filter((name) => name.startsWith("COOLOCK_")).sort(),
        [
          "COOLOCK_FENCING_TOKEN",
          "COOLOCK_LOCK",
          "COOLOCK_NODE",
          "COOLOCK_SLOT",
        ],
      );
      assertEquals(env.get("COOLOCK_LOCK"), "secrets-env");
      assertEquals(env.get("OTHER_VARIABLE"), "kept");
    });
  },
});

Deno.test({
  name:
    "secrets: status and check output, human and JSON, never show the password",
  ignore: !server,
  fn: async () => {
    for (
      const args of [
        ["status", "--lock", "secrets-status"],
        ["status", "--lock", "secrets-status", "--json"],
        ["check"],
        ["check", "--json"],
      ]
    ) {
      const result = await runCli([...args, "-b", goodUri!]);
      assertClean(`coolock ${args.join(" ")}`, result.stdout, result.stderr);
      assert(
        result.stdout.includes("redis://:***@127.0.0.1"),
        result.stdout + result.stderr,
      );
      // A wrong password fails the check, and still shows nothing of it.
      const wrong = `redis://:${LEFT}%23${RIGHT}@127.0.0.1:${server!.port}`;
      const refused = await runCli([...args, "-b", wrong]);
      assertClean(
        `coolock ${args.join(" ")} with a wrong password`,
        refused.stdout,
        refused.stderr,
      );
      assert(refused.code !== 0, refused.stdout + refused.stderr);
    }
  },
});

Deno.test("secrets: status and check on every scheme, unreachable or refused, never show the secret", async () => {
  const cases = TEMPLATES.flatMap((template) =>
    ["#", "é🔒"].flatMap((char) => {
      const secret = `${LEFT}${char}${RIGHT}`;
      return [
        template.replace("S", secret),
        template.replace("S", encodeURIComponent(secret)),
      ];
    })
  ).flatMap((uri) => [
    ["status", "--lock", "secrets", "-b", uri],
    ["status", "--all", "--json", "-b", uri],
    ["check", "-b", uri],
    ["check", "--json", "-b", uri],
  ]);
  const slow = cases.filter((args) => args.at(-1)!.startsWith("zookeeper:"));
  const work = async (args: string[]) => {
    const result = await runCli(args);
    assertClean(
      `coolock ${JSON.stringify(args)}`,
      result.stdout,
      result.stderr,
    );
    assert(result.code !== 0, `${JSON.stringify(args)}: exit 0`);
  };
  await Promise.all([
    pool(slow, work, 12),
    pool(cases.filter((args) => !slow.includes(args)), work, 4),
  ]);
});
