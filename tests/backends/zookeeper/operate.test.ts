/**
 * The ZooKeeper backend's operator calls beyond the contract: what
 * `status` reads from the nodes (czxid tokens, the server's times, waiters,
 * a dropped session's record), listing, `forceRelease` under digest ACLs,
 * a stored limit that gives way once its records have run out, and
 * `check`'s version and permission lines.
 */

import { zookeeper } from "../../../backends/zookeeper/mod.ts";
import { LimitMismatchError } from "../../../src/errors.ts";
import { acquire } from "../../../src/lease.ts";
import { forceRelease, lockStatus } from "../../../src/operate.ts";
import { assert, assertEquals, assertMatch } from "../../helpers/assert.ts";
import {
  admin,
  closeSessionOf,
  lockName,
  parentPath,
  queueOf,
  request,
  server,
  sleep,
  uriAt,
  withServer,
} from "./fixture.ts";

Deno.test(
  "zookeeper status: czxid tokens, the server's times, waiters, and a dropped session's record",
  withServer,
  async () => {
    const lock = lockName("status");
    await using a = zookeeper(uriAt());
    await using b = zookeeper(uriAt());
    const lease = await acquire({ backend: a, lock, ttl: 3, guardTime: 0 });
    const waiter = acquire({
      backend: b,
      lock,
      ttl: 3,
      guardTime: 0,
      waitTimeout: 30,
    });
    while ((await queueOf(lock)).length < 2) await sleep(20);
    let [status] = await lockStatus(a, lock);
    assertEquals(status.limit, 1);
    assertEquals(status.waiting, 1, "one waiter");
    assertEquals(status.holders.length, 1);
    const [holder] = status.holders;
    assertEquals(holder.token, lease.token, "the token is the entry's czxid");
    assertEquals(holder.owner, lease.owner);
    assertEquals(holder.node, lease.node);
    assert(
      Math.abs(holder.since!.getTime() - Date.now()) < 2_000,
      `since is the server's time of the acquisition: ${holder.since}`,
    );
    // The holder's session is closed out of band: its entry goes, its record
    // keeps the slot as a guard; the waiter, now first, waits it out.
    const [entry] = await queueOf(lock);
    await closeSessionOf(`${parentPath(lock)}/${entry}`);
    [status] = await lockStatus(b, lock);
    assertEquals(status.holders.map((h) => h.state), ["guard"]);
    assertEquals(status.holders[0].owner, lease.owner);
    assert(
      status.holders[0].guardLeftMs! > 0 &&
        status.holders[0].guardLeftMs! <= 3_000,
      `the lease record's time left: ${status.holders[0].guardLeftMs}`,
    );
    assertEquals(status.waiting, 1, "the waiter still waits");
    const next = await waiter;
    [status] = await lockStatus(b, lock);
    assertEquals(status.holders.map((h) => [h.state, h.owner]), [[
      "held",
      next.owner,
    ]]);
    assertEquals(status.waiting, 0);
    await next.release();
    await lease.release();
  },
);

Deno.test(
  "zookeeper status without a name: every lock this identity may read, by its name, no probe nodes",
  withServer,
  async () => {
    const lock = `${lockName("list")} ünï/côdé`;
    const theirs = lockName("list-dave");
    await using a = zookeeper(uriAt());
    await using dave = zookeeper(
      `zookeeper://dave:pw4@127.0.0.1:${server!.port}`,
    );
    const lease = await acquire({ backend: a, lock, ttl: 3, guardTime: 0 });
    const daves = await acquire({
      backend: dave,
      lock: theirs,
      ttl: 3,
      guardTime: 0,
    });
    await a.check!(AbortSignal.timeout(5_000));
    const all = await lockStatus(a, undefined);
    const mine = all.find((s) => s.name === lock);
    assert(mine, `'${lock}' is listed`);
    assertEquals(mine.holders[0].owner, lease.owner);
    assert(all.every((s) => !s.name.startsWith(".")), "no probe node listed");
    assert(
      !all.some((s) => s.name === theirs),
      "dave's lock is not ours to read",
    );
    const his = await lockStatus(dave, undefined);
    assert(his.some((s) => s.name === theirs), "dave sees his own lock");
    await daves.release();
    await lease.release();
  },
);

Deno.test(
  "zookeeper forceRelease under digest ACLs: only the nodes' identity may",
  withServer,
  async () => {
    const lock = lockName("force-acl");
    const port = server!.port;
    await using alice = zookeeper(`zookeeper://alice:pw1@127.0.0.1:${port}`);
    await using bob = zookeeper(`zookeeper://bob:pw2@127.0.0.1:${port}`);
    await using operator = zookeeper(`zookeeper://alice:pw1@127.0.0.1:${port}`);
    const lease = await acquire({ backend: alice, lock, ttl: 3, guardTime: 0 });
    const error = await forceRelease(bob, lock).then(() => "removed", (e) => e);
    assert(error instanceof Error, `bob may not: ${error}`);
    assertMatch(error.message, /NO_AUTH/);
    assert(!/pw1|pw2/.test(error.message), error.message);
    assert(!error.message.includes("\n"), "one line");
    const removed = await forceRelease(operator, lock);
    assertEquals(removed.map((r) => r.what), ["lease"]);
    assertMatch(removed[0].detail, new RegExp(`slot 0, token ${lease.token}`));
    while (!lease.signal.aborted) await sleep(10);
    await lease.release();
  },
);

Deno.test(
  "zookeeper: a stored limit gives way once every record of it has run out",
  withServer,
  async () => {
    const lock = lockName("relayout");
    await using a = zookeeper(uriAt());
    // A mutex released with 1 s of guard time leaves its parent and record.
    const guarded = await acquire({ backend: a, lock, ttl: 3, guardTime: 1 });
    await guarded.release();
    assert(await admin((c) => c.exists(parentPath(lock))), "the parent stays");
    const refused = await acquire({ backend: a, lock, ttl: 3, limit: 3 }).then(
      (l) => l.release().then(() => "acquired"),
      (e) => e,
    );
    assert(
      refused instanceof LimitMismatchError,
      `a live guard keeps the limit: ${refused}`,
    );
    assertEquals(await queueOf(lock), [], "the refused entry went");
    await sleep(1_100);
    const three = await acquire({
      backend: a,
      lock,
      ttl: 3,
      guardTime: 0,
      limit: 3,
    });
    const [status] = await lockStatus(a, lock);
    assertEquals(status.limit, 3, "the lock is a semaphore of 3 now");
    assert(three.token > guarded.token, "tokens keep growing");
    await three.release();
    const one = await acquire({ backend: a, lock, ttl: 3, guardTime: 0 });
    assertEquals(one.slot, 0);
    await one.release();
  },
);

Deno.test(
  "zookeeper check: the version from srvr, and a server that doesn't say",
  withServer,
  async () => {
    await using a = zookeeper(uriAt());
    const results = await a.check!(AbortSignal.timeout(10_000));
    const byName = Object.fromEntries(results.map((r) => [r.name, r]));
    // The test server's whitelist names only ruok: ZooKeeper 3.5+ answers
    // srvr whatever the whitelist says.
    assertMatch(
      byName.version.detail,
      /^ZooKeeper 3\.\d+\.\d+ \(127\.0\.0\.1:\d+ standalone\)$/,
    );
    assertEquals(byName.permissions.status, "ok");
    assertMatch(byName.credentials.detail, /world:anyone/);
    assert(typeof byName.clock.ms === "number", "the skew is measured");
    // A second "server" that hangs up at once: the session uses the first.
    const mute = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepting = (async () => {
      for await (const conn of mute) conn.close();
    })();
    try {
      const port = (mute.addr as Deno.NetAddr).port;
      await using b = zookeeper(
        `zookeeper://127.0.0.1:${server!.port},127.0.0.1:${port}`,
      );
      const [version] = (await b.check!(AbortSignal.timeout(10_000))).filter(
        (r) => r.name === "version",
      );
      assertEquals(version.status, "ok");
      assertMatch(
        version.detail,
        /^ZooKeeper 3\..*; 1 server\(s\) did not say$/,
      );
    } finally {
      mute.close();
      await accepting.catch(() => {});
    }
  },
);

Deno.test(
  "zookeeper check: a root that another identity owns fails 'permissions', in one line",
  withServer,
  async () => {
    const chroot = `/${lockName("owned")}`;
    const { loadZooKeeper } = await import(
      "../../../backends/zookeeper/client.ts"
    );
    const zk = await loadZooKeeper();
    await admin((c) =>
      new Promise<void>((resolve, reject) =>
        c.client.create(
          chroot,
          [new zk.ACL(zk.Permission.READ, new zk.Id("world", "anyone"))],
          zk.CreateMode.PERSISTENT,
          (error) => error ? reject(error) : resolve(),
        )
      )
    );
    await using b = zookeeper(
      `zookeeper://carol:pw3@127.0.0.1:${server!.port}${chroot}`,
    );
    const results = await b.check!(AbortSignal.timeout(10_000));
    const permissions = results.find((r) => r.name === "permissions")!;
    assertEquals(permissions.status, "fail");
    assertMatch(permissions.detail, /can't create the root under .*NO_AUTH/);
    assert(!/pw3|\n/.test(permissions.detail), permissions.detail);
    assertMatch(results.find((r) => r.name === "credentials")!.detail, /carol/);
    assertEquals(
      await b.tryAcquire(request("x")).catch((e) => e.name),
      "BackendUnavailableError",
    );
  },
);

Deno.test(
  "zookeeper: the Deno permissions the backend declares are all that a lock, status and check need",
  withServer,
  async () => {
    const root = new URL("../../../", import.meta.url);
    const uri = uriAt();
    const net = zookeeper(uri).permissions!.map((p) =>
      (p as Deno.NetPermissionDescriptor).host
    );
    const script = await Deno.makeTempFile({ suffix: ".ts" });
    await Deno.writeTextFile(
      script,
      `import { zookeeper } from ${
        JSON.stringify(new URL("backends/zookeeper/mod.ts", root).href)
      };
      const backend = zookeeper(${JSON.stringify(uri)});
      const signal = AbortSignal.timeout(10_000);
      const claim = await backend.tryAcquire({ name: ${
        JSON.stringify(lockName("perm"))
      }, owner: "p:1:x", node: "p", limit: 1, expiresInMs: 5000, guardMs: 0,
        wait: false, signal });
      await backend.status(undefined, signal);
      const failed = (await backend.check(signal)).filter((r) => r.status === "fail");
      await claim.release(0);
      await backend.close();
      console.log(claim && failed.length === 0 ? "ok" : "failed");`,
    );
    const denoDir = Deno.env.get("DENO_DIR") ??
      `${Deno.env.get("HOME")}/.cache/deno`;
    try {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--no-prompt",
          `--allow-read=${root.pathname},${denoDir},${script}`,
          `--allow-net=${net.join(",")}`,
          script,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decoder = new TextDecoder();
      assertEquals(
        decoder.decode(out.stdout).trim(),
        "ok",
        decoder.decode(out.stderr),
      );
    } finally {
      await Deno.remove(script);
    }
  },
);

Deno.test(
  "zookeeper forceRelease: the holder loses at once, a removed waiter queues again and gets the lock",
  withServer,
  async () => {
    const lock = lockName("force-queue");
    await using a = zookeeper(uriAt());
    await using b = zookeeper(uriAt());
    await using operator = zookeeper(uriAt());
    const lease = await acquire({ backend: a, lock, ttl: 3, guardTime: 30 });
    const waiter = acquire({
      backend: b,
      lock,
      ttl: 3,
      guardTime: 0,
      waitTimeout: 10,
    });
    while ((await queueOf(lock)).length < 2) await sleep(20);
    const releasedAt = performance.now();
    const removed = await forceRelease(operator, lock);
    assertEquals(removed.map((r) => r.what), ["lease", "queue entry"]);
    const next = await waiter;
    const ms = performance.now() - releasedAt;
    assert(lease.signal.aborted, "the holder lost the lock");
    assert(ms < 2_000, `the waiter got the lock ${ms.toFixed(0)} ms after`);
    assert(next.token > lease.token, "with a higher token");
    await next.release();
    await lease.release();
  },
);
