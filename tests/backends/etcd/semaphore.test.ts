/**
 * The etcd semaphore's own promises, on a real etcd: slot keys and values
 * as documented, slots unique under a crowd of simultaneous new holders
 * and reused lowest-first, a left-over slot key taken over, a waiter woken
 * by a watch when a holder leaves out of arrival order (and the next waiter
 * when the first comes to hold), and a stored limit that refuses another
 * one without leaving a key behind.
 */

import type { Backend, Claim } from "../../../src/backend.ts";
import { LimitMismatchError } from "../../../src/errors.ts";
import { acquire, type Lease } from "../../../src/lease.ts";
import { assert, assertEquals, assertRejects } from "../../helpers/assert.ts";
import {
  etcdGrant,
  etcdKeys,
  etcdLeaseTtl,
  etcdPut,
} from "../../helpers/servers/etcd.ts";
import {
  entriesOf,
  FACTORIES,
  lockName,
  prefixOf,
  request,
  server,
  sleep,
  uriOf,
  withServer,
} from "./fixture.ts";

const open = (): Backend => FACTORIES.etcd(uriOf("etcd"));

Deno.test(
  "etcd semaphore: slot keys and values as documented",
  withServer,
  async () => {
    const name = lockName("sem-layout");
    const prefix = prefixOf(name);
    await using backend = open();
    const claims: Claim[] = [];
    for (let i = 0; i < 3; i++) {
      const claim = await backend.tryAcquire(request(name, { limit: 3 }));
      assert(claim, `holder ${i}`);
      claims.push(claim);
    }
    assertEquals(claims.map((c) => c.slot), [0, 1, 2]);
    const keys = await etcdKeys(server!.port, prefix);
    const entries = keys.filter((k) =>
      /^[0-9a-f]+$/.test(k.key.slice(prefix.length))
    );
    const slots = keys.filter((k) => k.key.startsWith(`${prefix}slot/`));
    assertEquals(entries.length, 3);
    assertEquals(
      slots.map((k) => k.key).sort(),
      [0, 1, 2].map((k) => `${prefix}slot/${k}`),
    );
    for (const slot of slots) {
      const entry = entries.find((e) => e.key === slot.value);
      assert(entry, `slot key ${slot.key} names its holder's entry`);
      assertEquals(slot.lease, entry.lease, "on the holder's lease");
      assertEquals(
        `${prefix}slot/${JSON.parse(entry.value).slot}`,
        slot.key,
        "the entry's value names its slot",
      );
      assertEquals(JSON.parse(entry.value).limit, 3);
    }
    assertEquals(
      await backend.tryAcquire(request(name, { limit: 3 })),
      undefined,
    );
    await claims[1].release(0);
    const left = await etcdKeys(server!.port, prefix);
    assertEquals(left.length, 4, "the released entry and its slot key went");
    for (const claim of claims) await claim.release(0);
    assertEquals(await etcdKeys(server!.port, prefix), []);
  },
);

Deno.test(
  "etcd semaphore: simultaneous new holders never share a slot; freed slots are reused lowest first",
  withServer,
  async () => {
    const name = lockName("sem-crowd");
    const backends = Array.from({ length: 4 }, open);
    try {
      for (let round = 0; round < 3; round++) {
        const results = await Promise.all(
          Array.from(
            { length: 16 },
            (_, i) =>
              backends[i % backends.length].tryAcquire(
                request(name, { limit: 5 }),
              ),
          ),
        );
        const held = results.filter((c): c is Claim => c !== undefined);
        assertEquals(held.length, 5, "exactly 5 of 16 hold");
        assertEquals(held.map((c) => c.slot).sort(), [0, 1, 2, 3, 4]);
        // Free two slots out of order; the next two holders take them.
        const bySlot = new Map(held.map((c) => [c.slot, c]));
        await bySlot.get(3)!.release(0);
        await bySlot.get(1)!.release(0);
        const next = await Promise.all([
          backends[0].tryAcquire(request(name, { limit: 5 })),
          backends[1].tryAcquire(request(name, { limit: 5 })),
        ]);
        assertEquals(next.map((c) => c?.slot).sort(), [1, 3]);
        for (const claim of [...held, ...next]) await claim?.release(0);
        assertEquals(await entriesOf(name), [], "nothing left");
      }
    } finally {
      for (const backend of backends) await backend.close();
    }
  },
);

Deno.test(
  "etcd semaphore: a left-over slot key whose entry is gone is taken over",
  withServer,
  async () => {
    const name = lockName("sem-leftover");
    const prefix = prefixOf(name);
    // A slot key without its entry: deleted alone, out of band.
    await etcdPut(server!.port, `${prefix}slot/0`, `${prefix}deadbeef`);
    await using backend = open();
    const claim = await backend.tryAcquire(request(name, { limit: 2 }));
    assert(claim, "acquired");
    assertEquals(claim.slot, 0, "slot 0 was free in truth");
    const [slot] = (await etcdKeys(server!.port, prefix)).filter((k) =>
      k.key === `${prefix}slot/0`
    );
    assert(slot.value !== `${prefix}deadbeef`, "now the holder's");
    assert(slot.lease !== "0", "on the holder's lease");
    await claim.release(0);
    assertEquals(await etcdKeys(server!.port, prefix), []);
  },
);

for (const scheme of ["etcd", "etcd3"] as const) {
  Deno.test(
    `${scheme} semaphore: a holder leaving out of arrival order wakes the lowest waiter, and that one's successor, by watch`,
    withServer,
    async () => {
      const name = lockName(`${scheme}-sem-wake`);
      const backends = Array.from(
        { length: 5 },
        () => FACTORIES[scheme](uriOf(scheme)),
      );
      try {
        const holders: Lease[] = [];
        for (let i = 0; i < 3; i++) {
          holders.push(
            await acquire({
              backend: backends[i],
              lock: name,
              limit: 3,
              ttl: 5,
              guardTime: 0,
            }),
          );
        }
        const got: Array<{ slot: number; at: number; lease: Lease }> = [];
        const waiters = [3, 4].map(async (i) => {
          const lease = await acquire({
            backend: backends[i],
            lock: name,
            limit: 3,
            ttl: 5,
            guardTime: 0,
            waitTimeout: 30,
          });
          got.push({ slot: lease.slot, at: performance.now(), lease });
        });
        // Queued, and past the lifecycle's first poll steps (up to 500 ms
        // apart), so that only a watch can hand over quickly.
        await sleep(2_500);
        let releasedAt = performance.now();
        await holders[1].release();
        while (got.length < 1) await sleep(5);
        const first = got[0].at - releasedAt;
        assertEquals(got[0].slot, holders[1].slot, "the freed slot");
        await sleep(2_500);
        releasedAt = performance.now();
        await holders[2].release();
        await Promise.all(waiters);
        const second = got[1].at - releasedAt;
        assertEquals(got[1].slot, holders[2].slot);
        console.log(
          `${scheme} semaphore: out-of-order handoffs ${first.toFixed(1)} ms, ${
            second.toFixed(1)
          } ms`,
        );
        assert(first < 300, `the lowest waiter took ${first.toFixed(0)} ms`);
        assert(second < 300, `the next waiter took ${second.toFixed(0)} ms`);
        for (const lease of [...holders, ...got.map((g) => g.lease)]) {
          await lease.release();
        }
      } finally {
        for (const backend of backends) await backend.close();
      }
    },
  );
}

Deno.test(
  "etcd semaphore: another limit is refused and leaves no key; a previous release's entry counts as limit 1",
  withServer,
  async () => {
    const name = lockName("sem-mismatch");
    await using a = open();
    await using b = open();
    const held = await a.tryAcquire(request(name, { limit: 3 }));
    assert(held, "acquired with limit 3");
    for (const [limit, wait] of [[2, false], [2, true], [1, false]] as const) {
      const error = await assertRejects(
        () => b.tryAcquire(request(name, { limit, wait })),
        LimitMismatchError,
      );
      assertEquals([error.limit, error.stored], [limit, 3]);
    }
    await sleep(100);
    assertEquals((await entriesOf(name)).length, 1, "no key left behind");
    await held.release(0);

    const old = lockName("sem-previous");
    const lease = await etcdGrant(server!.port, 30);
    await etcdPut(
      server!.port,
      `${prefixOf(old)}${BigInt(lease).toString(16)}`,
      "old-node:1:abc",
      lease,
    );
    const error = await assertRejects(
      () => b.tryAcquire(request(old, { limit: 2 })),
      LimitMismatchError,
    );
    assertEquals(error.stored, 1);
    assert(await etcdLeaseTtl(server!.port, lease) > 0, "the old one stays");
    await b.forceRelease!(old, AbortSignal.timeout(5_000));
  },
);
