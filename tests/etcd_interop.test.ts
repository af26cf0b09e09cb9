/**
 * The `etcd` (JSON gateway) and `etcd3` (gRPC) backends share one key layout
 * and value format, so a lock taken through one excludes the other, queues
 * mix, and fencing tokens keep increasing across both.
 */

import { etcd } from "../backends/etcd.ts";
import { etcd3 } from "../backends/etcd3.ts";
import { lockPrefix } from "../backends/etcd_lock.ts";
import type { Backend } from "../src/backend.ts";
import { LockHeldError } from "../src/errors.ts";
import { acquire } from "../src/lease.ts";
import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { etcdKeys, etcdServer } from "./servers/etcd.ts";
import { sharedServer } from "./servers/server.ts";

const server = await sharedServer(etcdServer);
const withServer = { ignore: !server };
let unique = 0;
const lockName = (tag: string) => `interop-${tag}-${Date.now()}-${unique++}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function pair(): [Backend, Backend] {
  return [
    etcd(`etcd://127.0.0.1:${server!.port}`),
    etcd3(`etcd3://127.0.0.1:${server!.port}`),
  ];
}

const options = (backend: Backend, lock: string, waitTimeout = 0) => ({
  backend,
  lock,
  ttl: 2,
  guardTime: 0,
  waitTimeout,
});

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
      let keys = await etcdKeys(server!.port, lockPrefix("coolock", name));
      for (let i = 0; i < 100 && keys.length > 1; i++) {
        await sleep(20);
        keys = await etcdKeys(server!.port, lockPrefix("coolock", name));
      }
      assertEquals(keys.length, 1, "the failed tries left no key");
      assertEquals(keys[0].value, held.owner, "the value is the owner");
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
      const waiters = [];
      for (let i = 1; i < backends.length; i++) {
        const backend = backends[i];
        waiters.push(
          acquire(options(backend, name, 20)).then(async (lease) => {
            handoffs.push(performance.now() - releasedAt);
            order.push(`${i}:${backend.scheme}`);
            await sleep(200);
            releasedAt = performance.now();
            await lease.release();
          }),
        );
        await sleep(400);
      }
      releasedAt = performance.now();
      await held.release();
      await Promise.all(waiters);
      assertEquals(order, ["1:etcd3", "2:etcd", "3:etcd3"]);
      console.log(
        `interop: handoffs ${
          handoffs.map((ms) => ms.toFixed(1)).join(", ")
        } ms`,
      );
      for (const ms of handoffs) assert(ms < 500, `handoff took ${ms} ms`);
    } finally {
      for (const backend of backends) await backend.close();
    }
  },
);
