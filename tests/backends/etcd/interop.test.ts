/**
 * The `etcd` (JSON gateway) and `etcd3` (gRPC) backends share one key
 * layout and value format, so a lock taken through one excludes the other,
 * queues and slots mix, and fencing tokens keep increasing across both. A
 * mutex keeps the layout of the releases before the semaphore, so that a
 * node not yet upgraded and an upgraded one still exclude each other.
 */

import type { Backend } from "../../../src/backend.ts";
import { LockHeldError } from "../../../src/errors.ts";
import { acquire, type Lease } from "../../../src/lease.ts";
import { lockStatus } from "../../../src/operate.ts";
import { assert, assertEquals, assertRejects } from "../../helpers/assert.ts";
import { etcdGrant, etcdKeys, etcdPut } from "../../helpers/servers/etcd.ts";
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

function pair(): [Backend, Backend] {
  return [FACTORIES.etcd(uriOf("etcd")), FACTORIES.etcd3(uriOf("etcd3"))];
}

const options = (
  backend: Backend,
  lock: string,
  waitTimeout = 0,
  limit = 1,
) => ({ backend, lock, ttl: 2, guardTime: 0, waitTimeout, limit });

// Loading gRPC evaluates a lot of code at once, which can stall this
// process's event loop, renewals included, for longer than a 2 s TTL on a
// loaded machine. Load it before any lease of these tests is running.
if (server) {
  await using warm = FACTORIES.etcd3(uriOf("etcd3"));
  await (await acquire(options(warm, lockName("warm-up")))).release();
}

Deno.test(
  "etcd and etcd3 exclude each other, both ways",
  withServer,
  async () => {
    const [gateway, grpc] = pair();
    await using _a = gateway;
    await using _b = grpc;
    for (const [holder, contender] of [[gateway, grpc], [grpc, gateway]]) {
      const name = lockName(`${holder.scheme}-holds`);
      const held = await acquire(options(holder, name));
      const error = await assertRejects(
        () => acquire(options(contender, name)),
        LockHeldError,
      );
      assert(!error.waited, "lost at once");
      await assertRejects(
        () => acquire(options(contender, name, 1)),
        LockHeldError,
      );
      // A waiter that gives up deletes its queue key as its signal aborts,
      // a moment after acquire() rejects.
      let keys = await entriesOf(name);
      for (let i = 0; i < 100 && keys.length > 1; i++) {
        await sleep(20);
        keys = await entriesOf(name);
      }
      assertEquals(keys.length, 1, "the failed tries left no key");
      assertEquals(JSON.parse(keys[0].value).owner, held.owner);
      await held.release();
      const next = await acquire(options(contender, name));
      assert(next.token > held.token, "the contender's token is newer");
      await next.release();
    }
  },
);

Deno.test(
  "etcd and etcd3: fencing tokens increase across both",
  withServer,
  async () => {
    const [gateway, grpc] = pair();
    await using _a = gateway;
    await using _b = grpc;
    const name = lockName("fence");
    const tokens: bigint[] = [];
    for (let i = 0; i < 8; i++) {
      const lease = await acquire(options(i % 2 ? grpc : gateway, name, 10));
      tokens.push(lease.token);
      await lease.release();
    }
    for (let i = 1; i < tokens.length; i++) {
      assert(tokens[i] > tokens[i - 1], `increasing: ${tokens.join(", ")}`);
    }
  },
);

Deno.test(
  "etcd and etcd3: one fair queue, woken by watches across clients",
  withServer,
  async () => {
    const name = lockName("queue");
    const backends = [pair(), pair()].flat();
    try {
      const held = await acquire(options(backends[0], name));
      const order: string[] = [];
      const handoffs: number[] = [];
      let releasedAt = 0;
      const waiters: Promise<void>[] = [];
      for (let i = 1; i < backends.length; i++) {
        waiters.push(
          acquire(options(backends[i], name, 20)).then(async (lease: Lease) => {
            handoffs.push(performance.now() - releasedAt);
            order.push(`${i}:${backends[i].scheme}`);
            await sleep(200);
            releasedAt = performance.now();
            await lease.release();
          }),
        );
        await sleep(400);
      }
      // Past the first poll steps, so that only a watch can be quick.
      await sleep(1_500);
      releasedAt = performance.now();
      await held.release();
      await Promise.all(waiters);
      assertEquals(order, ["1:etcd3", "2:etcd", "3:etcd3"]);
      console.log(
        `interop: handoffs ${
          handoffs.map((ms) => ms.toFixed(1)).join(", ")
        } ms`,
      );
      for (const ms of handoffs) assert(ms < 300, `handoff took ${ms} ms`);
    } finally {
      for (const backend of backends) await backend.close();
    }
  },
);

Deno.test(
  "etcd and etcd3 share the slots of a semaphore",
  withServer,
  async () => {
    const name = lockName("slots");
    const backends = [pair(), pair()].flat();
    try {
      const leases = [];
      for (const backend of backends.slice(0, 3)) {
        leases.push(await acquire(options(backend, name, 0, 3)));
      }
      assertEquals(leases.map((l) => l.slot).sort(), [0, 1, 2]);
      await assertRejects(
        () => acquire(options(backends[3], name, 0, 3)),
        LockHeldError,
      );
      await leases[1].release();
      const next = await acquire(options(backends[3], name, 5, 3));
      assertEquals(next.slot, leases[1].slot, "the freed slot, across clients");
      await next.release();
      for (const lease of leases) await lease.release();
    } finally {
      for (const backend of backends) await backend.close();
    }
  },
);

Deno.test(
  "a holder of a release before the semaphore (a plain owner value) excludes this one, and the other way round",
  withServer,
  async () => {
    const name = lockName("previous");
    const prefix = prefixOf(name);
    const lease = await etcdGrant(server!.port, 30);
    // What an earlier coolock puts: <prefix><lease in hex> = its owner id.
    await etcdPut(
      server!.port,
      `${prefix}${BigInt(lease).toString(16)}`,
      "old-node:42:abcdef",
      lease,
    );
    const [gateway, grpc] = pair();
    await using _a = gateway;
    await using _b = grpc;
    for (const backend of [gateway, grpc]) {
      assertEquals(await backend.tryAcquire(request(name)), undefined);
    }
    const [status] = await lockStatus(gateway, name);
    assertEquals(status.holders.map((h) => [h.slot, h.node, h.owner]), [
      [0, "old-node", "old-node:42:abcdef"],
    ]);
    const [old] = await etcdKeys(server!.port, prefix);
    await gateway.forceRelease!(name, AbortSignal.timeout(5_000));
    const claim = await grpc.tryAcquire(request(name));
    assert(claim, "free once the old holder's lease is gone");
    assert(claim.token > old.createRevision, "a newer token");
    // What an earlier coolock checks before it puts its key without
    // waiting: that no key exists under the prefix. A mutex holder of this
    // release has exactly one key there, so the earlier one stays out.
    const keys = await etcdKeys(server!.port, prefix);
    assertEquals(keys.length, 1);
    assertEquals(keys[0].key, `${prefix}${keys[0].key.split("/").pop()}`);
    await claim.release(0);
  },
);
