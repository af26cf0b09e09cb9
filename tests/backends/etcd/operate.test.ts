/**
 * The etcd specifics of the operator's calls, on a real etcd: `status`
 * counts waiters, reads a holder's node, owner, time and token from its
 * entry and its lease from `LeaseTimeToLive`; listing skips keys that are
 * not coolock's; `forceRelease` removes waiters too, and a waiter so
 * removed queues again; `check` finds a user that may not write, measures
 * the clock skew to well under the Date header's second, and names the
 * cluster's leader.
 */

import { etcd } from "../../../backends/etcd/gateway/mod.ts";
import { acquire } from "../../../src/lease.ts";
import {
  checkBackend,
  forceRelease,
  lockStatus,
} from "../../../src/operate.ts";
import { assert, assertEquals, assertMatch } from "../../helpers/assert.ts";
import {
  ETCD_ROOT_PASSWORD,
  etcdAdmin,
  etcdAuthServer,
  etcdPut,
} from "../../helpers/servers/etcd.ts";
import { startServer } from "../../helpers/servers/server.ts";
import {
  entriesOf,
  lockName,
  request,
  server,
  sleep,
  uriOf,
  withServer,
} from "./fixture.ts";

const b64 = (text: string) => btoa(text);

Deno.test(
  "etcd status: holder fields from the entry and its lease, and the waiters",
  withServer,
  async () => {
    const name = lockName("op-status");
    await using a = etcd(uriOf("etcd"));
    await using b = etcd(uriOf("etcd"));
    const held = await acquire({
      backend: a,
      lock: name,
      ttl: 10,
      guardTime: 0,
      node: "node-a",
    });
    const waiters = [1, 2].map(() =>
      acquire({
        backend: b,
        lock: name,
        ttl: 10,
        guardTime: 0,
        waitTimeout: 20,
      })
    );
    await sleep(500);
    const [status] = await lockStatus(a, name);
    assertEquals(status.limit, 1);
    assertEquals(status.waiting, 2, "two waiters queued");
    const [holder] = status.holders;
    assertEquals(
      [holder.slot, holder.state, holder.node, holder.owner, holder.token],
      [0, "held", "node-a", held.owner, held.token],
    );
    assert(
      Math.abs(holder.since!.getTime() - Date.now()) < 5_000,
      `since ${holder.since?.toISOString()}`,
    );
    assert(
      holder.leaseLeftMs! >= 8_000 && holder.leaseLeftMs! <= 10_000,
      `lease left ${holder.leaseLeftMs} ms of 10 s`,
    );
    await held.release();
    const next = await Promise.race(waiters);
    const [after] = await lockStatus(a, name);
    assertEquals(after.waiting, 1);
    assertEquals(after.holders[0].token, next.token);
    await next.release();
    for (const waiter of waiters) await (await waiter).release();
  },
);

Deno.test(
  "etcd status without a name lists coolock's locks and skips other keys under the root",
  withServer,
  async () => {
    const name = lockName("op-list");
    await using a = etcd(uriOf("etcd"));
    await etcdPut(server!.port, "coolock/not-a-lock", "x");
    await etcdPut(server!.port, "coolock/other/app/key", "x");
    await etcdPut(server!.port, "coolock/.hidden/1f", "x");
    const lease = await acquire({
      backend: a,
      lock: name,
      ttl: 5,
      guardTime: 0,
    });
    const all = await lockStatus(a, undefined);
    const names = all.map((s) => s.name);
    assert(names.includes(name), `the list names '${name}'`);
    for (const bad of ["not-a-lock", "other", ".hidden"]) {
      assert(!names.includes(bad), `'${bad}' is not a coolock lock`);
    }
    await lease.release();
  },
);

Deno.test(
  "etcd forceRelease removes waiters' entries too, and a removed waiter queues again",
  withServer,
  async () => {
    const name = lockName("op-force");
    await using a = etcd(uriOf("etcd"));
    await using b = etcd(uriOf("etcd"));
    const held = await acquire({
      backend: a,
      lock: name,
      ttl: 5,
      guardTime: 0,
    });
    const waiter = acquire({
      backend: b,
      lock: name,
      ttl: 5,
      guardTime: 0,
      waitTimeout: 20,
    });
    await sleep(500);
    const removed = await forceRelease(a, name);
    assertEquals(removed.map((r) => r.what), ["lease", "queue entry"]);
    for (const removal of removed) {
      assertMatch(removal.detail, /^key coolock\/.* of .* \(.*token \d+\)$/);
    }
    await sleep(100);
    assert(held.signal.aborted, "the live holder lost its lock at once");
    const next = await waiter;
    assert(next.token > held.token, "the waiter got it, with a newer token");
    assertEquals((await entriesOf(name)).length, 1, "one entry: the waiter's");
    await next.release();
    await held.release();
  },
);

Deno.test(
  "etcd check: the clock skew to well under a second, the leader, a readonly user",
  withServer,
  async () => {
    await using a = etcd(uriOf("etcd"));
    const started = performance.now();
    const results = await checkBackend(a);
    const ms = performance.now() - started;
    const clock = results.find((r) => r.name === "clock")!;
    assertEquals(clock.status, "ok");
    const within = Number(/±(\d+\.\d+) s/.exec(clock.detail)?.[1]);
    assert(
      within < 0.2,
      `the skew is bounded to ±${within} s: ${clock.detail}`,
    );
    assert(Math.abs(clock.ms!) < 200, `same host: skew ${clock.ms} ms`);
    assert(ms < 5_000, `check took ${ms.toFixed(0)} ms`);
    assertMatch(
      results.find((r) => r.name === "cluster")!.detail,
      /^1 member, leader coolock/,
    );

    const secured = await startServer(etcdAuthServer);
    const keepAlive = setInterval(() => {}, 50);
    try {
      const port = secured.port;
      const call = (path: string, body: Record<string, unknown>) =>
        etcdAdmin(port, path, body);
      await call("/v3/auth/user/add", {
        name: "root",
        password: ETCD_ROOT_PASSWORD,
      });
      await call("/v3/auth/role/add", { name: "root" });
      await call("/v3/auth/user/grant", { user: "root", role: "root" });
      await call("/v3/auth/user/add", { name: "reader", password: "r3ad" });
      await call("/v3/auth/role/add", { name: "reader" });
      await call("/v3/auth/role/grant", {
        name: "reader",
        perm: {
          permType: "READ",
          key: b64("coolock/"),
          range_end: b64("coolock0"),
        },
      });
      await call("/v3/auth/user/grant", { user: "reader", role: "reader" });
      await call("/v3/auth/enable", {});
      await using reader = etcd(`etcd://reader:r3ad@127.0.0.1:${port}`);
      const checked = await checkBackend(reader);
      const permissions = checked.find((r) => r.name === "permissions")!;
      assertEquals(permissions.status, "fail");
      assertMatch(
        permissions.detail,
        /can't write under 'coolock\/'.*permission denied/,
      );
      assertEquals(
        checked.find((r) => r.name === "credentials")?.status,
        "ok",
      );
      const attempt = await reader.tryAcquire(request(lockName("op-reader")))
        .then(() => "acquired", (e) => e.message);
      assertMatch(attempt, /permission denied/);
    } finally {
      clearInterval(keepAlive);
      await secured.kill();
    }
  },
);
