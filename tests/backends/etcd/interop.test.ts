/**
 * The `etcd` (JSON gateway) and `etcd3` (gRPC) backends share one key layout
 * and value format, so a lock taken through one excludes the other, queues
 * mix, and fencing tokens keep increasing across both.
 */

import { etcd } from "../../../backends/etcd/gateway/mod.ts";
import { etcd3 } from "../../../backends/etcd/grpc/mod.ts";
import type { Backend } from "../../../src/backend.ts";
import { LockHeldError } from "../../../src/errors.ts";
import { acquire } from "../../../src/lease.ts";
import { prefixOf, server } from "./suite.ts";
import { assert, assertEquals, assertRejects } from "../../helpers/assert.ts";
import {
  lockNamesOf,
  logHandoffs,
  servedInOrder,
  sleep,
} from "../../helpers/backend_checks.ts";
import { etcdKeys } from "../../helpers/servers/etcd.ts";

const withServer = { ignore: !server };
const lockName = lockNamesOf("interop");

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

// Loading gRPC evaluates a lot of code at once, which can stall this
// process's event loop, renewals included, for longer than a 2 s TTL on a
// loaded machine. Load it before any lease of these tests is running.
if (server) {
  await using warm = etcd3(`etcd3://127.0.0.1:${server.port}`);
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
      let keys = await etcdKeys(server!.port, prefixOf(name));
      for (let i = 0; i < 100 && keys.length > 1; i++) {
        await sleep(20);
        keys = await etcdKeys(server!.port, prefixOf(name));
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
      const { order, handoffs } = await servedInOrder({
        backends,
        lock: name,
        ttl: 2,
        waitTimeout: 20,
        holdMs: 200,
        queued: () => sleep(400),
      });
      assertEquals(
        order.map((i) => `${i}:${backends[i].scheme}`),
        ["1:etcd3", "2:etcd", "3:etcd3"],
      );
      logHandoffs("interop", handoffs);
      for (const ms of handoffs) assert(ms < 500, `handoff took ${ms} ms`);
    } finally {
      for (const backend of backends) await backend.close();
    }
  },
);
