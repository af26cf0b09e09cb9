/**
 * Node failures on a Consul cluster of two agents, with the holder on one
 * agent and the contender on the other, as on a real fleet:
 *
 * - A session bound to `serfHealth` (Consul's default) is deleted the moment
 *   its node is marked critical (agent/consul/state/catalog.go
 *   ensureCheckTxn → deleteSessionTxn): a contender elsewhere gets in while
 *   the holder's job still runs. coolock's sessions have no checks and
 *   survive it.
 * - The holder's agent fails (stops, or hangs as behind a partition) while
 *   the job runs: no second job runs until the first has stopped.
 * - The holder's node leaves the catalog: that ends even a check-less
 *   session (catalog.go deleteNodeTxn), and only the lock-delay keeps the
 *   contender out, long enough for the holder to stop its job.
 */

import { consul } from "../../../backends/consul/mod.ts";
import { consulKey } from "../../../backends/consul/keys.ts";
import { acquire } from "../../../src/lease.ts";
import { assert, assertEquals } from "../../helpers/assert.ts";
import { cleanEnv, CLI_COMMAND, eventually } from "../../helpers/cli.ts";
import { consulFakeRecipe } from "../../helpers/servers/consul_fake.ts";
import { startServer, type TestServer } from "../../helpers/servers/server.ts";
import { lines, tempDir, wallMs, watchGroup } from "../../contract/common.ts";
import { startConsulFake } from "./fake/mod.ts";
import { api, failSerfHealth, request, sleep, uriOf } from "./helpers.ts";

const TTL = 2;

Deno.test("consul node failure: a health-bound session is freed when its node goes critical; coolock's check-less one is not", async () => {
  await using fake = startConsulFake({ agents: 2, sessionTtlMinMs: 1_000 });
  await using holder = consul(uriOf(fake, 0));
  await using contender = consul(uriOf(fake, 1));
  const held = await acquire({
    backend: holder,
    lock: "checked",
    ttl: TTL,
    guardTime: 0,
  });
  // What a session with Consul's defaults does: a raw one, as `consul lock`
  // would create it without -session-ttl tricks.
  const raw = await api(fake.ports[0], "PUT", "/v1/session/create", {
    Behavior: "delete",
    LockDelay: "0s",
  });
  const rawId = (raw.json as { ID: string }).ID;
  await api(
    fake.ports[0],
    "PUT",
    `/v1/kv/${consulKey("bound")}?acquire=${rawId}`,
  );
  const failed = await failSerfHealth(fake.ports[1], "node-1");
  assertEquals(failed.status, 200, failed.text);
  // The health-bound lock is free at once, for anyone on another node.
  const stolen = await contender.tryAcquire(request("bound"));
  assert(
    stolen,
    "the serfHealth-bound session was deleted with its node's health",
  );
  await stolen.release(0);
  // coolock's lock holds, renewed through the failure.
  await sleep(TTL * 1500);
  assert(!held.signal.aborted, `still held: ${held.signal.reason}`);
  assertEquals(await contender.tryAcquire(request("checked")), undefined);
  await held.release();
});

/** The stubborn job of the contract's safety races: ignores TERM, beats every 50 ms. */
function stubbornJob(dir: string): string {
  return [
    `trap '' TERM`,
    `echo "$$ $COOLOCK_FENCING_TOKEN" > ${dir}/first`,
    `( while :; do echo "$(date +%s%3N) child" >> ${dir}/beats; sleep 0.05; done ) &`,
    `while :; do echo "$(date +%s%3N) main" >> ${dir}/beats; sleep 0.05; done`,
  ].join("\n");
}

function cliArgs(port: number, lock: string): string[] {
  return [
    "--log-file",
    "-",
    "--kill-after",
    "0.5",
    "--backend",
    `consul://127.0.0.1:${port}?session-ttl-min=${TTL}`,
    "--lock",
    lock,
    "--ttl",
    String(TTL),
    "--guard-time",
    "0",
  ];
}

function cli(args: string[]) {
  return new Deno.Command(CLI_COMMAND[0], {
    args: [...CLI_COMMAND.slice(1), ...args],
    env: cleanEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * Runs a stubborn holder on agent 1 and a contender retrying every 100 ms
 * on agent 2, strikes, and checks what the contender did against the
 * first job's heartbeats and process group.
 */
async function race(
  server: TestServer,
  strike: () => Promise<void>,
  expect: { holderCode: number; contenderAfterMs?: number },
): Promise<void> {
  const lock = `node-${crypto.randomUUID().slice(0, 8)}`;
  const dir = await tempDir();
  const holder = cli([
    ...cliArgs(server.ports[0], lock),
    "--shell",
    stubbornJob(dir),
  ])
    .spawn();
  let stop = false;
  try {
    await eventually(
      async () => (await lines(`${dir}/beats`)).length >= 4,
      20_000,
      "the first job to beat",
    );
    const [pgid, firstToken] = (await Deno.readTextFile(`${dir}/first`)).trim()
      .split(" ").map(Number);
    const group = watchGroup(pgid);
    const contending = (async () => {
      while (!stop) {
        await cli([
          "--wait-timeout",
          "0",
          ...cliArgs(server.ports[1], lock),
          "--shell",
          `echo "$(date +%s%3N) $COOLOCK_FENCING_TOKEN" > ${dir}/second`,
        ]).output();
        if ((await lines(`${dir}/second`)).length > 0) return;
        await sleep(100);
      }
    })();
    await sleep(600);
    assertEquals(
      await lines(`${dir}/second`),
      [],
      "no contender while the first runs",
    );
    const struckAt = wallMs();
    await strike();
    const status = await holder.output();
    assertEquals(
      status.code,
      expect.holderCode,
      new TextDecoder().decode(status.stderr),
    );
    await group.gone(5_000);
    await eventually(
      async () => (await lines(`${dir}/second`)).length > 0,
      2 * TTL * 1000 + TTL * 1000 + 15_000,
      "the contender to get the lock",
    );
    stop = true;
    await contending;
    const [startedAt, secondToken] = (await lines(`${dir}/second`))[0].split(
      " ",
    )
      .map(Number);
    const lastBeat = Math.max(
      ...(await lines(`${dir}/beats`)).map((line) =>
        Number(line.split(" ")[0])
      ),
    );
    assert(
      startedAt > lastBeat,
      `the contender started ${
        lastBeat - startedAt
      } ms before the last heartbeat`,
    );
    assert(
      startedAt > group.lastSeenAlive,
      "the contender started while the first group lived",
    );
    assert(secondToken > firstToken, "a higher token");
    if (expect.contenderAfterMs !== undefined) {
      assert(
        startedAt - struckAt >= expect.contenderAfterMs,
        `the contender got in ${
          startedAt - struckAt
        } ms after the fault, before ${expect.contenderAfterMs} ms`,
      );
    }
    console.log(
      `first group gone ${
        group.goneAt! - struckAt
      } ms after the fault; contender in after ${startedAt - struckAt} ms`,
    );
  } finally {
    stop = true;
    try {
      holder.kill("SIGKILL");
    } catch { /* gone */ }
    await holder.status;
  }
}

async function withCluster(fn: (server: TestServer) => Promise<void>) {
  const server = await startServer(
    consulFakeRecipe(["--session-ttl-min", `${TTL}s`], "consul-nodes"),
  );
  try {
    await fn(server);
  } finally {
    const keepAlive = setInterval(() => {}, 50);
    server.resume();
    await server.kill();
    clearInterval(keepAlive);
  }
}

for (const [how, state] of [["stops", "down"], ["hangs", "hang"]] as const) {
  Deno.test({
    name:
      `consul node failure: the holder's agent ${how} while the job runs, and no second holder runs until the first has stopped its job`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () =>
      withCluster((server) =>
        race(server, async () => {
          // The agent goes, and Consul's leader marks its node critical.
          const fault = await api(
            server.ports[1],
            "PUT",
            `/fake/agent/node-1?state=${state}`,
          );
          assertEquals(fault.status, 200, fault.text);
          await failSerfHealth(server.ports[1], "node-1");
        }, { holderCode: 75 })
      ),
  });
}

Deno.test({
  name:
    "consul node failure: the holder's node leaves the catalog; its lock-delay keeps the contender out until the job has stopped",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withCluster((server) =>
      race(server, async () => {
        const left = await api(
          server.ports[1],
          "PUT",
          "/v1/catalog/deregister",
          {
            Node: "node-1",
          },
        );
        assertEquals(left.status, 200, left.text);
      }, {
        holderCode: 75,
        // The session's lock-delay is its TTL.
        contenderAfterMs: TTL * 1000 - 100,
      })
    ),
});
