/**
 * The contract's basics, unchanged for every backend: try-acquire, owner-only
 * renew and release, a killed holder, renewal, the lost signal, guard time,
 * fencing, wait mode, herds, contended sections, an unreachable server,
 * secrets and odd lock names.
 *
 * @module
 */

import type { Backend } from "../../src/backend.ts";
import { LockHeldError, LockLostError } from "../../src/errors.ts";
import { acquire } from "../../src/lease.ts";
import {
  alive,
  cleanEnv,
  CLI_COMMAND,
  eventually,
  oneLine,
  runCli,
  spawnCli,
} from "../helpers/cli.ts";
import { exists } from "../helpers/fs.ts";
import { startProxy } from "../helpers/proxy.ts";
import {
  assert,
  cli,
  flags,
  leaseOptions,
  lockName,
  lostWithin,
  type Register,
  request,
  sleep,
  tempDir,
} from "./common.ts";

/** Registers the basics for one backend. */
export function basics(test: Register, label: string): void {
  test("1. try-acquire wins on a free lock and loses at once on a held one", async (f) => {
    const lock = lockName(label, "try");
    await using a = f.open();
    await using b = f.open();
    const held = await acquire(leaseOptions(f, a, lock));
    const started = performance.now();
    const error = await acquire(leaseOptions(f, b, lock)).then(
      () => undefined,
      (e) => e,
    );
    const ms = performance.now() - started;
    assert(
      error instanceof LockHeldError && !error.waited,
      `a held lock gives LockHeldError, not ${error}`,
    );
    assert(ms < 3_000, `a held lock loses at once, not after ${ms} ms`);
    await held.release();
    const second = await acquire(leaseOptions(f, b, lock));
    assert(second.token > held.token, "the next holder's token is larger");
    await second.release();
  });

  test("2. only the owner renews or releases; a stale release does not free a newer holder", async (f) => {
    const lock = lockName(label, "owner");
    await using a = f.open();
    await using b = f.open();
    await using c = f.open();
    const stale = await a.tryAcquire(request(lock));
    assert(stale, "the first claim is acquired");
    await f.remove(lock);
    const fresh = await eventuallyClaim(b, lock, f.ttl * 1000 + 2_000);
    await stale.release(0).catch(() => {});
    assert(
      (await c.tryAcquire(request(lock))) === undefined,
      "a stale release must not free the newer holder's lock",
    );
    const renewal = await stale.renew(60_000, AbortSignal.timeout(10_000)).then(
      () => undefined,
      (e) => e,
    );
    assert(
      renewal instanceof LockLostError,
      `a stale renew rejects with LockLostError, not ${renewal}`,
    );
    assert(
      (await c.tryAcquire(request(lock))) === undefined,
      "a stale renew must not disturb the newer holder",
    );
    await fresh.release(0);
    const third = await c.tryAcquire(request(lock));
    assert(third, "the owner's own release frees the lock");
    await third.release(0);
  });

  test("3. a holder process killed with SIGKILL frees the lock within the backend's bound", async (f) => {
    const lock = lockName(label, "sigkill");
    const dir = await tempDir();
    const holder = spawnCli([
      ...flags(f, lock, 0),
      "--shell",
      `echo $$ > ${dir}/pid; exec sleep 60`,
    ], { env: f.env });
    await eventually(
      () => exists(`${dir}/pid`),
      20_000,
      "the holder to start its command",
    );
    const jobPid = Number((await Deno.readTextFile(`${dir}/pid`)).trim());
    holder.kill("SIGKILL");
    const killedAt = performance.now();
    await holder.status;
    await using b = f.open();
    const lease = await acquire(
      leaseOptions(f, b, lock, { waitTimeout: f.freeWithinMs / 1000 + 10 }),
    );
    const ms = performance.now() - killedAt;
    await lease.release();
    assert(
      ms <= f.freeWithinMs,
      `the lock was free ${
        ms.toFixed(0)
      } ms after the kill, over ${f.freeWithinMs} ms`,
    );
    await eventually(
      () => !alive(jobPid),
      3_000,
      "the watchdog to end the orphaned job",
    );
  });

  test("4. renewal keeps a lock well past its TTL", async (f) => {
    const lock = lockName(label, "renew");
    await using a = f.open();
    await using b = f.open();
    const lease = await acquire(leaseOptions(f, a, lock));
    await sleep(f.ttl * 2500);
    assert(!lease.signal.aborted, `the lease was lost: ${lease.signal.reason}`);
    const error = await acquire(leaseOptions(f, b, lock)).then(
      (l) => l.release(),
      (e) => e,
    );
    assert(
      error instanceof LockHeldError,
      "the renewed lock is still held after 2.5 TTLs",
    );
    await lease.release();
  });

  test("5a. the lost signal fires when the lock is removed out of band", async (f) => {
    const lock = lockName(label, "removed");
    await using a = f.open();
    const lease = await acquire(leaseOptions(f, a, lock));
    await f.remove(lock);
    const ms = await lostWithin(lease, f.ttl * 1000 + 1_000);
    console.log(`${label}: lost signal ${ms.toFixed(0)} ms after removal`);
    await lease.release();
  });

  test(
    "5b. the lost signal fires when the server hangs (SIGSTOP), before another owner gets in",
    async (f) => {
      const lock = lockName(label, "sigstop");
      const server = f.server!;
      await using a = f.open();
      const lease = await acquire(leaseOptions(f, a, lock));
      server.pause();
      let lostAt: number;
      try {
        await lostWithin(lease, f.ttl * 1000 + 1_000);
        lostAt = performance.now();
      } finally {
        server.resume();
      }
      await using b = f.open();
      const next = await acquire(
        leaseOptions(f, b, lock, { waitTimeout: f.ttl * 3 + 10 }),
      );
      assert(
        performance.now() > lostAt,
        "the contender got in after the holder knew it lost",
      );
      await next.release();
      await lease.release();
    },
    { pause: true },
  );

  test(
    "5c. a partitioned holder knows it lost before a contender gets in",
    async (f) => {
      const lock = lockName(label, "partition");
      await using proxy = startProxy(f.server!.port);
      await using a = f.open(f.uriAt(proxy.port));
      await using b = f.open();
      const lease = await acquire(leaseOptions(f, a, lock));
      proxy.partition();
      const partitionedAt = performance.now();
      let lostAt: number | undefined;
      lease.signal.addEventListener("abort", () => lostAt = performance.now());
      const deadline = partitionedAt + f.ttl * 3000 + 5_000;
      let contenderAt: number | undefined;
      while (performance.now() < deadline && contenderAt === undefined) {
        const claim = await b.tryAcquire(
          request(lock, { signal: AbortSignal.timeout(5_000) }),
        ).catch(() => undefined);
        if (claim) {
          contenderAt = performance.now();
          await claim.release(0);
        } else await sleep(50);
      }
      assert(
        lostAt !== undefined,
        "the partitioned holder's lost signal fired",
      );
      assert(
        contenderAt === undefined || lostAt < contenderAt,
        `a contender got in ${
          (contenderAt! - lostAt).toFixed(0)
        } ms before the holder knew it lost`,
      );
      console.log(
        `${label}: partitioned holder lost after ${
          (lostAt - partitionedAt).toFixed(0)
        } ms; ${
          contenderAt === undefined
            ? "the server kept the lock (no contender got in)"
            : `contender in after ${
              (contenderAt - partitionedAt).toFixed(0)
            } ms`
        }`,
      );
      proxy.heal();
      await lease.release();
    },
    { partition: true },
  );

  test("6. guard time holds after the holder has exited, without keeping it waiting", async (f) => {
    const lock = lockName(label, "guard");
    const dir = await tempDir();
    const args = [...flags(f, lock, 4), "--shell"];
    const first = await runCli([...args, `echo first >> ${dir}/ran`], {
      env: f.env,
    });
    assert(
      first.code === 0,
      `the first run exits 0, not ${first.code}: ${first.stderr}`,
    );
    assert(
      first.ms < 4_000,
      `the holder exits at once instead of sleeping out the guard time (${first.ms} ms)`,
    );
    const second = await runCli([...args, `echo second >> ${dir}/ran`], {
      env: f.env,
    });
    assert(
      second.code === 0,
      `a skipped run exits with the conflict code 0, not ${second.code}`,
    );
    assert(
      (await Deno.readTextFile(`${dir}/ran`)) === "first\n",
      "the second run must not run inside the guard time",
    );
    await sleep(Math.max(0, 4_500 - second.ms));
    const third = await runCli([
      "--wait-timeout",
      "5",
      ...args,
      `echo third >> ${dir}/ran`,
    ], { env: f.env });
    assert(third.code === 0, `the third run exits 0: ${third.stderr}`);
    assert(
      (await Deno.readTextFile(`${dir}/ran`)) === "first\nthird\n",
      "the lock is free after the guard time",
    );
  });

  test("6b. guard time holds when the holder is killed after acquiring", async (f) => {
    const lock = lockName(label, "guard-kill");
    const dir = await tempDir();
    const guard = f.ttl + 4;
    const holder = spawnCli([
      ...flags(f, lock, guard),
      "--shell",
      `touch ${dir}/started; exec sleep 60`,
    ], { env: f.env });
    await eventually(
      () => exists(`${dir}/started`),
      20_000,
      "the holder to start",
    );
    const acquiredBy = performance.now();
    holder.kill("SIGKILL");
    await holder.status;
    await using b = f.open();
    await sleep(f.ttl * 1000 + 1_000);
    const early = await acquire(leaseOptions(f, b, lock)).then(
      (l) => l.release().then(() => "acquired"),
      (e) => e,
    );
    assert(
      early instanceof LockHeldError,
      `the lock must stay held for the guard time, but: ${early}`,
    );
    const lease = await acquire(
      leaseOptions(f, b, lock, { waitTimeout: guard + f.ttl + 10 }),
    );
    assert(
      performance.now() - acquiredBy >= (guard - 1) * 1000,
      "acquired only after the guard time",
    );
    await lease.release();
  });

  test("7. fencing tokens strictly increase across holders on different connections", async (f) => {
    const lock = lockName(label, "fence");
    await using a = f.open();
    await using b = f.open();
    const tokens: bigint[] = [];
    for (let i = 0; i < 6; i++) {
      const lease = await acquire(
        leaseOptions(f, i % 2 ? a : b, lock, { waitTimeout: 10 }),
      );
      tokens.push(lease.token);
      await lease.release();
    }
    for (let i = 1; i < tokens.length; i++) {
      assert(
        tokens[i] > tokens[i - 1],
        `tokens must strictly increase: ${tokens.join(", ")}`,
      );
    }
    const other = await acquire(
      leaseOptions(f, a, lockName(label, "fence-other")),
    );
    assert(typeof other.token === "bigint", "every lock has a token");
    await other.release();
  });

  test("8. wait mode: a waiter gets the lock after release, and times out when it doesn't come", async (f) => {
    const lock = lockName(label, "wait");
    await using a = f.open();
    await using b = f.open();
    const held = await acquire(leaseOptions(f, a, lock));
    const timedOut = performance.now();
    const error = await acquire(leaseOptions(f, b, lock, { waitTimeout: 1 }))
      .then(
        () => undefined,
        (e) => e,
      );
    const waited = performance.now() - timedOut;
    assert(
      error instanceof LockHeldError && error.waited,
      `the wait times out with LockHeldError, not ${error}`,
    );
    assert(
      waited >= 900 && waited < 6_000,
      `the wait lasted about 1 s, not ${waited.toFixed(0)} ms`,
    );
    const waiter = acquire(leaseOptions(f, b, lock, { waitTimeout: 20 }));
    await sleep(500);
    await held.release();
    const releasedAt = performance.now();
    const next = await waiter;
    const handoff = performance.now() - releasedAt;
    console.log(`${label}: handoff latency ${handoff.toFixed(1)} ms`);
    assert(
      next.token > held.token,
      "the waiter holds the lock with a newer token",
    );
    await next.release();
  });

  test("9. 20 CLI processes started at once: exactly one runs the command", async (f) => {
    const lock = lockName(label, "herd");
    const dir = await tempDir();
    const go = `${dir}/go`;
    const children = Array.from(
      { length: 20 },
      () =>
        new Deno.Command("/bin/sh", {
          args: [
            "-c",
            `while [ ! -e ${go} ]; do sleep 0.01; done; exec "$@"`,
            "sh",
            ...CLI_COMMAND,
            ...flags(f, lock, 30),
            "--shell",
            `echo ran >> ${dir}/ran`,
          ],
          env: cleanEnv(f.env),
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).spawn(),
    );
    await sleep(300);
    await Deno.writeTextFile(go, "");
    const results = await Promise.all(children.map((child) => child.output()));
    const failed = results.filter((r) => r.code !== 0);
    assert(
      failed.length === 0,
      `every process exits 0: ${new TextDecoder().decode(failed[0]?.stderr)}`,
    );
    const ran = (await Deno.readTextFile(`${dir}/ran`)).split("\n").filter(
      Boolean,
    );
    assert(
      ran.length === 1,
      `exactly one process ran the command, not ${ran.length}`,
    );
  });

  test("10. 200 contended sections in wait mode across 10 processes never overlap", async (f) => {
    const lock = lockName(label, "sections");
    const dir = await tempDir();
    const logPath = `${dir}/sections.log`;
    const contender =
      new URL("../helpers/contender.ts", import.meta.url).pathname;
    const children = Array.from(
      { length: 10 },
      () =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--quiet",
            contender,
            f.uri,
            lock,
            "20",
            logPath,
            String(f.ttl),
          ],
          env: f.env,
          stdout: "piped",
          stderr: "piped",
        }).spawn(),
    );
    const results = await Promise.all(children.map((child) => child.output()));
    for (const result of results) {
      assert(
        result.code === 0,
        `a contender failed: ${new TextDecoder().decode(result.stderr)}`,
      );
    }
    const events = (await Deno.readTextFile(logPath)).trim().split("\n").map(
      (line) => {
        const [kind, token, time, pid] = line.split(" ");
        return { kind, token: BigInt(token), time: Number(time), pid };
      },
    );
    const starts = events.filter((e) => e.kind === "start").sort((x, y) =>
      x.time - y.time
    );
    const ends = new Map(
      events.filter((e) => e.kind === "end").map((e) => [e.token, e]),
    );
    assert(
      starts.length === 200 && ends.size === 200,
      `all 200 sections completed (${starts.length} started)`,
    );
    for (let i = 1; i < starts.length; i++) {
      const previous = starts[i - 1];
      const end = ends.get(previous.token)!;
      assert(
        end.time <= starts[i].time,
        `sections with tokens ${previous.token} and ${starts[i].token} overlap`,
      );
      assert(
        starts[i].token > previous.token,
        `tokens follow the order of sections`,
      );
    }
  });

  test("11. an unreachable server gives one clear line and exit 69, in bounded time", async (f) => {
    const result = await cli(f, [
      "--backend",
      f.unreachableUri,
      "--",
      "echo",
      "must-not-run",
    ]);
    assert(result.code === 69, `exit 69, not ${result.code}: ${result.stderr}`);
    const line = oneLine(result.stderr);
    assert(
      /unavailable/i.test(line),
      `the line says the backend is unavailable: ${line}`,
    );
    assert(!result.stdout.includes("must-not-run"), "the command must not run");
    assert(result.ms < 15_000, `the failure took ${result.ms.toFixed(0)} ms`);
  });

  test(
    "12. credentials never appear in errors, logs or --print-config",
    async (f) => {
      const secret = `S3cr3t-${crypto.randomUUID().slice(0, 8)}`;
      const uri = f.uriWithSecret!(secret);
      const dir = await tempDir();
      const printed = await cli(f, ["--print-config", "--backend", uri]);
      assert(
        printed.code === 0 && printed.stdout.includes("backend:"),
        `--print-config works: ${printed.stderr}`,
      );
      const runs = [
        printed,
        await runCli([
          "--log-file",
          `${dir}/log`,
          "--log-level",
          "debug",
          "--backend",
          uri,
          "--",
          "true",
        ], { env: f.env }),
        await cli(f, ["--log-level", "debug", "--backend", uri, "--", "true"]),
        await cli(f, ["--backend", `${uri}&bogus=1`, "--", "true"]),
      ];
      const log = await Deno.readTextFile(`${dir}/log`).catch(() => "");
      for (const text of [...runs.flatMap((r) => [r.stdout, r.stderr]), log]) {
        assert(
          !text.includes(secret),
          `the secret leaked into: ${text.replaceAll(secret, "<SECRET>")}`,
        );
      }
      let backend: Backend;
      try {
        backend = f.open(uri);
      } catch (error) {
        assert(
          !String(error).includes(secret),
          "a rejected URI's error hides the secret",
        );
        return;
      }
      await using _ = backend;
      assert(
        !backend.displayUri.includes(secret),
        "displayUri hides the secret",
      );
      const error = await backend.tryAcquire(request(lockName(label, "secret")))
        .then(
          (claim) => claim?.release(0),
          (e: Error) => e,
        );
      if (error instanceof Error) {
        assert(
          !`${error.message} ${error.stack}`.includes(secret),
          "errors hide the secret",
        );
      }
    },
    { credentials: true },
  );

  test("13. lock names are only data: quotes, slashes, semicolons, non-ASCII", async (f) => {
    await using a = f.open();
    await using b = f.open();
    const base = lockName(label, "names");
    const names = [
      `${base} o'brien"; DROP TABLE x; --`,
      `${base}/a/b/../c`,
      `${base}%2Fa%2Fb%2F..%2Fc`,
      `${base} ünïcødé 🔒 锁`,
      `${base}${"x".repeat(200 - base.length)}`,
    ];
    const leases = [];
    for (const name of names) {
      leases.push(await acquire(leaseOptions(f, a, name)));
    }
    for (const name of names) {
      const error = await acquire(leaseOptions(f, b, name)).then(
        (l) => l.release(),
        (e) => e,
      );
      assert(
        error instanceof LockHeldError,
        `'${name}' is held and distinct from the others`,
      );
    }
    for (const lease of leases) await lease.release();
    for (const name of names) {
      await (await acquire(leaseOptions(f, b, name))).release();
    }
  });
}

async function eventuallyClaim(backend: Backend, lock: string, ms: number) {
  const deadline = performance.now() + ms;
  while (true) {
    const claim = await backend.tryAcquire(request(lock));
    if (claim) return claim;
    if (performance.now() > deadline) {
      throw new Error(`'${lock}' did not become free after its removal`);
    }
    await sleep(50);
  }
}
