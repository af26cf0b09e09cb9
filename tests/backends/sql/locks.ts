/**
 * Shared SQL tests of the lock itself: names as data, fencing tokens, guard
 * time by the server's clock, the row's owner, wait mode.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Claim } from "../../../src/backend.ts";
import { LockLostError } from "../../../src/backend.ts";
import { acquire } from "../../../src/lease.ts";
import { eventually } from "../../helpers/cli.ts";
import { request, type SqlAdapter, withBackends } from "./adapter.ts";

const NAMES = [
  "it's; DROP TABLE coolock_locks; --",
  'say "hi"',
  "naïve/ünïcödé ☃ 🚀",
  "%s%n\\'",
  "\\'; SELECT 1; --",
  "Case",
  "case",
  "a".repeat(200),
  "a".repeat(199) + "b",
];

/** Registers the lock tests for one SQL backend. */
export function lockTests(adapter: SqlAdapter): void {
  const { name: backend, noun } = adapter;
  const ignore = adapter.fixture === undefined;

  Deno.test({
    name:
      `${backend}: names with quotes, backslashes, case and emoji are only data`,
    ignore,
    async fn() {
      await withBackends(adapter, 2, async (a, b) => {
        const claims: Claim[] = [];
        for (const name of NAMES) {
          const claim = await a.tryAcquire(request(name));
          assert.ok(claim, `first owner takes ${name}`);
          assert.equal(await b.tryAcquire(request(name)), undefined, name);
          claims.push(claim);
        }
        await Promise.all(claims.map((claim) => claim.release(0)));
        const again = await b.tryAcquire(request(NAMES[0]));
        assert.ok(again);
        await again.release(0);
      });
      assert.equal(await adapter.tables(), 1);
      assert.equal(await adapter.rows(NAMES), NAMES.length);
    },
  });

  Deno.test({
    name: `${backend}: 100 distinct names are held at once without colliding`,
    ignore,
    async fn() {
      await withBackends(adapter, 1, async (one) => {
        const names = Array.from({ length: 100 }, (_, i) => `collide-${i}`);
        const claims = await Promise.all(
          names.map((name) => one.tryAcquire(request(name))),
        );
        assert.equal(claims.filter(Boolean).length, names.length);
        await Promise.all(claims.map((claim) => claim?.release(0)));
      });
    },
  });

  Deno.test({
    name: `${backend}: fencing tokens increase across backends and guard time`,
    ignore,
    async fn() {
      const name = `fence-${crypto.randomUUID()}`;
      await withBackends(adapter, 2, async (a, b) => {
        const tokens: bigint[] = [];
        for (const each of [a, b, a, b]) {
          const claim = await each.tryAcquire(request(name));
          assert.ok(claim);
          tokens.push(claim.token);
          await claim.release(0);
        }
        assert.deepEqual(tokens, [1n, 2n, 3n, 4n]);
      });
    },
  });

  Deno.test({
    name: `${backend}: guard time outlives the holder's ${noun}, by the server`,
    ignore,
    async fn() {
      const name = `guard-${crypto.randomUUID()}`;
      await withBackends(adapter, 2, async (a, b) => {
        const claim = await a.tryAcquire(request(name, { guardMs: 1_500 }));
        assert.ok(claim);
        const started = performance.now();
        assert.equal(await adapter.killHolder(name), 1);
        await eventually(() => claim.lost!.aborted, 2_000, "lost");
        assert.equal(await b.tryAcquire(request(name)), undefined);
        let next: Claim | undefined;
        await eventually(
          async () => (next = await b.tryAcquire(request(name))) !== undefined,
          5_000,
          "the guard time to pass",
        );
        const waited = performance.now() - started;
        assert.ok(waited > 1_200, `waited ${waited} ms`);
        assert.equal(next!.token, claim.token + 1n);
        await next!.release(800);
        assert.equal(await a.tryAcquire(request(name)), undefined);
      });
    },
  });

  Deno.test({
    name: `${backend}: renew refuses a lock whose row another owner took`,
    ignore,
    async fn() {
      const name = `row-${crypto.randomUUID()}`;
      await withBackends(adapter, 1, async (a) => {
        const claim = await a.tryAcquire(request(name));
        assert.ok(claim);
        await adapter.stealRow(name);
        await assert.rejects(
          claim.renew(4_000, AbortSignal.timeout(2_000)),
          LockLostError,
        );
        await claim.release(0);
      });
    },
  });

  Deno.test({
    name: `${backend}: wait mode hands off at release, and cleans up on abort`,
    ignore,
    async fn() {
      const name = `wait-${crypto.randomUUID()}`;
      const before = await adapter.sessions();
      await withBackends(adapter, 2, async (a, b) => {
        const first = await acquire({
          backend: a,
          lock: name,
          ttl: 3,
          guardTime: 0,
        });
        const waiting = acquire({
          backend: b,
          lock: name,
          ttl: 3,
          guardTime: 0,
          waitTimeout: 10,
        });
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        const released = performance.now();
        await first.release();
        const second = await waiting;
        const handoff = performance.now() - released;
        console.log(`handoff ${handoff.toFixed(1)} ms`);
        assert.ok(handoff < 500, `handoff took ${handoff} ms`);
        assert.ok(second.token > first.token);

        const stop = new AbortController();
        const third = acquire({
          backend: a,
          lock: name,
          ttl: 3,
          guardTime: 0,
          waitTimeout: 30,
          signal: stop.signal,
        });
        await new Promise((resolve) => setTimeout(resolve, 500));
        const aborted = performance.now();
        stop.abort(new Error("stop waiting"));
        await assert.rejects(third, /stop waiting/);
        assert.ok(performance.now() - aborted < 200);
        await second.release();
      });
      await eventually(
        async () => (await adapter.sessions()) <= before,
        3_000,
        "every session to close",
      );
    },
  });
}
