/**
 * The backend-specific checks that every backend's test file runs with its
 * own parameters, beside the contract suite: request and name factories, a
 * fixture builder, and tests for "importing loads no npm client", "a
 * spawned script exits once closed", "an unreachable or hung server rejects
 * in bounded time", "close() releases", handoff latency and arrival order.
 *
 * @module
 */

import type { Backend, Claim, LockRequest } from "../../src/backend.ts";
import { BackendUnavailableError, LockLostError } from "../../src/backend.ts";
import { acquire } from "../../src/lease.ts";
import type { ContractFixture } from "../contract/fixture.ts";
import {
  freePort,
  type ServerRecipe,
  startServer,
  type TestServer,
} from "./servers/server.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "./assert.ts";

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Makes one-attempt lock requests with a backend's own defaults. */
export type RequestOf = (
  name: string,
  overrides?: Partial<LockRequest>,
) => LockRequest;

/** A request factory: a fresh owner each time, `expiresInMs` and a timeout. */
export function requestsWith(
  defaults: { expiresInMs: number; timeoutMs: number },
): RequestOf {
  return (name, overrides = {}) => ({
    name,
    owner: `test:${crypto.randomUUID()}`,
    node: "test",
    limit: 1,
    expiresInMs: defaults.expiresInMs,
    guardMs: 0,
    wait: false,
    signal: AbortSignal.timeout(defaults.timeoutMs),
    ...overrides,
  });
}

/** Unique lock names that start with `prefix`. */
export function lockNamesOf(prefix: string): (tag: string) => string {
  let unique = 0;
  return (tag) => `${prefix}-${tag}-${Date.now()}-${unique++}`;
}

/**
 * Kills a server of the test's own, resuming it first. `TestServer.kill()`
 * awaits the status of an unref'd child, which alone does not keep the event
 * loop alive; a timer does, until it is gone.
 */
export async function stopServer(server: TestServer): Promise<void> {
  const keepAlive = setInterval(() => {}, 50);
  try {
    try {
      server.resume();
    } catch { /* already gone */ }
    await server.kill();
  } finally {
    clearInterval(keepAlive);
  }
}

/** Asserts that `open(uri)` throws a TypeError that matches and hides the secret. */
export function assertBadUri(
  open: (uri: string) => unknown,
  uri: string,
  pattern: RegExp,
  secret = "hunter2",
): void {
  const error = assertThrows(() => open(uri), TypeError);
  assertMatch(error.message, pattern);
  assert(!error.message.includes(secret), error.message);
}

/** What a backend's fixture has beyond the defaults `fixtureOf` fills in. */
export interface FixtureParts {
  readonly name: string;
  uriAt(port: number): string;
  uriWithSecret(secret: string, port: number): string;
  open(uri: string): Backend;
  readonly ttl: number;
  remove(lock: string): Promise<void>;
  readonly env?: Record<string, string>;
}

/** Until each family has its own fixture: where its factory lives. */
const ENTRIES: Record<string, { module: string; factory: string }> = {
  redis: { module: "backends/redis/mod.ts", factory: "redis" },
  memcached: { module: "backends/memcached/mod.ts", factory: "memcached" },
  etcd: { module: "backends/etcd/gateway/mod.ts", factory: "etcd" },
  etcd3: { module: "backends/etcd/grpc/mod.ts", factory: "etcd3" },
  zookeeper: { module: "backends/zookeeper/mod.ts", factory: "zookeeper" },
  postgres: { module: "backends/sql/postgres/mod.ts", factory: "postgres" },
  mysql: { module: "backends/sql/mysql/mod.ts", factory: "mysql" },
  consul: { module: "backends/consul/mod.ts", factory: "consul" },
};

/** The contract fixture on a live server; `undefined` without one. */
export function fixtureOf(
  server: TestServer | undefined,
  parts: FixtureParts,
): ContractFixture | undefined {
  if (!server) return undefined;
  const uri = parts.uriAt(server.port);
  return {
    name: parts.name,
    uri,
    uriAt: parts.uriAt,
    uriWithSecret: (secret) => parts.uriWithSecret(secret, server.port),
    unreachableUri: parts.uriAt(freePort()),
    open: (other = uri) => parts.open(other),
    ttl: parts.ttl,
    entry: ENTRIES[parts.name],
    freeWithinMs: parts.ttl * 1000 + 1_000,
    server,
    faults: { pause: true, partition: true },
    remove: parts.remove,
    env: parts.env,
  };
}

/** What a script run by `runScript` did. */
export interface ScriptResult {
  readonly code: number;
  readonly success: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs `script` in `deno eval`, killed after `killAfterMs`. */
export async function runScript(
  script: string,
  options: { noNpm?: boolean; killAfterMs?: number } = {},
): Promise<ScriptResult> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", ...(options.noNpm ? ["--no-npm"] : []), script],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(
    () => child.kill("SIGKILL"),
    options.killAfterMs ?? 15_000,
  );
  const out = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return {
    code: out.code,
    success: out.success,
    stdout: decoder.decode(out.stdout).trim(),
    stderr: decoder.decode(out.stderr),
    ms: performance.now() - started,
  };
}

/** The URL of a file in backends/ or src/, for a script's imports. */
export function moduleUrl(path: string): string {
  return new URL(`../../${path}`, import.meta.url).href;
}

/** A script's literal for a one-attempt request on `name`. */
function requestLiteral(name: string, expiresInMs: number): string {
  return `{ name: ${JSON.stringify(name)}, owner: "o", node: "n", limit: 1, ` +
    `expiresInMs: ${expiresInMs}, guardMs: 0, wait: false, ` +
    `signal: AbortSignal.timeout(3000) }`;
}

/**
 * Registers "importing the backend loads no npm client": a script imports
 * the backend, opens it, uses it as `use` says, and closes it, printing
 * whether Node's layer (which the first npm module bootstraps) was loaded
 * after opening and after closing. With `noNpm`, any npm import that runs
 * fails the script too.
 */
export function testLoadsNoClient(options: {
  label: string;
  /** The backend file, such as `backends/redis.ts`. */
  module: string;
  factory: string;
  uri: string;
  /** "close": open and close; "acquire": take and release a lock first; "attempt": one attempt that may fail. */
  use: "close" | "acquire" | "attempt";
  noNpm: boolean;
  expect: [string, string];
  ignore?: boolean;
}): void {
  const { factory, uri, use } = options;
  const request = requestLiteral(`no-npm-${Date.now()}`, 2000);
  const steps = {
    close: "",
    acquire: `const c = await b.tryAcquire(${request}); await c.release(0);`,
    attempt: `await b.tryAcquire(${request}).catch(() => {});`,
  };
  const script =
    `const { ${factory} } = await import("${moduleUrl(options.module)}");` +
    `const probe = () => console.log("nodeBootstrap" in globalThis ? "loaded" : "clean");` +
    `const b = ${factory}(${JSON.stringify(uri)}); probe();` +
    `${steps[use]} await b.close(); probe();`;
  Deno.test({
    name: `${options.label}: importing and opening the backend loads no client`,
    ignore: options.ignore,
    async fn() {
      const result = await runScript(script, { noNpm: options.noNpm });
      assertEquals(result.stdout.split("\n"), options.expect, result.stderr);
    },
  });
}

/**
 * Registers "a spawned script exits by itself once closed": `script` must
 * print `expect`, exit 0 and be gone within `withinMs`.
 */
export function testScriptExits(options: {
  label: string;
  name: string;
  script: () => string;
  expect: string;
  withinMs: number;
  killAfterMs?: number;
  after?: () => Promise<void>;
  test?: Omit<Deno.TestDefinition, "name" | "fn">;
}): void {
  Deno.test({
    ...options.test,
    name: `${options.label}: ${options.name}`,
    async fn() {
      const result = await runScript(options.script(), {
        killAfterMs: options.killAfterMs,
      });
      assert(result.success, `exit ${result.code}: ${result.stderr}`);
      assertEquals(result.stdout, options.expect);
      assert(
        result.ms < options.withinMs,
        `the script took ${result.ms.toFixed(0)} ms to exit`,
      );
      console.log(
        `${options.label}: the script exited after ${result.ms.toFixed(0)} ms`,
      );
      await options.after?.();
    },
  });
}

/**
 * Asserts that a backend on a server that is down rejects an attempt with
 * `BackendUnavailableError` within `withinMs`, naming no secret.
 */
export async function assertUnreachable(options: {
  backend: Backend;
  request: LockRequest;
  withinMs: number;
  secret?: string;
  message?: RegExp;
}): Promise<void> {
  const started = performance.now();
  const error = await assertRejects(
    () => options.backend.tryAcquire(options.request),
    BackendUnavailableError,
  );
  const ms = performance.now() - started;
  assert(ms < options.withinMs, `gave up after ${ms.toFixed(0)} ms`);
  if (options.secret) {
    assert(
      !`${error.message} ${error.stack}`.includes(options.secret),
      error.message,
    );
  }
  if (options.message) assertMatch(error.message, options.message);
}

/** Registers "an unreachable server rejects in bounded time". */
export function testUnreachable(options: {
  label: string;
  open: (uri: string) => Backend;
  /** A URI of the backend's scheme on `port`, where nothing listens. */
  uriAt: (port: number) => string;
  request: RequestOf;
  withinMs: number;
  secret?: string;
  message?: RegExp;
}): void {
  Deno.test(`${options.label}: an unreachable server rejects in bounded time`, async () => {
    await using backend = options.open(options.uriAt(freePort()));
    await assertUnreachable({
      ...options,
      backend,
      request: options.request(`${options.label}-down-${Date.now()}`),
    });
  });
}

/**
 * Registers "a hung server rejects in bounded time": on a server of its own,
 * a claim is taken, the server SIGSTOPped; a renewal rejects, but not as a
 * loss, and a new attempt rejects with `BackendUnavailableError`, each within
 * the bounds given (counted from the hang).
 */
export function testHungServer(options: {
  label: string;
  recipe: ServerRecipe;
  open: (uri: string) => Backend;
  uriAt: (port: number) => string;
  request: RequestOf;
  /** The claim's lease and the renewal's arguments. */
  expiresInMs?: number;
  renew: { expiresInMs: number; signalMs: number };
  /** Bound on the renewal. */
  renewWithinMs?: number;
  /** Bound on the attempt, counted from its start. */
  tryWithinMs?: number;
  /** Bound on the renewal and the attempt together. */
  totalWithinMs?: number;
  /** Whether a new attempt succeeds once the server answers again. */
  recovers: boolean;
  /** More checks while the server hangs. */
  whileHung?: (claim: Claim, hungAt: number) => Promise<void>;
  ignore?: boolean;
}): void {
  const name = (tag: string) => `${options.label}-${tag}-${Date.now()}`;
  Deno.test({
    name: `${options.label}: a hung server rejects in bounded time`,
    ignore: options.ignore,
    async fn() {
      const hung = await startServer(options.recipe);
      try {
        await using backend = options.open(options.uriAt(hung.port));
        const claim = await backend.tryAcquire(
          options.request(
            name("hung"),
            options.expiresInMs === undefined
              ? {}
              : { expiresInMs: options.expiresInMs },
          ),
        );
        assert(claim, "acquired before the hang");
        const hungAt = performance.now();
        hung.pause();
        const { expiresInMs, signalMs } = options.renew;
        const renewal = await assertRejects(() =>
          claim.renew(expiresInMs, AbortSignal.timeout(signalMs))
        );
        assert(!(renewal instanceof LockLostError), "a hang is not a loss");
        const renewMs = performance.now() - hungAt;
        const bound = (ms: number, limit: number | undefined, what: string) =>
          assert(limit === undefined || ms < limit, `${what}, not ${ms} ms`);
        bound(renewMs, options.renewWithinMs, "the timeout ends the renew");
        const tryStarted = performance.now();
        await assertRejects(
          () =>
            backend.tryAcquire(
              options.request(name("hung"), {
                signal: AbortSignal.timeout(60_000),
              }),
            ),
          BackendUnavailableError,
        );
        const now = performance.now();
        bound(
          now - tryStarted,
          options.tryWithinMs,
          "the timeout ends the try",
        );
        bound(
          now - hungAt,
          options.totalWithinMs,
          "the timeouts end the calls",
        );
        await options.whileHung?.(claim, hungAt);
        hung.resume();
        if (options.recovers) {
          const again = await backend.tryAcquire(options.request(name("back")));
          assert(again, "a new connection works once the server answers");
          await again.release(0);
        }
        await claim.release(0);
      } finally {
        await stopServer(hung);
      }
    },
  });
}

/**
 * Registers "close() releases held claims" (sanitizers on: anything left
 * open fails it). `keys(name)` counts what the backend keeps of a lock on
 * the server. With `waiter`, a second backend queues for the lock and waits
 * first, and keeps its queue key until it is closed too.
 */
export function testCloseReleases(options: {
  label: string;
  open: () => Backend;
  request: RequestOf;
  lockName: (tag: string) => string;
  keys: (name: string) => Promise<number>;
  waiter?: boolean;
  /** The backend waits for another lock, so that close() must end the wait's channel. */
  waitsOnOther?: boolean;
  rejectsAfterClose?: boolean;
  ignore?: boolean;
}): void {
  Deno.test({
    name:
      `${options.label}: close() releases held claims and ends every connection`,
    ignore: options.ignore,
    async fn() {
      const name = options.lockName("close");
      const a = options.open();
      const claim = await a.tryAcquire(options.request(name));
      assert(claim, "acquired");
      if (options.waitsOnOther) {
        await a.waitForChange!(
          options.request(options.lockName("close-wait")),
          AbortSignal.timeout(1_000),
        );
      }
      const b = options.waiter ? options.open() : undefined;
      if (b) {
        const waiting = options.request(name, { wait: true });
        assertEquals(await b.tryAcquire(waiting), undefined);
        await b.waitForChange!(waiting, AbortSignal.timeout(300)).catch(
          () => {},
        );
      }
      await a.close();
      assertEquals(await options.keys(name), b ? 1 : 0);
      if (b) {
        await b.close();
        assertEquals(await options.keys(name), 0);
      }
      if (options.rejectsAfterClose) {
        await assertRejects(
          () => a.tryAcquire(options.request(name)),
          BackendUnavailableError,
        );
      }
    },
  });
}

/**
 * Hands a lock from a holder to a waiter `rounds` times and resolves the
 * latencies from release to the waiter's lease, in milliseconds.
 * `settle(lock)` runs between the waiter's start and the release.
 */
export async function measureHandoffs(options: {
  rounds: number;
  /** The holder and the waiter of round `i`. */
  pair: (i: number) => [Backend, Backend];
  lock: (i: number) => string;
  ttl?: number;
  waitTimeout: number;
  settle: (lock: string) => Promise<void>;
}): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < options.rounds; i++) {
    const [from, to] = options.pair(i);
    const lock = options.lock(i);
    const ttl = options.ttl === undefined ? {} : { ttl: options.ttl };
    const held = await acquire({ backend: from, lock, guardTime: 0, ...ttl });
    const waiter = acquire({
      backend: to,
      lock,
      guardTime: 0,
      waitTimeout: options.waitTimeout,
      ...ttl,
    });
    await options.settle(lock);
    const releasedAt = performance.now();
    await held.release();
    const next = await waiter;
    samples.push(performance.now() - releasedAt);
    assert(next.token > held.token, "the waiter's token is newer");
    await next.release();
  }
  return samples;
}

/** Logs handoff latencies as one line. */
export function logHandoffs(label: string, samples: number[]): void {
  console.log(
    `${label}: handoff ${samples.map((ms) => ms.toFixed(1)).join(", ")} ms`,
  );
}

/**
 * Queues a waiter on each backend after the first, which holds the lock,
 * then releases it: resolves the order in which the waiters (by index) got
 * the lock, and each one's latency from the previous release. `queued(i)`
 * runs after waiter `i` started; `beforeRelease` before the holder lets go.
 */
export async function servedInOrder(options: {
  backends: readonly Backend[];
  lock: string;
  ttl: number;
  waitTimeout: number;
  /** How long each waiter holds the lock before it passes it on. */
  holdMs: number;
  queued: (i: number) => Promise<void>;
  beforeRelease?: () => Promise<void>;
}): Promise<{ order: number[]; handoffs: number[] }> {
  const { backends, lock, ttl } = options;
  const held = await acquire({ backend: backends[0], lock, guardTime: 0, ttl });
  const order: number[] = [];
  const handoffs: number[] = [];
  let releasedAt = 0;
  const waiters = [];
  for (let i = 1; i < backends.length; i++) {
    waiters.push(
      acquire({
        backend: backends[i],
        lock,
        guardTime: 0,
        ttl,
        waitTimeout: options.waitTimeout,
      }).then(async (lease) => {
        handoffs.push(performance.now() - releasedAt);
        order.push(i);
        await sleep(options.holdMs);
        releasedAt = performance.now();
        await lease.release();
      }),
    );
    await options.queued(i);
  }
  await options.beforeRelease?.();
  releasedAt = performance.now();
  await held.release();
  await Promise.all(waiters);
  return { order, handoffs };
}
