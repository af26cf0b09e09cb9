/**
 * Shared SQL tests of a fleet in transition and of the operator's tables:
 * this release and the previous one exclude each other on a mutex, side by
 * side; the previous release's table is upgraded in place with its fencing
 * counter; a forced release keeps the rows, so tokens never go back; and
 * `check` says when this user may not write the tables.
 *
 * @module
 */

import { checkBackend, forceRelease } from "../../../src/operate.ts";
import { assert, assertEquals } from "../../helpers/assert.ts";
import { eventually } from "../../helpers/cli.ts";
import {
  fresh,
  request,
  serverTest,
  type SqlAdapter,
  withBackends,
} from "./adapter.ts";

/** Registers the interop tests for one SQL backend. */
export function interopTests(adapter: SqlAdapter): void {
  serverTest(
    adapter,
    "the previous release's holder keeps this one out, and this one's row keeps it out",
    async () => {
      const name = fresh("interop");
      await withBackends(adapter, 1, async (a) => {
        const old = await adapter.previous();
        const oldToken = await old.take(name);
        assert(oldToken !== undefined, "the previous release takes it");
        assertEquals(await a.tryAcquire(request(name)), undefined);
        await old.close();
        // Its stamp held the row for its guard time only (none here).
        const claim = await a.tryAcquire(request(name, { expiresInMs: 2_500 }));
        assert(claim, "free once the old holder's session ended");
        assert(claim.token > oldToken, "tokens go on from the old counter");
        await adapter.fixture!.killHolder(name);
        const contender = await adapter.previous();
        try {
          assertEquals(
            await contender.take(name),
            undefined,
            "the old release honours this release's lease row",
          );
          let token: bigint | undefined;
          await eventually(
            async () => (token = await contender.take(name)) !== undefined,
            5_000,
            "the lease to run out for the old release",
          );
          assert(token! > claim.token, "and its token is higher still");
        } finally {
          await contender.close();
        }
      });
    },
  );

  serverTest(
    adapter,
    "the previous release's table is upgraded in place, its counter kept",
    async () => {
      const name = fresh("upgrade");
      await adapter.other.makeOldTable(name, 41);
      await using backend = adapter.open(adapter.other.uri);
      const claim = await backend.tryAcquire(request(name));
      assertEquals(claim?.token, 42n, "the counter goes on");
      const columns = await adapter.other.columns();
      for (const column of ["node", "since", "token", "lim", "lim_until"]) {
        assert(columns.includes(column), `column ${column} added: ${columns}`);
      }
      await claim!.release(0);
      const old = await adapter.previous("other");
      try {
        assertEquals(await old.take(name), 43n, "the old release still works");
      } finally {
        await old.close();
      }
      // Limit 1 binds until its last lease has run out, or a forced release.
      await forceRelease(backend, name);
      const next = await backend.tryAcquire(request(name, { limit: 2 }));
      assertEquals(next?.token, 44n, "and so does a semaphore after it");
      await next!.release(0);
    },
  );

  serverTest(
    adapter,
    "a forced release keeps the rows: the next token is still higher",
    async () => {
      const name = fresh("keep");
      await withBackends(adapter, 1, async (a) => {
        const held = await a.tryAcquire(request(name, { limit: 2 }));
        const other = await a.tryAcquire(request(name, { limit: 2 }));
        assert(held && other);
        const removed = await forceRelease(a, name);
        assert(removed.length >= 2, JSON.stringify(removed));
        assert((await adapter.row(name)) !== undefined, "the row stays");
        await eventually(
          () => held.lost!.aborted && other.lost!.aborted,
          3_000,
          "both holders to lose their sessions",
        );
        const next = await a.tryAcquire(request(name, { limit: 2 }));
        assert(next && next.token > other.token, "a higher token");
        await next.release(0);
      });
    },
  );

  serverTest(
    adapter,
    "check says when this user may not write the tables",
    async () => {
      await using backend = adapter.open(adapter.powerlessUri);
      const results = await checkBackend(backend);
      const permissions = results.find((r) => r.name === "permissions");
      assertEquals(permissions?.status, "fail", JSON.stringify(results));
      assertEquals(
        results.find((r) => r.name === "credentials")?.status,
        "ok",
      );
    },
  );
}
