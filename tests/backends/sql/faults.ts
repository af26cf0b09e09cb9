/**
 * Shared SQL tests of faults, judged by what a contender gets and when: a
 * dropped session, a killed or stopped holder process and a partition free
 * nothing until the lease the holder last renewed has run out by the
 * server's clock (issue 11); guard time outlives them too; the server ends
 * a partitioned or stopped holder's session by its idle bound.
 *
 * @module
 */

import type { Backend, Claim } from "../../../src/backend.ts";
import { LockLostError } from "../../../src/errors.ts";
import { acquire } from "../../../src/lease.ts";
import { assert, assertEquals, assertRejects } from "../../helpers/assert.ts";
import { eventually } from "../../helpers/cli.ts";
import { startProxy } from "../../helpers/proxy.ts";
import {
  fresh,
  request,
  serverTest,
  type SqlAdapter,
  withBackends,
} from "./adapter.ts";

const ROOT = new URL("../../../", import.meta.url);

/** Polls `backend` for `name` every 50 ms; resolves the claim and when it came. */
async function contend(
  backend: Backend,
  name: string,
  ms: number,
): Promise<{ claim: Claim; at: number }> {
  let claim: Claim | undefined;
  await eventually(
    async () => (claim = await backend.tryAcquire(request(name))) !== undefined,
    ms,
    `'${name}' to be free`,
  );
  return { claim: claim!, at: performance.now() };
}

/** A process that takes `name` with a lease of `ms` and then waits. */
function holder(adapter: SqlAdapter, name: string, ms: number) {
  const { module, factory } = adapter.fixture!.entry;
  const code = `import { ${factory} } from ${
    JSON.stringify(new URL(module, ROOT).href)
  };
    const claim = await ${factory}(${
    JSON.stringify(adapter.fixture!.uri)
  }).tryAcquire({
      name: ${JSON.stringify(name)}, owner: "child:1:x", node: "child",
      limit: 1, expiresInMs: ${ms}, guardMs: 0, wait: false,
      signal: new AbortController().signal });
    console.log(claim ? "held" : "missed");
    setInterval(() => {}, 1000);`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  return {
    child,
    async held() {
      const { value } = await reader.read();
      return new TextDecoder().decode(value).trim() === "held";
    },
    async end() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      try {
        child.kill("SIGCONT");
      } catch { /* gone */ }
      await child.status;
      reader.releaseLock();
      await child.stdout.cancel();
    },
  };
}

/** Registers the fault tests for one SQL backend. */
export function faultTests(adapter: SqlAdapter): void {
  const { noun } = adapter;

  serverTest(
    adapter,
    `a ${noun} ended on the server loses the claim at once, and frees nothing until its lease has run out`,
    async () => {
      const name = fresh("terminate");
      await withBackends(adapter, 2, async (a, b) => {
        const claim = await a.tryAcquire(request(name));
        assert(claim);
        await claim.renew(3_000, AbortSignal.timeout(2_000));
        const left = (await adapter.leftMs(name))!;
        const killed = performance.now();
        assertEquals(await adapter.fixture!.killHolder(name), 1);
        await eventually(() => claim.lost!.aborted, 1_000, "claim.lost");
        await assertRejects(
          () => claim.renew(3_000, AbortSignal.timeout(2_000)),
          LockLostError,
        );
        const { claim: next, at } = await contend(b, name, 6_000);
        const waited = at - killed;
        console.log(
          `lease left ${left.toFixed(0)} ms; free after ${
            waited.toFixed(0)
          } ms`,
        );
        assert(
          waited >= left - 100,
          `free after ${waited} ms, inside the lease`,
        );
        assert(next.token > claim.token, "a newer token");
        // The stale claim's release must not free the new holder's lock.
        await claim.release(0);
        assertEquals(await a.tryAcquire(request(name)), undefined);
        await next.release(0);
      });
    },
  );

  serverTest(
    adapter,
    `guard time outlives the holder's ${noun}, by the server's clock`,
    async () => {
      const name = fresh("guard");
      await withBackends(adapter, 2, async (a, b) => {
        const claim = await a.tryAcquire(
          request(name, { expiresInMs: 1_000, guardMs: 2_000 }),
        );
        assert(claim);
        const started = performance.now();
        await adapter.fixture!.killHolder(name);
        const { claim: next, at } = await contend(b, name, 6_000);
        assert(at - started > 1_700, `free after ${at - started} ms`);
        assert(next.token > claim.token);
        await next.release(800);
        assertEquals(await a.tryAcquire(request(name)), undefined);
      });
    },
  );

  serverTest(
    adapter,
    "a SIGKILLed holder process keeps the lock until its lease has run out",
    async () => {
      const name = fresh("sigkill");
      const proc = holder(adapter, name, 2_500);
      try {
        assert(await proc.held(), "the child holds the lock");
        await withBackends(adapter, 1, async (other) => {
          const left = (await adapter.leftMs(name))!;
          proc.child.kill("SIGKILL");
          const killed = performance.now();
          const { claim, at } = await contend(other, name, 6_000);
          console.log(`free ${(at - killed).toFixed(0)} ms after the kill`);
          assert(at - killed >= left - 100, `free after ${at - killed} ms`);
          await claim.release(0);
        });
      } finally {
        await proc.end();
      }
    },
  );

  serverTest(
    adapter,
    `a stopped holder process: the server ends its ${noun} after the lease, and the lock frees then`,
    async () => {
      const name = fresh("sigstop");
      const proc = holder(adapter, name, 2_000);
      try {
        assert(await proc.held(), "the child holds the lock");
        await withBackends(adapter, 1, async (other) => {
          proc.child.kill("SIGSTOP");
          const stopped = performance.now();
          const { claim, at } = await contend(other, name, 8_000);
          console.log(`free ${(at - stopped).toFixed(0)} ms after SIGSTOP`);
          assert(at - stopped >= 1_900, `free after ${at - stopped} ms`);
          await claim.release(0);
        });
      } finally {
        await proc.end();
      }
    },
  );

  serverTest(
    adapter,
    `a partitioned holder's ${noun} ends on the server by its idle bound, after the holder knew`,
    async () => {
      const name = fresh("partition");
      const fixture = adapter.fixture!;
      await using proxy = startProxy(fixture.server.port);
      const held = fixture.open(fixture.uriAt(proxy.port));
      await withBackends(adapter, 1, async (other) => {
        const lease = await acquire({
          backend: held,
          lock: name,
          ttl: 2,
          guardTime: 0,
        });
        proxy.partition();
        const started = performance.now();
        await eventually(() => lease.signal.aborted, 4_000, "lease.signal");
        const lostAt = performance.now() - started;
        const { claim, at } = await contend(
          other,
          name,
          8_000,
        );
        const freeAt = at - started;
        console.log(
          `lost at ${lostAt.toFixed(0)} ms, free at ${freeAt.toFixed(0)} ms`,
        );
        assert(lostAt < freeAt, "the holder knew first");
        await claim.release(0);
        proxy.heal();
        await lease.release();
      });
      await held.close();
    },
  );
}
