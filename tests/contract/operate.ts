/**
 * The operator's calls on every backend's real server: `status` (free, held,
 * guarded, slots, waiters, listing), `forceRelease` (a dead holder's lease,
 * a guard, a live holder that then loses and exits 75; tokens keep
 * increasing) and `check` (reachable, version, clock), with no secret in
 * any of it.
 *
 * @module
 */

import { BackendUnavailableError } from "../../src/errors.ts";
import { acquire } from "../../src/lease.ts";
import { checkBackend, forceRelease, lockStatus } from "../../src/operate.ts";
import { eventually } from "../helpers/cli.ts";
import {
  assert,
  assertEquals,
  cli,
  flags,
  leaseOptions,
  lines,
  lockName,
  type Register,
  sleep,
  spawn,
  tempDir,
} from "./common.ts";

/** Registers the operator cases for one backend. */
export function operate(test: Register, label: string): void {
  const needs = { operate: true };

  test(
    "status: a free lock has no holders; a held one names its holder",
    async (f) => {
      const lock = lockName(label, "status");
      await using a = f.open();
      const [free] = await lockStatus(a, lock);
      assertEquals(free.name, lock);
      assertEquals(free.holders.length, 0, "a free lock has no holders");
      const lease = await acquire(leaseOptions(f, a, lock));
      const [held] = await lockStatus(a, lock);
      assertEquals(held.holders.length, 1, "one holder");
      const [holder] = held.holders;
      assertEquals(holder.slot, 0);
      assertEquals(holder.state, "held");
      if (holder.node !== undefined) assertEquals(holder.node, "contract");
      if (holder.owner !== undefined) assertEquals(holder.owner, lease.owner);
      if (holder.token !== undefined) assertEquals(holder.token, lease.token);
      if (holder.since !== undefined) {
        const skew = Math.abs(holder.since.getTime() - Date.now());
        assert(skew < 10_000, `since is about now, not ${holder.since}`);
      }
      if (holder.leaseLeftMs !== undefined) {
        assert(
          holder.leaseLeftMs > 0 && holder.leaseLeftMs <= f.ttl * 1000 + 1_000,
          `lease left ${holder.leaseLeftMs} ms of a ${f.ttl} s TTL`,
        );
      }
      assert(
        holder.node !== undefined || holder.owner !== undefined,
        "status says who holds it",
      );
      await lease.release();
      const [after] = await lockStatus(a, lock);
      assertEquals(after.holders.length, 0, "free again after release");
    },
    needs,
  );

  test(
    "status: guard time after release shows as a guarded holder with the time left",
    async (f) => {
      const lock = lockName(label, "status-guard");
      await using a = f.open();
      const lease = await acquire(leaseOptions(f, a, lock, { guardTime: 20 }));
      await lease.release();
      const [status] = await lockStatus(a, lock);
      assertEquals(status.holders.length, 1, "the guard keeps a holder");
      const [holder] = status.holders;
      assertEquals(holder.state, "guard");
      if (holder.guardLeftMs !== undefined) {
        assert(
          holder.guardLeftMs > 10_000 && holder.guardLeftMs <= 21_000,
          `guard left ${holder.guardLeftMs} ms of 20 s`,
        );
      }
      await forceRelease(a, lock);
    },
    needs,
  );

  test(
    "status: slots of a semaphore, and waiters where the backend queues them",
    async (f) => {
      const lock = lockName(label, "status-slots");
      await using a = f.open();
      await using b = f.open();
      await using c = f.open();
      const first = await acquire(leaseOptions(f, a, lock, { limit: 2 }));
      const second = await acquire(leaseOptions(f, b, lock, { limit: 2 }));
      const waiter = acquire(
        leaseOptions(f, c, lock, { limit: 2, waitTimeout: 30 }),
      );
      await sleep(500);
      const [status] = await lockStatus(a, lock);
      assertEquals(
        status.holders.map((h) => h.slot).sort(),
        [first.slot, second.slot].sort(),
        "both slots are listed",
      );
      if (a.capabilities.storesLimit) assertEquals(status.limit, 2);
      if (a.capabilities.fairQueue) {
        assertEquals(status.waiting, 1, "one waiter queued");
      }
      await first.release();
      const third = await waiter;
      await third.release();
      await second.release();
    },
    needs,
  );

  test(
    "status without a name lists this lock among the backend's locks",
    async (f) => {
      const lock = lockName(label, "status-all");
      await using a = f.open();
      const lease = await acquire(leaseOptions(f, a, lock));
      const all = await lockStatus(a, undefined);
      const mine = all.find((s) => s.name === lock);
      assert(mine, `the list names '${lock}'`);
      assertEquals(mine.holders.length, 1);
      await lease.release();
    },
    { operate: true, listsLocks: true },
  );

  test(
    "forceRelease frees a dead holder's lock at once, and the next token is higher",
    async (f) => {
      const lock = lockName(label, "force-dead");
      const dir = await tempDir();
      const holder = spawn(f, [
        ...flags(f, lock, 60),
        "--shell",
        `echo "$COOLOCK_FENCING_TOKEN" > ${dir}/token; exec sleep 120`,
      ]);
      await eventually(
        async () => (await lines(`${dir}/token`)).length > 0,
        20_000,
        "the holder to start",
      );
      const [token] = (await lines(`${dir}/token`)).map(BigInt);
      holder.kill("SIGKILL");
      await holder.status;
      await sleep(1_000);
      await using a = f.open();
      const removed = await forceRelease(a, lock);
      assert(removed.length > 0, "forceRelease says what it removed");
      for (const removal of removed) {
        assert(removal.what !== "" && removal.detail !== "", "what and which");
      }
      const lease = await acquire(leaseOptions(f, a, lock, { waitTimeout: 3 }));
      assert(lease.token > token, `the next token ${lease.token} > ${token}`);
      await lease.release();
      assertEquals(
        await forceRelease(a, lock),
        [],
        "a free lock: nothing to remove",
      );
    },
    needs,
  );

  test(
    "forceRelease of a live holder: it loses at its next renewal, stops its job and exits 75",
    async (f) => {
      const lock = lockName(label, "force-live");
      const dir = await tempDir();
      const holder = spawn(f, [
        ...flags(f, lock, 0),
        "--shell",
        `echo "$$" > ${dir}/pid; exec sleep 120`,
      ]);
      await eventually(
        async () => (await lines(`${dir}/pid`)).length > 0,
        20_000,
        "the holder to start",
      );
      await using a = f.open();
      const releasedAt = performance.now();
      const removed = await forceRelease(a, lock);
      assert(removed.length > 0, "the live holder's lease was removed");
      const status = await holder.output();
      const ms = performance.now() - releasedAt;
      assertEquals(
        status.code,
        75,
        `the holder exits 75: ${new TextDecoder().decode(status.stderr)}`,
      );
      assert(
        ms <= f.ttl * 1000 + 2_000,
        `the holder noticed after ${ms.toFixed(0)} ms, over its next renewal`,
      );
      const next = await cli(f, [
        ...flags(f, lock, 0).slice(4),
        "--",
        "true",
      ]);
      assertEquals(next.code, 0, next.stderr);
    },
    needs,
  );

  test("forceRelease removes a guard record", async (f) => {
    const lock = lockName(label, "force-guard");
    await using a = f.open();
    const lease = await acquire(leaseOptions(f, a, lock, { guardTime: 60 }));
    await lease.release();
    const removed = await forceRelease(a, lock);
    assert(removed.length > 0, "the guard was removed");
    const next = await acquire(leaseOptions(f, a, lock, { waitTimeout: 3 }));
    assert(next.token > lease.token, "a higher token");
    await next.release();
  }, needs);

  test(
    "check: reachable with a round trip, the version, and the clock skew",
    async (f) => {
      await using a = f.open();
      const results = await checkBackend(a);
      const names = results.map((r) => r.name);
      for (const name of ["reachable", "version", "clock"]) {
        assert(names.includes(name), `check reports '${name}': ${names}`);
      }
      const failed = results.filter((r) => r.status === "fail");
      assertEquals(failed, [], "nothing fails on a healthy server");
      const reachable = results.find((r) => r.name === "reachable")!;
      if (f.server) {
        assert(
          typeof reachable.ms === "number" && reachable.ms >= 0,
          "the round trip is measured",
        );
      }
      for (const result of results) {
        assert(
          result.detail !== "" && !result.detail.includes("\n"),
          "one line of detail",
        );
      }
    },
    needs,
  );

  test(
    "check and status on an unreachable server: BackendUnavailableError",
    async (f) => {
      await using down = f.open(f.unreachableUri);
      const error = await checkBackend(down, { timeout: 10 }).then(
        (results) =>
          results.some((r) => r.status === "fail") ? "failed" : results,
        (e) => e,
      );
      assert(
        error === "failed" || error instanceof BackendUnavailableError,
        `unavailable, or a failed check: ${JSON.stringify(error)}`,
      );
      const status = await lockStatus(down, "x", { timeout: 10 }).then(
        () => "answered",
        (e) => e,
      );
      assert(
        status instanceof BackendUnavailableError,
        `status on an unreachable server: ${status}`,
      );
    },
    { operate: true, server: true },
  );

  test("status and check never show the backend's secret", async (f) => {
    const secret = `S3cr3t-${crypto.randomUUID().slice(0, 8)}`;
    let backend;
    try {
      backend = f.open(f.uriWithSecret!(secret));
    } catch (error) {
      assert(!String(error).includes(secret), "a rejected URI hides it");
      return;
    }
    await using _ = backend;
    const outputs = await Promise.all([
      lockStatus(backend, lockName(label, "secret")).then(
        (s) =>
          JSON.stringify(s, (_k, v) => typeof v === "bigint" ? String(v) : v),
        (e) => `${e?.message} ${e?.stack}`,
      ),
      checkBackend(backend).then(
        (r) => JSON.stringify(r),
        (e) => `${e?.message} ${e?.stack}`,
      ),
    ]);
    for (const text of outputs) {
      assert(!text.includes(secret), `the secret leaked: ${text}`);
    }
  }, { operate: true, credentials: true });
}
