/**
 * The lock lifecycle (src/lease.ts) on a scripted in-memory backend: renew
 * failures, slow renewals, refused renewals, late claims, deadlines, guard
 * time on release, waiting, slots and the close() rule — in milliseconds.
 */

import { LockHeldError, LockLostError } from "../../src/errors.ts";
import { acquire } from "../../src/lease.ts";
import { withLock } from "../../src/with_lock.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "../helpers/assert.ts";
import { MemoryBackend } from "../helpers/memory_backend.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let unique = 0;
const name = (tag: string) => `${tag}-${unique++}`;

Deno.test("lease: renewals every third of the TTL keep the lock past its TTL", async () => {
  await using backend = new MemoryBackend();
  const lease = await acquire({
    backend,
    lock: name("renew"),
    ttl: 0.3,
    guardTime: 0,
    safetyMargin: 0.05,
  });
  await sleep(800);
  assert(!lease.signal.aborted, `lost: ${lease.signal.reason}`);
  const renewals = backend.calls.filter((c) => c.op === "renew");
  assert(
    renewals.length >= 5,
    `${renewals.length} renewals in 0.8 s of a 0.3 s TTL`,
  );
  await lease.release();
});

Deno.test("lease: a failed renewal is retried, and the lock survives it", async () => {
  await using backend = new MemoryBackend();
  const lease = await acquire({
    backend,
    lock: name("retry"),
    ttl: 0.6,
    guardTime: 0,
  });
  backend.script.failRenewals = 2;
  const messages: string[] = [];
  await sleep(900);
  assert(!lease.signal.aborted, `lost: ${lease.signal.reason}`);
  await lease.release();
  assertEquals(backend.script.failRenewals, 0, "both failures were retried");
  void messages;
});

Deno.test("lease: a refused renewal aborts the signal with the backend's own cause, logged once", async () => {
  await using backend = new MemoryBackend();
  const logged: string[] = [];
  const lease = await acquire({
    backend,
    lock: name("refused"),
    ttl: 0.3,
    guardTime: 0,
    safetyMargin: 0.05,
    log: (level, message) => level === "error" && logged.push(message),
  });
  backend.script.refuseRenewal = true;
  await sleep(250);
  assert(lease.signal.aborted, "the lease is lost");
  const reason = lease.signal.reason as LockLostError;
  assert(reason instanceof LockLostError, "its reason is a LockLostError");
  assertMatch(reason.message, /the test backend refused it/);
  assertEquals(logged.length, 1, `logged once: ${logged}`);
});

Deno.test("lease: the backend's lost signal aborts the lease with its reason", async () => {
  await using backend = new MemoryBackend();
  const lock = name("lost");
  const lease = await acquire({ backend, lock, ttl: 5, guardTime: 0 });
  backend.claimOf(lock)!.lose("its key was deleted");
  assert(lease.signal.aborted, "aborted at once");
  assertMatch((lease.signal.reason as Error).message, /its key was deleted/);
  await lease.release();
});

Deno.test("lease: renewals that never answer lose the lock at the local deadline, before the TTL", async () => {
  await using backend = new MemoryBackend();
  const lock = name("slow");
  const deadlines: number[] = [];
  const started = performance.now();
  const lease = await acquire({
    backend,
    lock,
    ttl: 0.5,
    guardTime: 0,
    safetyMargin: 0.1,
    onDeadline: (deadline) => deadlines.push(deadline),
  });
  backend.script.renewMs = 10_000;
  while (!lease.signal.aborted) await sleep(5);
  const lostAfter = performance.now() - started;
  assert(
    lostAfter >= 350 && lostAfter < 500,
    `lost after ${lostAfter.toFixed(0)} ms: TTL 500 − margin 100`,
  );
  assertMatch(
    (lease.signal.reason as Error).message,
    /no renewal was confirmed within 0.4 s/,
  );
  assertEquals(deadlines.length, 1, "one deadline: no renewal confirmed it");
  assert(deadlines[0] - started <= 400 + 5, "the deadline is TTL − margin");
  await lease.release();
});

Deno.test("lease: onDeadline moves forward with each confirmed renewal", async () => {
  await using backend = new MemoryBackend();
  const deadlines: number[] = [];
  const lease = await acquire({
    backend,
    lock: name("deadline"),
    ttl: 0.3,
    guardTime: 0,
    safetyMargin: 0.05,
    onDeadline: (deadline) => deadlines.push(deadline),
  });
  await sleep(450);
  await lease.release();
  assert(deadlines.length >= 3, `${deadlines.length} deadlines`);
  for (let i = 1; i < deadlines.length; i++) {
    assert(deadlines[i] > deadlines[i - 1], "each deadline is later");
  }
});

Deno.test("lease: a claim that arrives after the caller gave up is released", async () => {
  await using backend = new MemoryBackend();
  const lock = name("late");
  backend.script.acquireMs = 200;
  await assertRejects(() =>
    acquire({ backend, lock, ttl: 5, guardTime: 0, operationTimeout: 0.05 })
  );
  await sleep(250);
  const releases = backend.calls.filter((c) => c.op === "release");
  assertEquals(releases.length, 1, "the late claim was given back");
  assertEquals(releases[0].ms, 0, "without guard time");
  backend.script.acquireMs = 0;
  const next = await acquire({ backend, lock, ttl: 5, guardTime: 0 });
  await next.release();
});

Deno.test("lease: release keeps what is left of the guard time; { guard: false } drops it", async () => {
  await using backend = new MemoryBackend();
  const a = await acquire({
    backend,
    lock: name("guard"),
    ttl: 5,
    guardTime: 1,
  });
  await sleep(300);
  await a.release();
  const kept = backend.calls.filter((c) => c.op === "release").at(-1)!;
  assert(kept.ms! > 600 && kept.ms! <= 700, `held ${kept.ms} ms more`);
  const b = await acquire({
    backend,
    lock: name("guard"),
    ttl: 5,
    guardTime: 1,
  });
  await b.release({ guard: false });
  const dropped = backend.calls.filter((c) => c.op === "release").at(-1)!;
  assertEquals(dropped.ms, 0, "no guard time");
});

Deno.test("lease: a waiter is woken by the release and gets the lock, with a newer token", async () => {
  await using backend = new MemoryBackend();
  const lock = name("wait");
  const held = await acquire({ backend, lock, ttl: 5, guardTime: 0 });
  const waiter = acquire({
    backend,
    lock,
    ttl: 5,
    guardTime: 0,
    waitTimeout: 5,
  });
  await sleep(50);
  const releasedAt = performance.now();
  await held.release();
  const next = await waiter;
  const ms = performance.now() - releasedAt;
  assert(ms < 20, `woken after ${ms.toFixed(1)} ms`);
  assert(next.token > held.token, "a newer token");
  await next.release();
});

Deno.test("lease: the wait times out with LockHeldError(waited), and a signal aborts it at once", async () => {
  await using backend = new MemoryBackend();
  const lock = name("timeout");
  const held = await acquire({ backend, lock, ttl: 5, guardTime: 0 });
  const error = await assertRejects(
    () => acquire({ backend, lock, ttl: 5, guardTime: 0, waitTimeout: 0.2 }),
    LockHeldError,
  );
  assert(error.waited, "it waited");
  const stop = new AbortController();
  const waiting = acquire({
    backend,
    lock,
    ttl: 5,
    guardTime: 0,
    waitTimeout: 60,
    signal: stop.signal,
  });
  await sleep(30);
  const abortedAt = performance.now();
  stop.abort(new Error("enough"));
  const reason = await assertRejects(() => waiting);
  assertMatch(reason.message, /enough/);
  assert(performance.now() - abortedAt < 20, "aborted at once");
  await held.release();
});

Deno.test("lease: slots of a semaphore, and JSON for leases and results", async () => {
  await using backend = new MemoryBackend();
  const lock = name("slots");
  const a = await acquire({ backend, lock, ttl: 5, guardTime: 0, limit: 2 });
  const b = await acquire({ backend, lock, ttl: 5, guardTime: 0, limit: 2 });
  assertEquals([a.slot, b.slot], [0, 1]);
  await assertRejects(
    () => acquire({ backend, lock, ttl: 5, guardTime: 0, limit: 2 }),
    LockHeldError,
  );
  const json = JSON.parse(JSON.stringify(a));
  assertEquals([json.slot, json.token], [0, String(a.token)]);
  await a.release();
  await b.release();
  const result = await withLock(
    { backend, lock, ttl: 5, guardTime: 0 },
    () => "done",
  );
  const parsed = JSON.parse(JSON.stringify(result));
  assertEquals(parsed.acquired, true);
  assertEquals(typeof parsed.token, "string");
});

Deno.test("lease: a TTL past setTimeout's 24.8 days neither fires at once nor warns", async () => {
  await using backend = new MemoryBackend();
  const lease = await acquire({
    backend,
    lock: name("long"),
    ttl: 40 * 86_400,
    guardTime: 0,
  });
  await sleep(100);
  assert(!lease.signal.aborted, `lost: ${lease.signal.reason}`);
  await lease.release();
});

Deno.test("lease: options are checked: limit, durations up to 366 days", async () => {
  const backend = new MemoryBackend();
  for (
    const bad of [
      { limit: 0 },
      { limit: 1.5 },
      { ttl: 367 * 86_400 },
      { guardTime: -1 },
      { waitTimeout: Number.NaN },
    ]
  ) {
    await assertRejects(() => acquire({ backend, lock: "x", ...bad }));
  }
});

Deno.test("close(): a claim inside its guard time stays held until the guard ends", async () => {
  const backend = new MemoryBackend();
  const lock = name("close");
  await acquire({ backend, lock, ttl: 5, guardTime: 0.4 });
  await backend.close();
  const release = backend.calls.find((c) => c.op === "release")!;
  assert(release.ms! > 300 && release.ms! <= 400, `held ${release.ms} ms`);
  await assertRejects(
    () => acquire({ backend, lock, ttl: 5, guardTime: 0 }),
    LockHeldError,
  );
  await sleep(450);
  const next = await acquire({ backend, lock, ttl: 5, guardTime: 0 });
  await next.release();
});

Deno.test("lease: a renewal confirmed only after the deadline (a stalled process) is a loss", async () => {
  await using backend = new MemoryBackend();
  const gate = Promise.withResolvers<void>();
  backend.script.renewGate = gate.promise;
  const lease = await acquire({
    backend,
    lock: name("stalled"),
    ttl: 0.3,
    guardTime: 0,
    safetyMargin: 0.05,
  });
  await sleep(150);
  // The first renewal is in flight; the event loop stalls past the deadline
  // (250 ms) but not past the one this renewal would set (350 ms), and the
  // renewal's answer is the first thing it sees after.
  const until = performance.now() + 150;
  while (performance.now() < until) { /* stalled */ }
  gate.resolve();
  await Promise.resolve();
  await sleep(20);
  assert(lease.signal.aborted, "a late confirmation does not revive the lease");
  assertMatch(
    (lease.signal.reason as Error).message,
    /no renewal was confirmed/,
  );
  await lease.release();
});
