/**
 * What is particular to the ZooKeeper recipe, on the shared real server:
 * watches that wake one waiter (mutex and semaphore), slots taken in queue
 * order, parent clean-up, a waiter that gives up, digest ACLs, a deleted
 * entry, a lapsed claim, and coolock 0.1's layout.
 */

import { decodeRecord } from "../../../backends/zookeeper/keys.ts";
import { zookeeper } from "../../../backends/zookeeper/mod.ts";
import type { Backend, LockRequest } from "../../../src/backend.ts";
import { BackendUnavailableError } from "../../../src/errors.ts";
import { acquire } from "../../../src/lease.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "../../helpers/assert.ts";
import {
  admin,
  lockName,
  parentPath,
  queueOf,
  request,
  server,
  sleep,
  uriAt,
  withServer,
} from "./fixture.ts";

/** Queues `count` waiters behind the holders; resolves their wait loops. */
async function queueWaiters(
  backends: Backend[],
  lock: string,
  limit: number,
  stop: AbortSignal,
) {
  const requests: LockRequest[] = [];
  const woken: number[] = [];
  const waits: Promise<void>[] = [];
  for (const [i, backend] of backends.entries()) {
    const r = request(lock, { limit, wait: true, signal: stop });
    requests.push(r);
    assertEquals(await backend.tryAcquire(r), undefined, `waiter ${i} waits`);
    waits.push(
      backend.waitForChange!(r, stop).then(() => void woken.push(i), () => {}),
    );
  }
  return { requests, woken, waits };
}

Deno.test(
  "zookeeper: a release wakes only the next waiter (no herd)",
  withServer,
  async () => {
    const lock = lockName("herd");
    const backends = Array.from({ length: 4 }, () => zookeeper(uriAt()));
    const stop = new AbortController();
    try {
      const held = await backends[0].tryAcquire(request(lock));
      assert(held, "the holder");
      const { requests, woken, waits } = await queueWaiters(
        backends.slice(1),
        lock,
        1,
        stop.signal,
      );
      assertEquals((await queueOf(lock)).length, 4, "all four are queued");
      await sleep(300);
      assertEquals(woken, [], "nobody wakes while the holder holds");
      await held.release(0);
      await waits[0];
      await sleep(500);
      assertEquals(woken, [0], "only the holder's successor woke");
      const next = await backends[1].tryAcquire(requests[0]);
      assert(next, "the successor takes the lock");
      assertEquals(await backends[2].tryAcquire(requests[1]), undefined);
      // The same watch on the same predecessor: the earlier wait wakes too.
      const again = backends[2].waitForChange!(requests[1], stop.signal);
      await next.release(0);
      await again;
      await sleep(300);
      assertEquals(woken, [0, 1], "the third waiter still sleeps");
    } finally {
      stop.abort();
      await Promise.all(backends.map((b) => b.close()));
    }
  },
);

Deno.test(
  "zookeeper: a semaphore's release wakes the front of the queue, not the herd",
  withServer,
  async () => {
    const lock = lockName("herd2");
    const backends = Array.from({ length: 5 }, () => zookeeper(uriAt()));
    const stop = new AbortController();
    try {
      const holders = [
        await backends[0].tryAcquire(request(lock, { limit: 2 })),
        await backends[1].tryAcquire(request(lock, { limit: 2 })),
      ];
      assert(holders[0] && holders[1], "two holders");
      assertEquals(
        [holders[0].slot, holders[1].slot].sort(),
        [0, 1],
        "slots 0 and 1",
      );
      const { requests, woken, waits } = await queueWaiters(
        backends.slice(2),
        lock,
        2,
        stop.signal,
      );
      await sleep(300);
      assertEquals(woken, [], "nobody wakes while both hold");
      // The second holder (not the oldest entry) leaves first.
      await holders[1].release(0);
      await waits[0];
      const next = await backends[2].tryAcquire(requests[0]);
      assert(next, "the front waiter takes the freed slot");
      assertEquals(next.slot, holders[1].slot, "the slot that was freed");
      assert(next.token > holders[1].token, "a newer token");
      await sleep(500);
      // Its claim woke the one behind it (its entry's write), which now
      // watches the holders; the last one sleeps.
      assert(!woken.includes(2), `the last waiter slept: ${woken}`);
      assertEquals(await backends[3].tryAcquire(requests[1]), undefined);
      await next.release(0);
      await holders[0].release(0);
    } finally {
      stop.abort();
      await Promise.all(backends.map((b) => b.close()));
    }
  },
);

Deno.test(
  "zookeeper: entries take slots in queue order, so tokens grow with each acquisition",
  withServer,
  async () => {
    const lock = lockName("order");
    const backends = Array.from({ length: 4 }, () => zookeeper(uriAt()));
    try {
      const options = (i: number, extra = {}) => ({
        backend: backends[i],
        lock,
        limit: 2,
        ttl: 3,
        guardTime: 0,
        ...extra,
      });
      const first = await acquire(options(0));
      const guarded = await acquire(options(1, { guardTime: 1.5 }));
      const acquired: { i: number; token: bigint; at: number }[] = [];
      const waiter = (i: number) =>
        acquire(options(i, { waitTimeout: 20 })).then(async (lease) => {
          acquired.push({ i, token: lease.token, at: performance.now() });
          await sleep(2_500);
          await lease.release();
        });
      const third = waiter(2);
      while ((await queueOf(lock)).length < 3) await sleep(20);
      const fourth = waiter(3);
      while ((await queueOf(lock)).length < 4) await sleep(20);
      // The guarded slot is held for 1.5 s: the front waiter may hold but
      // finds no free slot, and the one behind it may not pass it.
      const releasedAt = performance.now();
      await guarded.release();
      await sleep(300);
      await first.release();
      await Promise.all([third, fourth]);
      assertEquals(acquired.map((a) => a.i), [2, 3], "in queue order");
      assert(acquired[0].token < acquired[1].token, "tokens in that order");
      assert(acquired[0].token > guarded.token, "newer than the holders'");
      assert(
        acquired[0].at - releasedAt < 1_000,
        "the front waiter took the slot freed without guard at once",
      );
      assert(
        acquired[1].at - releasedAt >= 1_400,
        "the second waited out the guard",
      );
    } finally {
      await Promise.all(backends.map((b) => b.close()));
    }
  },
);

Deno.test(
  "zookeeper: tries at once without waiting fill every slot, tokens in the order taken",
  withServer,
  async () => {
    const backends = Array.from({ length: 10 }, () => zookeeper(uriAt()));
    try {
      for (let round = 0; round < 5; round++) {
        const lock = lockName("burst");
        const taken: { token: bigint; at: number }[] = [];
        const claims = await Promise.all(
          backends.map((backend) =>
            backend.tryAcquire(request(lock, { limit: 3 })).then((claim) => {
              if (claim) {
                taken.push({ token: claim.token, at: performance.now() });
              }
              return claim;
            })
          ),
        );
        const held = claims.filter((claim) => claim !== undefined);
        assertEquals(held.length, 3, `round ${round}: three of ten hold`);
        assertEquals(held.map((c) => c.slot).sort(), [0, 1, 2]);
        const tokens = taken.map((t) => t.token);
        assertEquals(
          tokens,
          [...tokens].sort((a, b) => (a < b ? -1 : 1)),
          "tokens grow in the order the slots were taken",
        );
        assertEquals((await queueOf(lock)).length, 3, "the others left");
        await Promise.all(held.map((claim) => claim.release(0)));
      }
    } finally {
      await Promise.all(backends.map((b) => b.close()));
    }
  },
);

Deno.test(
  "zookeeper: empty lock parents are cleaned up, guarded ones kept",
  withServer,
  async () => {
    const lock = lockName("tidy");
    await using a = zookeeper(uriAt());
    await using b = zookeeper(uriAt());
    const parentExists = () => admin((c) => c.exists(parentPath(lock)));
    let claim = await a.tryAcquire(request(lock));
    assert(claim, "acquired");
    assert(await parentExists(), "the parent exists while held");
    await claim.release(0);
    assert(!(await parentExists()), "an unguarded release removes the parent");
    // A contender that finds the parent gone re-creates it.
    claim = await b.tryAcquire(request(lock));
    assert(claim, "acquired again after the parent went");
    const waiter = request(lock, { wait: true });
    assertEquals(await a.tryAcquire(waiter), undefined);
    await claim.release(0);
    assert(await parentExists(), "a queued waiter keeps the parent");
    const next = await a.tryAcquire(waiter);
    assert(next, "the waiter takes it");
    await next.release(0);
    assert(!(await parentExists()), "the last release removes the parent");
    const guarded = await a.tryAcquire(request(lock, { guardMs: 1_000 }));
    assert(guarded, "acquired with a guard");
    await guarded.release(800);
    assert(await parentExists(), "a release inside the guard keeps the parent");
    await sleep(1_100);
    const later = await b.tryAcquire(request(lock));
    assert(later, "free after the guard");
    await later.release(0);
    assert(!(await parentExists()), "removed once the guard has lapsed");
    // A semaphore's slot nodes go with it, lapsed guards too.
    const slots = [
      await a.tryAcquire(request(lock, { limit: 3, guardMs: 500 })),
      await b.tryAcquire(request(lock, { limit: 3 })),
    ];
    assert(slots[0] && slots[1], "two slots");
    await slots[0].release(300);
    await sleep(400);
    assert(await parentExists(), "kept while a slot is held");
    await slots[1].release(0);
    assert(!(await parentExists()), "a semaphore's nodes go once all are done");
  },
);

Deno.test(
  "zookeeper: a waiter that gives up leaves the queue",
  withServer,
  async () => {
    const lock = lockName("give-up");
    await using a = zookeeper(uriAt());
    await using b = zookeeper(uriAt());
    const held = await a.tryAcquire(request(lock));
    assert(held, "held");
    const stop = new AbortController();
    assertEquals(
      await b.tryAcquire(request(lock, { wait: true, signal: stop.signal })),
      undefined,
    );
    assertEquals((await queueOf(lock)).length, 2, "the waiter keeps its place");
    stop.abort();
    for (let i = 0; i < 50 && (await queueOf(lock)).length > 1; i++) {
      await sleep(20);
    }
    assertEquals((await queueOf(lock)).length, 1, "its entry went on abort");
    await held.release(0);
  },
);

Deno.test(
  "zookeeper: digest auth keeps lock nodes to their identity",
  withServer,
  async () => {
    const lock = lockName("acl");
    const port = server!.port;
    await using alice = zookeeper(`zookeeper://alice:pw1@127.0.0.1:${port}`);
    await using alice2 = zookeeper(`zookeeper://alice:pw1@127.0.0.1:${port}`);
    await using anonymous = zookeeper(uriAt());
    const claim = await alice.tryAcquire(request(lock));
    assert(claim, "alice holds it");
    assertEquals(await alice2.tryAcquire(request(lock)), undefined);
    const error = await assertRejects(
      () => anonymous.tryAcquire(request(lock)),
      BackendUnavailableError,
    );
    assertMatch(error.message, /NO_AUTH/);
    assert(!error.message.includes("pw1"), error.message);
    await claim.release(0);
  },
);

Deno.test(
  "zookeeper: the held entry's deletion aborts claim.lost at once",
  withServer,
  async () => {
    const lock = lockName("lost");
    await using a = zookeeper(uriAt());
    const claim = await a.tryAcquire(request(lock));
    assert(claim?.lost, "a claim with a lost signal");
    const [entry] = await queueOf(lock);
    const started = performance.now();
    await admin((c) => c.remove(`${parentPath(lock)}/${entry}`));
    while (!claim.lost.aborted && performance.now() - started < 3_000) {
      await sleep(5);
    }
    assert(claim.lost.aborted, "lost fired");
    assertMatch((claim.lost.reason as Error).message, /was deleted/);
    await claim.release(0);
  },
);

Deno.test(
  "zookeeper: an unrenewed claim lapses: its entry goes, its record runs out on the server's clock",
  withServer,
  async () => {
    const lock = lockName("lapse");
    await using a = zookeeper(uriAt());
    await using b = zookeeper(uriAt());
    const claim = await a.tryAcquire(request(lock, { expiresInMs: 2_000 }));
    assert(claim?.lost, "acquired");
    await sleep(1_000);
    await claim.renew(2_000, AbortSignal.timeout(5_000));
    const renewedAt = performance.now();
    await sleep(1_500);
    assert(!claim.lost.aborted, "a renewal extends the claim");
    assertEquals(await b.tryAcquire(request(lock)), undefined);
    while (!claim.lost.aborted) await sleep(20);
    assertMatch((claim.lost.reason as Error).message, /lapsed/);
    const next = await acquire({
      backend: b,
      lock,
      ttl: 3,
      guardTime: 0,
      waitTimeout: 5,
    });
    assert(
      performance.now() - renewedAt >= 1_900,
      "the record held until the lease's end",
    );
    await next.release();
    await claim.release(0);
  },
);

Deno.test(
  "zookeeper: coolock 0.1's layout still excludes: its holder, and its guard record",
  withServer,
  async () => {
    const lock = lockName("v01");
    const parent = parentPath(lock);
    const { CreateMode } = await import(
      "../../../backends/zookeeper/client.ts"
    ).then((m) => m.loadZooKeeper());
    await using backend = zookeeper(uriAt());
    await admin(async (a) => {
      await a.create("/coolock", new Uint8Array(), CreateMode.PERSISTENT)
        .catch(() => {});
      await a.create(parent, new Uint8Array(), CreateMode.PERSISTENT);
      // A 0.1 holder: an entry whose value is the bare owner, no record.
      const entry = await a.create(
        `${parent}/lock-`,
        new TextEncoder().encode("old-node:1:ab12"),
        CreateMode.EPHEMERAL_SEQUENTIAL,
      );
      assertEquals(
        await backend.tryAcquire(request(lock)),
        undefined,
        "the 0.1 holder holds",
      );
      const [status] = await backend.status!(lock, AbortSignal.timeout(5_000));
      assertEquals(status.holders.map((h) => h.owner), ["old-node:1:ab12"]);
      // It releases with guard time the 0.1 way: the record, then the entry.
      await a.setData(
        parent,
        new TextEncoder().encode(
          JSON.stringify({ owner: "old-node:1:ab12", guardMs: 1_500 }),
        ),
      );
      await a.remove(entry);
    });
    const releasedAt = performance.now();
    assertEquals(
      await backend.tryAcquire(request(lock)),
      undefined,
      "its guard record holds",
    );
    const lease = await acquire({
      backend,
      lock,
      ttl: 3,
      guardTime: 0,
      waitTimeout: 5,
    });
    assert(performance.now() - releasedAt >= 1_400, "after the 0.1 guard time");
    const record = decodeRecord(
      (await admin((a) => a.getData(parent))).data,
    );
    assertEquals(record?.owner, lease.owner, "the record is the new holder's");
    assertEquals(record?.leaseMs, 3_000, "with its lease");
    await lease.release();
  },
);
