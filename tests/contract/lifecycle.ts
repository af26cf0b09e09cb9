/**
 * The contract's lifecycle cases: the one rule for `close()`, a process that
 * closes its backend exits by itself, opening a backend loads no client, a
 * hung or unreachable server rejects in bounded time, and fair backends
 * serve waiters in arrival order.
 *
 * @module
 */

import {
  BackendUnavailableError,
  LockHeldError,
  LockLostError,
} from "../../src/errors.ts";
import { acquire, type Lease } from "../../src/lease.ts";
import {
  assert,
  assertEquals,
  leaseOptions,
  lockName,
  type Register,
  request,
  sleep,
} from "./common.ts";
import type { ContractFixture } from "./fixture.ts";

const ROOT = new URL("../../", import.meta.url);

/** Runs `script` in a fresh `deno eval`; killed after `killAfterMs`. */
async function runScript(script: string, killAfterMs = 20_000) {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
  const out = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout).trim(),
    stderr: decoder.decode(out.stderr),
    ms: performance.now() - started,
  };
}

function importFactory(f: ContractFixture): string {
  const { module, factory } = f.entry;
  return `const { ${factory} } = await import(${
    JSON.stringify(new URL(module, ROOT).href)
  });`;
}

/** Registers the lifecycle cases for one backend. */
export function lifecycle(test: Register, label: string): void {
  test("close() keeps a claim inside its guard time held until the guard ends", async (f) => {
    const lock = lockName(label, "close-guard");
    const guard = Math.max(3, f.ttl);
    const a = f.open();
    const lease = await acquire(leaseOptions(f, a, lock, { guardTime: guard }));
    const closedAt = performance.now();
    // Closing the backend without releasing the lease: its claim is released
    // by close(), which must keep the guard time.
    await a.close();
    await using b = f.open();
    const early = await acquire(leaseOptions(f, b, lock)).then(
      (l) => l.release().then(() => "acquired"),
      (e) => e,
    );
    assert(
      early instanceof LockHeldError,
      `a closed backend's claim keeps the guard time, but: ${early}`,
    );
    const next = await acquire(
      leaseOptions(f, b, lock, {
        waitTimeout: guard + f.freeWithinMs / 1000 + 10,
      }),
    );
    const waited = performance.now() - closedAt;
    assert(
      waited >= (guard - 1) * 1000,
      `acquired ${
        waited.toFixed(0)
      } ms after close, inside the ${guard} s guard`,
    );
    assert(next.token > lease.token, "the next token is larger");
    await next.release();
    await lease.release();
  });

  test("close() without guard time frees the lock at once", async (f) => {
    const lock = lockName(label, "close-free");
    const a = f.open();
    await acquire(leaseOptions(f, a, lock));
    await a.close();
    await using b = f.open();
    const next = await acquire(leaseOptions(f, b, lock, { waitTimeout: 3 }));
    await next.release();
  });

  test("a script that takes a lock and closes the backend exits by itself", async (f) => {
    const lock = lockName(label, "exits");
    const script = `${importFactory(f)}
      const { acquire } = await import(${
      JSON.stringify(new URL("src/lease.ts", ROOT).href)
    });
      const backend = ${f.entry.factory}(${JSON.stringify(f.uri)});
      const lease = await acquire({ backend, lock: ${
      JSON.stringify(lock)
    }, ttl: ${f.ttl}, guardTime: 0 });
      await lease.release();
      await backend.close();
      console.log("closed");`;
    const result = await runScript(script);
    assert(result.code === 0, `exit ${result.code}: ${result.stderr}`);
    assertEquals(result.stdout, "closed");
    assert(
      result.ms < 15_000,
      `the script took ${result.ms.toFixed(0)} ms to exit after close`,
    );
  });

  test("opening a backend loads no client until it is used", async (f) => {
    const script = `${importFactory(f)}
      const probe = () => console.log("nodeBootstrap" in globalThis ? "loaded" : "clean");
      const backend = ${f.entry.factory}(${JSON.stringify(f.unreachableUri)});
      probe();
      await backend.close();
      probe();`;
    const result = await runScript(script);
    assertEquals(result.stdout.split("\n"), ["clean", "clean"], result.stderr);
  });

  test("an unreachable server rejects an attempt with BackendUnavailableError in bounded time", async (f) => {
    await using backend = f.open(f.unreachableUri);
    const started = performance.now();
    const error = await acquire(
      leaseOptions(f, backend, lockName(label, "down")),
    )
      .then((l) => l.release().then(() => undefined), (e) => e);
    const ms = performance.now() - started;
    assert(
      error instanceof BackendUnavailableError,
      `BackendUnavailableError, not ${error}`,
    );
    assert(ms < 15_000, `gave up after ${ms.toFixed(0)} ms`);
  });

  test(
    "a hung server: the holder loses at its deadline, new attempts fail in bounded time, and it recovers",
    async (f) => {
      const lock = lockName(label, "hung");
      await using a = f.open();
      const lease = await acquire(leaseOptions(f, a, lock));
      const server = f.server!;
      server.pause();
      try {
        const started = performance.now();
        await using b = f.open();
        const error = await acquire(
          leaseOptions(f, b, lockName(label, "hung-other"), {
            operationTimeout: 3,
          }),
        ).then((l) => l.release().then(() => undefined), (e) => e);
        const ms = performance.now() - started;
        assert(
          error instanceof BackendUnavailableError,
          `an attempt on a hung server is BackendUnavailableError, not ${error}`,
        );
        assert(ms < 8_000, `the attempt gave up after ${ms.toFixed(0)} ms`);
        const deadline = performance.now() + f.ttl * 1000 + 1_000;
        while (!lease.signal.aborted && performance.now() < deadline) {
          await sleep(20);
        }
        assert(lease.signal.aborted, "the holder knows it lost the lock");
        assert(
          lease.signal.reason instanceof LockLostError,
          `its reason is a LockLostError: ${lease.signal.reason}`,
        );
      } finally {
        server.resume();
      }
      await using c = f.open();
      const again = await acquire(
        leaseOptions(f, c, lockName(label, "hung-after"), { waitTimeout: 20 }),
      );
      await again.release();
      await lease.release();
    },
    { pause: true },
  );

  test(
    "waiters are served in arrival order, each woken by its predecessor's release",
    async (f) => {
      const lock = lockName(label, "order");
      const backends = Array.from({ length: 5 }, () => f.open());
      try {
        const held = await acquire(leaseOptions(f, backends[0], lock));
        const order: number[] = [];
        const handoffs: number[] = [];
        let releasedAt = 0;
        const waiters: Promise<void>[] = [];
        for (let i = 1; i < backends.length; i++) {
          waiters.push(
            acquire(
              leaseOptions(f, backends[i], lock, { waitTimeout: 30 }),
            ).then(async (lease: Lease) => {
              handoffs.push(performance.now() - releasedAt);
              order.push(i);
              await sleep(50);
              releasedAt = performance.now();
              await lease.release();
            }),
          );
          // Each waiter queues before the next one starts.
          await sleep(300);
        }
        releasedAt = performance.now();
        await held.release();
        await Promise.all(waiters);
        assertEquals(order, [1, 2, 3, 4], "served in arrival order");
        console.log(
          `${label}: queued handoffs ${
            handoffs.map((ms) => ms.toFixed(1)).join(", ")
          } ms`,
        );
        // Woken, not polling (which waits up to half a second): judged by
        // the median, so that one slow wake-up on a loaded host doesn't count.
        const median = [...handoffs].sort((a, b) => a - b)[
          Math.floor(handoffs.length / 2)
        ];
        assert(median < 250, `notified waiters took ${median.toFixed(0)} ms`);
      } finally {
        await Promise.all(backends.map((b) => b.close()));
      }
    },
    { fairQueue: true },
  );

  test("a request with a stale owner's claim: renew and release of an old claim never touch a newer holder", async (f) => {
    const lock = lockName(label, "stale-2");
    await using a = f.open();
    await using b = f.open();
    const stale = await a.tryAcquire(request(lock));
    assert(stale, "the first claim");
    await f.remove(lock);
    let fresh;
    const deadline = performance.now() + f.freeWithinMs + 2_000;
    while (!(fresh = await b.tryAcquire(request(lock)))) {
      assert(performance.now() < deadline, "the lock is free after removal");
      await sleep(50);
    }
    await stale.release(5_000).catch(() => {});
    assert(
      (await a.tryAcquire(request(lock))) === undefined,
      "a stale release with guard time must not touch the newer holder",
    );
    await fresh.release(0);
  });
}
