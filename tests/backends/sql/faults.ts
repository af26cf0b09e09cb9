/**
 * Shared SQL tests of faults: the holder's connection ended on the server,
 * its process killed, the server stopped, the network partitioned.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Backend, Claim } from "../../../src/backend.ts";
import { LockLostError } from "../../../src/backend.ts";
import { acquire } from "../../../src/lease.ts";
import { eventually } from "../../helpers/cli.ts";
import { startProxy } from "../../helpers/proxy.ts";
import {
  holderCode,
  request,
  type SqlAdapter,
  withBackends,
} from "./adapter.ts";

/** A lease with a 2 s TTL and no guard time, renewed by the lifecycle. */
const shortLease = (backend: Backend, lock: string) =>
  acquire({ backend, lock, ttl: 2, guardTime: 0 });

/** Registers the fault tests for one SQL backend. */
export function faultTests(adapter: SqlAdapter): void {
  const { name: backend, noun } = adapter;
  const ignore = adapter.fixture === undefined;

  Deno.test({
    name: `${backend}: a ${noun} ended on the server loses the claim at once`,
    ignore,
    async fn() {
      const name = `terminate-${crypto.randomUUID()}`;
      await withBackends(adapter, 2, async (a, b) => {
        const claim = await a.tryAcquire(request(name));
        assert.ok(claim);
        await claim.renew(4_000, AbortSignal.timeout(2_000));
        const started = performance.now();
        await adapter.killHolder(name);
        await eventually(() => claim.lost!.aborted, 1_000, "claim.lost");
        assert.ok(claim.lost!.reason instanceof Error);
        console.log(
          `lost after ${(performance.now() - started).toFixed(0)} ms`,
        );
        await assert.rejects(
          claim.renew(4_000, AbortSignal.timeout(2_000)),
          LockLostError,
        );
        const next = await b.tryAcquire(request(name));
        assert.ok(next);
        // The stale claim's release must not free the new holder's lock.
        await claim.release(0);
        assert.equal(await a.tryAcquire(request(name)), undefined);
        await next.release(0);
      });
    },
  });

  Deno.test({
    name: `${backend}: a SIGKILLed holder process frees the lock at once`,
    ignore,
    async fn() {
      const name = `sigkill-${crypto.randomUUID()}`;
      const child = new Deno.Command(Deno.execPath(), {
        args: ["eval", holderCode(adapter, name)],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = child.stdout.getReader();
      const { value } = await reader.read();
      assert.equal(new TextDecoder().decode(value).trim(), "held");
      await withBackends(adapter, 1, async (other) => {
        assert.equal(await other.tryAcquire(request(name)), undefined);
        child.kill("SIGKILL");
        await child.status;
        reader.releaseLock();
        await child.stdout.cancel();
        const started = performance.now();
        let claim: Claim | undefined;
        await eventually(
          async () =>
            (claim = await other.tryAcquire(request(name))) !== undefined,
          2_000,
          "the lock to be free",
        );
        console.log(
          `free after ${(performance.now() - started).toFixed(0)} ms`,
        );
        await claim!.release(0);
      });
    },
  });

  Deno.test({
    name: `${backend}: a SIGSTOPped server loses the lease by its deadline`,
    ignore,
    async fn() {
      const name = `sigstop-${crypto.randomUUID()}`;
      const server = adapter.fixture!.server!;
      await withBackends(adapter, 1, async (held) => {
        const lease = await shortLease(held, name);
        const started = performance.now();
        server.pause();
        try {
          await eventually(() => lease.signal.aborted, 4_000, "lease.signal");
          const after = performance.now() - started;
          assert.ok(after < 2_500, `lost after ${after} ms`);
          assert.ok(lease.signal.reason instanceof LockLostError);
        } finally {
          server.resume();
        }
        await lease.release();
      });
    },
  });

  Deno.test({
    name:
      `${backend}: a partitioned holder's ${noun} ends on the server by its TTL`,
    ignore,
    async fn() {
      const name = `partition-${crypto.randomUUID()}`;
      const fixture = adapter.fixture!;
      await using proxy = startProxy(fixture.server!.port);
      const held = fixture.open(fixture.uriAt(proxy.port));
      await withBackends(adapter, 1, async (other) => {
        const lease = await shortLease(held, name);
        proxy.partition();
        const started = performance.now();
        await eventually(() => lease.signal.aborted, 4_000, "lease.signal");
        const lostAt = performance.now() - started;
        let claim: Claim | undefined;
        await eventually(
          async () =>
            (claim = await other.tryAcquire(request(name))) !== undefined,
          6_000,
          `the server to end the partitioned ${noun}`,
        );
        const freeAt = performance.now() - started;
        console.log(
          `lost at ${lostAt.toFixed(0)} ms, free at ${freeAt.toFixed(0)} ms`,
        );
        assert.ok(lostAt < freeAt, "the holder knew first");
        await claim!.release(0);
        proxy.heal();
        await lease.release();
      });
      await held.close();
    },
  });
}
