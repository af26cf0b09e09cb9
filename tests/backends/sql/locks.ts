/**
 * Shared SQL tests of the lock and its rows: names as data in one table,
 * keys that don't collide, the lease row renewed by the server's clock,
 * durations up to 366 days, the row's owner, the stored limit, and waiting
 * sessions that end.
 *
 * @module
 */

import type { Claim } from "../../../src/backend.ts";
import { LimitMismatchError, LockLostError } from "../../../src/errors.ts";
import { acquire } from "../../../src/lease.ts";
import { forceRelease } from "../../../src/operate.ts";
import { assert, assertEquals, assertRejects } from "../../helpers/assert.ts";
import { eventually, runCli } from "../../helpers/cli.ts";
import {
  fresh,
  request,
  serverTest,
  sleep,
  type SqlAdapter,
  withBackends,
} from "./adapter.ts";

const NAMES = [
  "it's; DROP TABLE coolock_locks; --",
  'say "hi"',
  "naïve/ünïcödé ☃ 🚀",
  "%s%n\\'",
  "\\'; SELECT 1; --",
  "Case",
  "case",
  "a:1",
  "a".repeat(200),
  "a".repeat(199) + "b",
];

const DAY_MS = 86_400_000;

/** Registers the lock tests for one SQL backend. */
export function lockTests(adapter: SqlAdapter): void {
  serverTest(
    adapter,
    "names with quotes, backslashes, case and emoji are only data, in one table",
    async () => {
      await withBackends(adapter, 2, async (a, b) => {
        const claims: Claim[] = [];
        for (const name of NAMES) {
          const claim = await a.tryAcquire(request(name));
          assert(claim, `first owner takes ${name}`);
          assertEquals(await b.tryAcquire(request(name)), undefined, name);
          claims.push(claim);
        }
        // Slot 1 of "a" is not the lock "a:1".
        const semaphore = await b.tryAcquire(request("a", { limit: 2 }));
        assertEquals(semaphore?.slot, 0, "slot 0 of 'a' is free");
        const second = await b.tryAcquire(request("a", { limit: 2 }));
        assertEquals(second?.slot, 1, "and so is slot 1, though 'a:1' is held");
        await Promise.all(
          [...claims, semaphore!, second!].map((claim) => claim.release(0)),
        );
      });
      assertEquals(await adapter.tables(), 1);
      assertEquals(await adapter.rows(NAMES), NAMES.length);
    },
  );

  serverTest(
    adapter,
    "100 distinct names are held at once without colliding",
    async () => {
      await withBackends(adapter, 1, async (one) => {
        const names = Array.from({ length: 100 }, (_, i) => fresh(`n${i}`));
        const claims = await Promise.all(
          names.map((name) => one.tryAcquire(request(name))),
        );
        assertEquals(claims.filter(Boolean).length, names.length);
        await Promise.all(claims.map((claim) => claim?.release(0)));
      });
    },
  );

  serverTest(
    adapter,
    "the row's lease is renewed by the server's clock, and a release ends it",
    async () => {
      const name = fresh("lease");
      await withBackends(adapter, 1, async (a) => {
        const claim = await a.tryAcquire(request(name, { expiresInMs: 3_000 }));
        assert(claim);
        const first = (await adapter.leftMs(name))!;
        assert(first > 2_000 && first <= 3_000, `lease left ${first} ms`);
        await claim.renew(60_000, AbortSignal.timeout(5_000));
        const renewed = (await adapter.leftMs(name))!;
        assert(renewed > 55_000, `renewed lease left ${renewed} ms`);
        await claim.release(0);
        const released = (await adapter.leftMs(name))!;
        assert(released <= 0, `a release ends the lease: ${released} ms`);
      });
    },
  );

  serverTest(
    adapter,
    "leases and guard times up to 366 days work, by the server's clock",
    async () => {
      await withBackends(adapter, 2, async (a, b) => {
        for (
          const [expiresInMs, guardMs] of [[366 * DAY_MS, 0], [
            30_000,
            25 * DAY_MS,
          ]]
        ) {
          const name = fresh("long");
          const claim = await a.tryAcquire(
            request(name, { expiresInMs, guardMs }),
          );
          assert(claim, `a ${expiresInMs} ms lease with ${guardMs} ms guard`);
          const left = (await adapter.leftMs(name))!;
          const want = Math.max(expiresInMs, guardMs);
          assert(
            Math.abs(left - want) < 60_000,
            `the row holds ${left} ms, not ${want}`,
          );
          await claim.renew(want, AbortSignal.timeout(5_000));
          assertEquals(await b.tryAcquire(request(name)), undefined);
          await claim.release(guardMs);
          if (guardMs > 0) {
            assertEquals(await b.tryAcquire(request(name)), undefined);
            await forceRelease(b, name);
          }
        }
      });
      // The CLI with the guard time of issue 13: it runs, and exits 0.
      const name = fresh("g600h");
      const run = await runCli([
        "--log-file",
        "-",
        "-b",
        adapter.fixture!.uri,
        "-l",
        name,
        "-g",
        "600h",
        "--",
        "true",
      ], { env: adapter.fixture!.env });
      assertEquals(run.code, 0, run.stderr);
      const left = (await adapter.leftMs(name))!;
      assert(left > 599 * 3_600_000, `guard time left ${left} ms`);
      await using c = adapter.fixture!.open();
      await forceRelease(c, name);
    },
  );

  serverTest(
    adapter,
    "renew refuses a lock whose row another owner took",
    async () => {
      const name = fresh("row");
      await withBackends(adapter, 1, async (a) => {
        const claim = await a.tryAcquire(request(name));
        assert(claim);
        await adapter.stealRow(name);
        await assertRejects(
          () => claim.renew(4_000, AbortSignal.timeout(2_000)),
          LockLostError,
        );
        await claim.release(0);
      });
    },
  );

  serverTest(
    adapter,
    "the stored limit binds until the leases given under it have run out, or a forced release",
    async () => {
      const name = fresh("limit");
      await withBackends(adapter, 2, async (a, b) => {
        const three = { limit: 3, expiresInMs: 2_000 };
        const claim = await a.tryAcquire(request(name, three));
        assert(claim);
        assertEquals((await adapter.row(name))?.lim, 3);
        await claim.release(0);
        // Released, but a lease given under limit 3 may still live elsewhere.
        const early = await b.tryAcquire(request(name, { limit: 2 })).then(
          (c) => c,
          (e) => e,
        );
        assert(early instanceof LimitMismatchError, `mismatch: ${early}`);
        await eventually(
          async () => {
            const next = await b.tryAcquire(request(name, { limit: 2 }))
              .catch(() => undefined);
            await next?.release(0);
            return next !== undefined;
          },
          5_000,
          "limit 2 to be accepted once limit 3's leases ran out",
        );
        const again = await a.tryAcquire(request(name, three))
          .then((c) => c, (e) => e);
        assert(again instanceof LimitMismatchError, `now 2 binds: ${again}`);
        await forceRelease(a, name);
        const after = await a.tryAcquire(request(name, three));
        assert(after, "a forced release forgets the limit");
        await after.release(0);
      });
    },
  );

  serverTest(
    adapter,
    "waiting sessions end after the handoff and on abort",
    async () => {
      const name = fresh("wait");
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
        await sleep(1_000);
        await first.release();
        const second = await waiting;
        const stop = new AbortController();
        const third = acquire({
          backend: a,
          lock: name,
          ttl: 3,
          guardTime: 0,
          waitTimeout: 30,
          signal: stop.signal,
        });
        await sleep(500);
        const aborted = performance.now();
        stop.abort(new Error("stop waiting"));
        await assertRejects(() => third);
        assert(performance.now() - aborted < 200, "the wait ends at once");
        await second.release();
      });
      await eventually(
        async () => (await adapter.sessions()) <= before,
        3_000,
        "every session to close",
      );
    },
  );
}
