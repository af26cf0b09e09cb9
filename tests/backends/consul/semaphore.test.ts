/**
 * The consul backend's semaphore (limit N > 1): Consul's documented recipe
 * (api/semaphore.go) under `coolock/<name>/`, with coolock's slots, its
 * per-slot lock-delay, and limit checks between a mutex and a semaphore of
 * one name. The generic limit cases are in the contract suite.
 */

import {
  consulKey,
  contenderKey,
  recordKey,
} from "../../../backends/consul/keys.ts";
import { LimitMismatchError } from "../../../src/backend.ts";
import { assert, assertEquals, assertRejects } from "../../helpers/assert.ts";
import { claimOf, request, sessionsOf, sleep, withBackend } from "./helpers.ts";

function valueOf(bytes: Uint8Array | null): unknown {
  return JSON.parse(new TextDecoder().decode(bytes!));
}

Deno.test("consul semaphore: a contender key per session and a .lock record with Limit and Holders, as api/semaphore.go; the record's ModifyIndex is the token", async () => {
  await withBackend({}, async (backend, fake) => {
    const first = await claimOf(backend, "sem", { limit: 3 });
    const second = await claimOf(backend, "sem", { limit: 3 });
    const sessions = [...sessionsOf(fake).keys()];
    assertEquals(sessions.length, 2);
    const record = fake.state.kv.get(recordKey("sem"))!;
    assertEquals(valueOf(record.Value), {
      Limit: 3,
      Holders: { [sessions[0]]: true, [sessions[1]]: true },
      Slots: { [sessions[0]]: 0, [sessions[1]]: 1 },
    });
    assertEquals([first.slot, second.slot], [0, 1]);
    assert(first.token < second.token, "tokens increase across slots");
    assertEquals(second.token, BigInt(record.ModifyIndex));
    for (const session of sessions) {
      const entry = fake.state.kv.get(contenderKey("sem", session))!;
      assertEquals(entry.Session, session, "each session holds its own key");
    }
    assertEquals(fake.state.kv.has(consulKey("sem")), false, "no mutex key");
    await first.release(0);
    const left = valueOf(fake.state.kv.get(recordKey("sem"))!.Value) as {
      Holders: Record<string, boolean>;
    };
    assertEquals(Object.keys(left.Holders), [sessions[1]]);
    await second.release(0);
    assertEquals(
      fake.state.kv.has(recordKey("sem")),
      false,
      "the last holder deletes the record",
    );
  });
});

Deno.test("consul semaphore: a mutex and a semaphore of one name in use refuse each other with LimitMismatchError", async () => {
  await withBackend({}, async (backend) => {
    const mutex = await claimOf(backend, "mixed");
    const error = await assertRejects(
      () => backend.tryAcquire(request("mixed", { limit: 3 })),
      LimitMismatchError,
    );
    assertEquals([error.limit, error.stored], [3, 1]);
    await mutex.release(0);
    const slot = await claimOf(backend, "mixed", { limit: 3 });
    const back = await assertRejects(
      () => backend.tryAcquire(request("mixed")),
      LimitMismatchError,
    );
    assertEquals([back.limit, back.stored], [1, 3]);
    const other = await assertRejects(
      () => backend.tryAcquire(request("mixed", { limit: 2 })),
      LimitMismatchError,
    );
    assertEquals([other.limit, other.stored], [2, 3]);
    await slot.release(0);
  });
});

Deno.test("consul semaphore: a dead holder keeps its slot for its lock-delay, then is pruned; a record of dead holders takes another limit", async () => {
  await withBackend({}, async (backend, fake) => {
    const first = await claimOf(backend, "pruned", {
      limit: 2,
      expiresInMs: 1_500,
    });
    const second = await claimOf(backend, "pruned", { limit: 2 });
    const victim = [...fake.state.kv.values()].find((e) =>
      e.Key.startsWith("coolock/pruned/") && e.Session &&
      e.ModifyIndex === Number(first.token)
    )!.Session!;
    fake.cluster.destroySession(victim);
    const destroyedAt = performance.now();
    assertEquals(
      await backend.tryAcquire(request("pruned", { limit: 2 })),
      undefined,
      "the dead holder's key is in its lock-delay",
    );
    let next;
    while (!next) {
      next = await backend.tryAcquire(request("pruned", { limit: 2 }));
      if (!next) await sleep(50);
    }
    const after = performance.now() - destroyedAt;
    assert(after >= 1_400 && after < 3_000, `pruned after ${after} ms`);
    assertEquals(next.slot, first.slot, "the dead holder's slot");
    await next.release(0);
    await second.release(0);
    await first.release(0);
    // A crashed holder alone in the record: once prunable, any limit may come.
    await claimOf(backend, "stale", { limit: 3, expiresInMs: 1_000 });
    const loneSession = [...fake.state.kv.values()].find((e) =>
      e.Key.startsWith("coolock/stale/") && e.Session
    )!.Session!;
    fake.cluster.destroySession(loneSession);
    await sleep(1_100);
    const taken = await claimOf(backend, "stale", { limit: 2 });
    const record = valueOf(fake.state.kv.get(recordKey("stale"))!.Value) as {
      Limit: number;
    };
    assertEquals(record.Limit, 2);
    await taken.release(0);
  });
});
