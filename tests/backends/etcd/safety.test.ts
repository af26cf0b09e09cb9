/**
 * The etcd specifics of the one promise, on real servers: a server restart
 * on the same data dir keeps every lease (etcd refreshes their TTLs on
 * recovery), so a holder renews on through it and no contender gets in
 * while its job runs; and the longest valid settings (a TTL and a guard
 * time of 366 days) are leases that etcd keeps.
 */

import { etcd } from "../../../backends/etcd/gateway/mod.ts";
import { etcd3 } from "../../../backends/etcd/grpc/mod.ts";
import { LockHeldError } from "../../../src/errors.ts";
import { acquire } from "../../../src/lease.ts";
import { forceRelease } from "../../../src/operate.ts";
import { MAX_SECONDS } from "../../../src/options.ts";
import { assert, assertEquals, assertRejects } from "../../helpers/assert.ts";
import { eventually, runCli, spawnCli } from "../../helpers/cli.ts";
import { etcdLeaseTtl, etcdServer } from "../../helpers/servers/etcd.ts";
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

for (const [scheme, open] of [["etcd", etcd], ["etcd3", etcd3]] as const) {
  Deno.test(
    `${scheme}: a server restart keeps the lock: the holder renews on, and no contender runs while its job does`,
    withServer,
    async () => {
      const own = await startServer(etcdServer);
      const keepAlive = setInterval(() => {}, 50);
      const uri = uriOf(scheme, own.port);
      const lock = lockName(`${scheme}-restart`);
      const dir = await Deno.makeTempDir();
      try {
        // The library: a holder keeps its lease through the restart.
        await using a = open(uri);
        const held = await acquire({ backend: a, lock, ttl: 5, guardTime: 0 });
        await own.kill();
        await own.restart();
        await using b = open(uri);
        await assertRejects(
          () => acquire({ backend: b, lock, ttl: 5, guardTime: 0 }),
          LockHeldError,
        );
        await sleep(6_000);
        assert(!held.signal.aborted, `lost: ${held.signal.reason}`);
        await assertRejects(
          () => acquire({ backend: b, lock, ttl: 5, guardTime: 0 }),
          LockHeldError,
        );
        await held.release();
        const next = await acquire({
          backend: b,
          lock,
          ttl: 5,
          guardTime: 0,
          waitTimeout: 5,
        });
        assert(next.token > held.token, "tokens keep increasing");
        await next.release();

        // The CLI: its job runs on through a restart, alone.
        const cliLock = `${lock}-cli`;
        const flags = [
          "--log-file",
          "-",
          "--kill-after",
          "0.5",
          "--backend",
          uri,
          "--lock",
          cliLock,
          "--ttl",
          "5",
          "--guard-time",
          "0",
        ];
        const holder = spawnCli([
          ...flags,
          "--shell",
          `date +%s%3N > ${dir}/start; sleep 6; date +%s%3N > ${dir}/end`,
        ]);
        await eventually(
          () => Deno.stat(`${dir}/start`).then(() => true, () => false),
          20_000,
          "the holder's job to start",
        );
        await own.kill();
        await own.restart();
        let contenderStart: number | undefined;
        const giveUp = performance.now() + 30_000;
        while (contenderStart === undefined) {
          assert(performance.now() < giveUp, "the contender never got in");
          const result = await runCli([
            ...flags,
            "--shell",
            `date +%s%3N > ${dir}/second`,
          ]);
          const text = await Deno.readTextFile(`${dir}/second`).catch(() => "");
          if (text !== "") contenderStart = Number(text);
          else if (result.code !== 0 && result.code !== 69) {
            throw new Error(`contender: ${result.code} ${result.stderr}`);
          } else await sleep(200);
        }
        const status = await holder.status;
        assertEquals(status.code, 0, "the holder's job ran to its end");
        const end = Number(await Deno.readTextFile(`${dir}/end`));
        assert(
          contenderStart > end,
          `the contender ran ${end - contenderStart} ms before the job ended`,
        );
      } finally {
        clearInterval(keepAlive);
        await own.kill().catch(() => {});
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}

Deno.test(
  "etcd: a TTL and a guard time of 366 days are leases that etcd keeps",
  withServer,
  async () => {
    const lock = lockName("366d");
    await using a = etcd(uriOf("etcd"));
    const lease = await acquire({
      backend: a,
      lock,
      ttl: MAX_SECONDS,
      guardTime: MAX_SECONDS,
    });
    const [entry] = await entriesOf(lock);
    const ttl = await etcdLeaseTtl(server!.port, entry.lease);
    assert(ttl > MAX_SECONDS - 60, `the lease lasts ${ttl} s`);
    await lease.release();
    const [guard] = await entriesOf(lock);
    assert(guard, "the guard keeps the entry");
    assert(
      await etcdLeaseTtl(server!.port, guard.lease) > MAX_SECONDS - 60,
      "on a lease of the guard time left",
    );
    assertEquals(await a.tryAcquire(request(lock)), undefined);
    await forceRelease(a, lock);
    const cli = await runCli([
      "--log-file",
      "-",
      "--kill-after",
      "0.5",
      "--backend",
      uriOf("etcd"),
      "--lock",
      lock,
      "--ttl",
      String(MAX_SECONDS),
      "--guard-time",
      "0",
      "--",
      "true",
    ]);
    assertEquals(cli.code, 0, cli.stderr);
  },
);
