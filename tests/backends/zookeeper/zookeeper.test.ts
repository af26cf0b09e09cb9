/**
 * The ZooKeeper backend against a real ZooKeeper 3.8: the generic contract
 * suite, then what is particular to the recipe (URIs and chroots, the fair
 * queue, watching only the predecessor, the guard record across a killed
 * holder, parent clean-up, digest ACLs, handoff latency, exiting on close).
 */

// @ts-types="npm:@types/node-zookeeper-client@1.1.0"
import * as zk from "npm:node-zookeeper-client@1.1.3";
import { Buffer } from "node:buffer";
import { zookeeper } from "../../../backends/zookeeper/mod.ts";
import type { Claim, LockRequest } from "../../../src/backend.ts";
import { BackendUnavailableError } from "../../../src/backend.ts";
import { acquire } from "../../../src/lease.ts";
import { encodeLockName } from "../../../src/names.ts";
import { contract } from "../../contract/suite.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "../../helpers/assert.ts";
import {
  assertBadUri,
  fixtureOf,
  lockNamesOf,
  measureHandoffs,
  moduleUrl,
  requestsWith,
  servedInOrder,
  sleep,
  testLoadsNoClient,
  testScriptExits,
  testUnreachable,
} from "../../helpers/backend_checks.ts";
import { freePort, sharedServer } from "../../helpers/servers/server.ts";
import {
  ZOOKEEPER_SUPER,
  zookeeperServer,
} from "../../helpers/servers/zookeeper.ts";

const startedAt = performance.now();
const server = await sharedServer(zookeeperServer);
if (server) {
  console.log(
    `zookeeper: server ready after ${
      (performance.now() - startedAt).toFixed(0)
    } ms`,
  );
}
const uriAt = (port: number) => `zookeeper://127.0.0.1:${port}`;
const parentOf = (lock: string) => `/coolock/${encodeLockName(lock)}`;

type Admin = {
  children(path: string): Promise<string[]>;
  exists(path: string): Promise<boolean>;
  getData(path: string): Promise<string>;
  remove(path: string): Promise<void>;
};

/** Runs `work` on a raw client of its own, authenticated as super. */
async function admin<T>(work: (client: Admin) => Promise<T>): Promise<T> {
  const client = zk.createClient(`127.0.0.1:${server!.port}`, {
    sessionTimeout: 5_000,
  });
  client.addAuthInfo("digest", Buffer.from(ZOOKEEPER_SUPER));
  const connected = new Promise<void>((resolve) =>
    client.once("connected", resolve)
  );
  client.connect();
  await connected;
  const call = <R>(start: (done: (e: unknown, r: R) => void) => void) =>
    new Promise<R>((resolve, reject) =>
      start((error, result) => error ? reject(error) : resolve(result))
    );
  try {
    return await work({
      children: (path) => call((done) => client.getChildren(path, done)),
      exists: async (path) =>
        (await call((done) => client.exists(path, done))) !== null,
      getData: async (path) =>
        String(await call<Buffer>((done) => client.getData(path, done))),
      remove: (path) =>
        call((done) => client.remove(path, (e) => done(e, undefined))),
    });
  } finally {
    const closed = new Promise<void>((resolve) =>
      client.once("disconnected", resolve)
    );
    client.close();
    await closed;
  }
}

const queueOf = async (lock: string) =>
  await admin((a) => a.children(parentOf(lock)).catch(() => [])).then((names) =>
    names.filter((name) => name.startsWith("lock-")).sort()
  );

const fixture = fixtureOf(server, {
  name: "zookeeper",
  uriAt,
  uriWithSecret: (secret, port) =>
    `zookeeper://coolock:${
      encodeURIComponent(secret)
    }@127.0.0.1:${port}?session_timeout=3`,
  open: zookeeper,
  ttl: 3,
  remove: async (lock) => {
    const [holder] = await queueOf(lock);
    if (holder) {
      await admin((a) => a.remove(`${parentOf(lock)}/${holder}`));
    }
  },
});

contract(fixture);

const lockName = lockNamesOf("zk");
const request = requestsWith({ expiresInMs: 3_000, timeoutMs: 20_000 });
const withServer = {
  ignore: !server,
  sanitizeOps: false,
  sanitizeResources: false,
};

Deno.test("zookeeper URIs: hosts, chroot, options and bad values", () => {
  const b = zookeeper("zookeeper://zk1:2181,zk2,zk3:2182/apps/cron");
  assertEquals(b.scheme, "zookeeper");
  assertEquals(b.displayUri, "zookeeper://zk1:2181,zk2,zk3:2182/apps/cron");
  assertEquals(b.capabilities.fairQueue, true);
  assertEquals(b.capabilities.notifiesWaiters, true);
  assertEquals(zookeeper("kazoo://zk/").scheme, "kazoo");
  assertEquals(
    zookeeper("zookeeper://app:hunter2@zk/x?session_timeout=6").displayUri,
    "zookeeper://app:***@zk/x?session_timeout=6",
  );
  zookeeper(new URL("zookeeper://zk:2181/apps"));
  const bad = (uri: string, pattern: RegExp) =>
    assertBadUri(zookeeper, uri, pattern);
  bad("redis://app:hunter2@zk", /must start with zookeeper:\/\/ or kazoo/);
  bad("zookeeper://app:hunter2@", /names no host/);
  bad("zookeeper://app:hunter2@zk:0", /bad port '0'/);
  bad("zookeeper://app:hunter2@zk1,,zk2", /empty or bad host/);
  bad("zookeeper://app:hunter2@[::1]:2181", /IPv6 address '::1'/);
  bad("zookeeper://:hunter2@zk", /both a user name and a password/);
  bad("zookeeper://app@zk", /both a user name and a password/);
  bad("zookeeper://app:hunter2@zk/a//b", /bad chroot '\/a\/\/b'.*empty/);
  bad("zookeeper://app:hunter2@zk/a/../b", /bad chroot .*'\.' or '\.\.'/);
  bad("zookeeper://app:hunter2@zk/zookeeper/x", /'\/zookeeper' is reserved/);
  bad("zookeeper://app:hunter2@zk/a%01b", /character ZooKeeper forbids/);
  bad("zookeeper://app:hunter2@zk/a%zz", /badly percent-encoded path/);
  bad("zookeeper://app:hunter2@zk?timeout=3", /unknown option 'timeout'/);
  bad("zookeeper://app:hunter2@zk?session_timeout=x", /bad 'session_timeout'/);
  bad("zookeeper://app:hunter2@zk?session_timeout=0.5", /at least 1 second/);
});

testLoadsNoClient({
  label: "zookeeper",
  module: "backends/zookeeper/mod.ts",
  factory: "zookeeper",
  uri: "zookeeper://127.0.0.1:1",
  use: "close",
  noNpm: true,
  expect: ["clean", "clean"],
});

testUnreachable({
  label: "zookeeper",
  open: zookeeper,
  uriAt,
  request,
  withinMs: 7_000,
  message: /no session within 5 s/,
});

Deno.test(
  "zookeeper: waiters get the lock in arrival order",
  withServer,
  async () => {
    const lock = lockName("fair");
    const backends = Array.from({ length: 5 }, () => zookeeper(fixture!.uri));
    try {
      const { order } = await servedInOrder({
        backends,
        lock,
        ttl: 3,
        waitTimeout: 30,
        holdMs: 50,
        // Each waiter is in the queue before the next one arrives.
        queued: async (i) => {
          while ((await queueOf(lock)).length < i + 1) await sleep(20);
        },
      });
      assertEquals(order, [1, 2, 3, 4]);
    } finally {
      await Promise.all(backends.map((b) => b.close()));
    }
  },
);

Deno.test(
  "zookeeper: a release wakes only the next waiter (no herd)",
  withServer,
  async () => {
    const lock = lockName("herd");
    const backends = Array.from({ length: 4 }, () => zookeeper(fixture!.uri));
    const stop = new AbortController();
    try {
      const held = await backends[0].tryAcquire(request(lock));
      assert(held, "the holder");
      const waits: Promise<void>[] = [];
      const woken: number[] = [];
      const requests: LockRequest[] = [];
      for (let i = 1; i < backends.length; i++) {
        const r = request(lock, { wait: true, signal: stop.signal });
        requests.push(r);
        assertEquals(await backends[i].tryAcquire(r), undefined);
        waits.push(
          backends[i].waitForChange!(r, stop.signal).then(
            () => void woken.push(i),
            () => {},
          ),
        );
      }
      assertEquals((await queueOf(lock)).length, 4, "all four are queued");
      await sleep(300);
      assertEquals(woken, [], "nobody wakes while the holder holds");
      await held.release(0);
      await waits[0];
      await sleep(700);
      assertEquals(woken, [1], "only the holder's successor woke");
      const next = await backends[1].tryAcquire(requests[0]);
      assert(next, "the successor takes the lock");
      assertEquals(await backends[2].tryAcquire(requests[1]), undefined);
      // The same watch on the same predecessor: the earlier wait wakes too.
      const again = backends[2].waitForChange!(requests[1], stop.signal);
      await next.release(0);
      await again;
      await sleep(300);
      assertEquals(woken, [1, 2], "the third waiter still sleeps");
    } finally {
      stop.abort();
      await Promise.all(backends.map((b) => b.close()));
    }
  },
);

/** A child process that takes the lock and then waits to be killed. */
function holderProcess(uri: string, lock: string, guardMs: number) {
  const module =
    new URL("../../../backends/zookeeper/mod.ts", import.meta.url).href;
  return new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const { zookeeper } = await import("${module}");` +
      `const claim = await zookeeper(${JSON.stringify(uri)}).tryAcquire({` +
      `name: ${JSON.stringify(lock)}, owner: "killed:1", node: "killed",` +
      `expiresInMs: 1000, guardMs: ${guardMs}, wait: false,` +
      `signal: AbortSignal.timeout(10000) });` +
      `console.log(claim ? "held" : "free"); setInterval(() => {}, 1000);`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return (value ?? "").trim();
}

Deno.test(
  "zookeeper: the guard record outlives a SIGKILLed holder's session, by the server's clock",
  withServer,
  async () => {
    const lock = lockName("guard-kill");
    const holder = holderProcess(
      `${fixture!.uri}?session_timeout=1`,
      lock,
      4_000,
    );
    assertEquals(await firstLine(holder), "held");
    const acquiredBy = performance.now();
    holder.kill("SIGKILL");
    await holder.status;
    await holder.stdout.cancel().catch(() => {});
    const guard = JSON.parse(await admin((a) => a.getData(parentOf(lock))));
    assertEquals(guard, { owner: "killed:1", guardMs: 4_000 });
    while ((await queueOf(lock)).length > 0) await sleep(100);
    const sessionGoneAfter = performance.now() - acquiredBy;
    assert(sessionGoneAfter < 3_500, `session gone ${sessionGoneAfter} ms`);
    await using backend = zookeeper(fixture!.uri);
    assertEquals(
      await backend.tryAcquire(request(lock)),
      undefined,
      "the guard keeps the lock after the ephemeral node went",
    );
    assertEquals(await queueOf(lock), [], "a failed try leaves no node");
    const lease = await acquire({
      backend,
      lock,
      ttl: 3,
      guardTime: 0,
      waitTimeout: 10,
    });
    const after = performance.now() - acquiredBy;
    assert(after >= 3_900, `acquired ${after.toFixed(0)} ms after, not 4 s`);
    assert(after < 6_500, `acquired late: ${after.toFixed(0)} ms after`);
    await lease.release();
  },
);

Deno.test(
  "zookeeper: empty lock parents are cleaned up, guarded ones kept",
  withServer,
  async () => {
    const lock = lockName("tidy");
    await using a = zookeeper(fixture!.uri);
    await using b = zookeeper(fixture!.uri);
    const parentExists = () => admin((c) => c.exists(parentOf(lock)));
    let claim = await a.tryAcquire(request(lock));
    assert(claim, "acquired");
    assert(await parentExists(), "the parent exists while held");
    await claim.release(0);
    assert(!(await parentExists()), "an unguarded release removes the parent");
    // A contender that finds the parent gone re-creates it.
    claim = await b.tryAcquire(request(lock));
    assert(claim, "acquired again after the parent went");
    const waiter = request(lock, { wait: true });
    assertEquals(await a.tryAcquire(waiter), undefined);
    await claim.release(0);
    assert(await parentExists(), "a queued waiter keeps the parent");
    const next = await a.tryAcquire(waiter);
    assert(next, "the waiter takes it");
    await next.release(0);
    assert(!(await parentExists()), "the last release removes the parent");
    const guarded = await a.tryAcquire(request(lock, { guardMs: 1_000 }));
    assert(guarded, "acquired with a guard");
    await guarded.release(800);
    assert(await parentExists(), "a release inside the guard keeps the parent");
    await sleep(1_100);
    const later = await b.tryAcquire(request(lock));
    assert(later, "free after the guard");
    await later.release(0);
    assert(!(await parentExists()), "removed once the guard has lapsed");
  },
);

Deno.test(
  "zookeeper: a waiter that gives up leaves the queue",
  withServer,
  async () => {
    const lock = lockName("give-up");
    await using a = zookeeper(fixture!.uri);
    await using b = zookeeper(fixture!.uri);
    const held = await a.tryAcquire(request(lock));
    assert(held, "held");
    const stop = new AbortController();
    assertEquals(
      await b.tryAcquire(request(lock, { wait: true, signal: stop.signal })),
      undefined,
    );
    assertEquals((await queueOf(lock)).length, 2, "the waiter keeps its place");
    stop.abort();
    for (let i = 0; i < 50 && (await queueOf(lock)).length > 1; i++) {
      await sleep(20);
    }
    assertEquals((await queueOf(lock)).length, 1, "its node went on abort");
    await held.release(0);
  },
);

Deno.test(
  "zookeeper: digest auth keeps lock nodes to their identity",
  withServer,
  async () => {
    const lock = lockName("acl");
    const port = server!.port;
    await using alice = zookeeper(`zookeeper://alice:pw1@127.0.0.1:${port}`);
    await using alice2 = zookeeper(`zookeeper://alice:pw1@127.0.0.1:${port}`);
    await using anonymous = zookeeper(fixture!.uri);
    const claim = await alice.tryAcquire(request(lock));
    assert(claim, "alice holds it");
    assertEquals(await alice2.tryAcquire(request(lock)), undefined);
    const error = await assertRejects(
      () => anonymous.tryAcquire(request(lock)),
      BackendUnavailableError,
    );
    assertMatch(error.message, /NO_AUTH/);
    assert(!error.message.includes("pw1"), error.message);
    await claim.release(0);
  },
);

Deno.test("zookeeper: handoff latency in wait mode", withServer, async () => {
  const lock = lockName("handoff");
  await using a = zookeeper(fixture!.uri);
  await using b = zookeeper(fixture!.uri);
  const samples = await measureHandoffs({
    rounds: 10,
    pair: (i) => i % 2 ? [a, b] : [b, a],
    lock: () => lock,
    ttl: 3,
    waitTimeout: 10,
    settle: async () => {
      while ((await queueOf(lock)).length < 2) await sleep(10);
      await sleep(50);
    },
  });
  samples.sort((x, y) => x - y);
  console.log(
    `zookeeper: handoff latency median ${samples[5].toFixed(1)} ms, max ${
      samples[9].toFixed(1)
    } ms`,
  );
  assert(samples[5] < 500, `median handoff ${samples[5]} ms`);
});

const exitLock = lockName("exit");
testScriptExits({
  label: "zookeeper",
  name: "close() ends the session so the process exits",
  script: () => `
    const { zookeeper } = await import("${
    moduleUrl("backends/zookeeper/mod.ts")
  }");
    const { acquire } = await import("${moduleUrl("src/lease.ts")}");
    const backend = zookeeper("${fixture!.uri}");
    const held = await acquire({ backend, lock: "${exitLock}", ttl: 3, guardTime: 0 });
    const other = zookeeper("${fixture!.uri}");
    const waiting = acquire({ backend: other, lock: "${exitLock}", ttl: 3, guardTime: 0, waitTimeout: 1 })
      .catch((e) => console.log(e.name));
    await waiting;
    const unreachable = zookeeper("${uriAt(freePort())}");
    await unreachable.tryAcquire({ name: "x", owner: "o", node: "n", expiresInMs: 3000,
      guardMs: 0, wait: false, signal: AbortSignal.timeout(300) }).catch(() => {});
    await Promise.all([backend.close(), other.close(), unreachable.close()]);
    console.log(held.signal.aborted ? "closed" : "still held");
  `,
  expect: "LockHeldError\nclosed",
  withinMs: 10_000,
  after: async () =>
    assertEquals(
      await queueOf(exitLock),
      [],
      "closing released the held node",
    ),
  test: withServer,
});

Deno.test(
  "zookeeper: the held node's deletion aborts claim.lost at once",
  withServer,
  async () => {
    const lock = lockName("lost");
    await using a = zookeeper(fixture!.uri);
    const claim: Claim | undefined = await a.tryAcquire(request(lock));
    assert(claim?.lost, "a claim with a lost signal");
    const started = performance.now();
    await fixture!.remove(lock);
    while (!claim.lost.aborted && performance.now() - started < 3_000) {
      await sleep(5);
    }
    assert(claim.lost.aborted, "lost fired");
    assertMatch((claim.lost.reason as Error).message, /was deleted/);
    await claim.release(0);
  },
);

Deno.test(
  "zookeeper: an unrenewed claim lapses like a key with a TTL",
  withServer,
  async () => {
    const lock = lockName("lapse");
    await using a = zookeeper(fixture!.uri);
    await using b = zookeeper(fixture!.uri);
    const claim = await a.tryAcquire(request(lock, { expiresInMs: 2_000 }));
    assert(claim?.lost, "acquired");
    await sleep(1_000);
    await claim.renew(2_000, AbortSignal.timeout(5_000));
    await sleep(1_500);
    assert(!claim.lost.aborted, "a renewal extends the claim");
    assertEquals(await b.tryAcquire(request(lock)), undefined);
    await sleep(1_000);
    assert(claim.lost.aborted, "no renewal for 2 s: the claim lapsed");
    assertMatch((claim.lost.reason as Error).message, /lapsed/);
    const next = await b.tryAcquire(request(lock));
    assert(next, "the lapsed lock is free while its session lives on");
    await next.release(0);
  },
);

Deno.test(
  "zookeeper: a hung or killed server makes the session lost within its timeout",
  withServer,
  async () => {
    const lock = lockName("faults");
    const uri = `${fixture!.uri}?session_timeout=3`;
    await using a = zookeeper(uri);
    let claim = await a.tryAcquire(request(lock));
    assert(claim?.lost, "acquired");
    server!.pause();
    let started = performance.now();
    try {
      while (!claim.lost.aborted && performance.now() - started < 5_000) {
        await sleep(20);
      }
    } finally {
      server!.resume();
    }
    let ms = performance.now() - started;
    assert(claim.lost.aborted, "lost while the server hangs");
    assert(ms < 3_000, `lost after ${ms.toFixed(0)} ms, not before expiry`);
    assertMatch(
      (claim.lost.reason as Error).message,
      /no answer from ZooKeeper/,
    );
    console.log(`zookeeper: lost ${ms.toFixed(0)} ms after SIGSTOP`);
    await claim.release(0);
    claim = await a.tryAcquire(request(lock, { wait: true }));
    assert(claim?.lost, "a new session takes the lock once the old one went");
    await server!.kill();
    started = performance.now();
    try {
      while (!claim.lost.aborted && performance.now() - started < 5_000) {
        await sleep(20);
      }
      ms = performance.now() - started;
    } finally {
      await server!.restart();
    }
    assert(claim.lost.aborted, "lost while the server is down");
    assert(ms < 3_000, `lost after ${ms.toFixed(0)} ms`);
    await using b = zookeeper(fixture!.uri);
    const lease = await acquire({
      backend: b,
      lock,
      ttl: 3,
      guardTime: 0,
      waitTimeout: 15,
    });
    await lease.release();
    await claim.release(0);
  },
);
