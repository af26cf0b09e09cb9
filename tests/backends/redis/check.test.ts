/**
 * `check` and `status` on Redis servers configured the ways that weaken a
 * lock or refuse coolock: an evicting memory policy, no persistence, AOF, a
 * password (wrong or missing), and commands renamed away (INFO, CONFIG).
 */

import { redis } from "../../../backends/redis/mod.ts";
import type { CheckResult } from "../../../src/backend.ts";
import { BackendUnavailableError } from "../../../src/backend.ts";
import { acquire } from "../../../src/lease.ts";
import { checkBackend, lockStatus } from "../../../src/operate.ts";
import { request } from "../../contract/common.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "../../helpers/assert.ts";
import { redisServer, redisServerWith } from "../../helpers/servers/redis.ts";
import {
  available,
  sharedServer,
  startServer,
} from "../../helpers/servers/server.ts";
import { settle } from "./fixture.ts";

const ready = { ignore: !available(redisServer) };

/** Runs `test` against a server of its own started with `extra` arguments. */
async function withServer(
  extra: string[],
  test: (port: number) => Promise<void>,
): Promise<void> {
  const server = await startServer(redisServerWith(extra));
  const keepAlive = setInterval(() => {}, 50);
  try {
    await test(server.port);
  } finally {
    await server.kill();
    clearInterval(keepAlive);
  }
}

function byName(results: CheckResult[]): Record<string, CheckResult> {
  for (const result of results) {
    assert(!result.detail.includes("\n"), `one line: ${result.detail}`);
  }
  return Object.fromEntries(results.map((r) => [r.name, r]));
}

Deno.test(
  "redis check on a plain server: fit, but without persistence",
  ready,
  async () => {
    const server = (await sharedServer(redisServer))!;
    await using backend = redis(`redis://127.0.0.1:${server.port}/0`);
    const checks = byName(await checkBackend(backend));
    assertEquals(
      Object.keys(checks),
      [
        "reachable",
        "credentials",
        "permissions",
        "version",
        "clock",
        "eviction",
        "persistence",
        "replication",
      ],
    );
    for (const name of ["reachable", "credentials", "permissions", "version"]) {
      assertEquals(checks[name].status, "ok", checks[name].detail);
    }
    assert(checks.reachable.ms! >= 0, "the round trip is measured");
    assertMatch(checks.version.detail, /^Redis \d+\.\d+/);
    assertEquals(checks.clock.status, "ok", checks.clock.detail);
    assert(Math.abs(checks.clock.ms!) < 1_000, "the same host's clock");
    assertEquals(checks.eviction.status, "ok");
    assertMatch(checks.eviction.detail, /maxmemory-policy is noeviction/);
    assertEquals(checks.persistence.status, "warn");
    assertMatch(
      checks.persistence.detail,
      /neither RDB snapshots nor AOF: a restart drops every lock/,
    );
    assertEquals(checks.replication.status, "ok");
  },
);

Deno.test(
  "redis check: an evicting policy warns, even volatile-*; AOF is fine",
  ready,
  () =>
    withServer(
      [
        "--maxmemory",
        "100mb",
        "--maxmemory-policy",
        "volatile-lru",
        "--appendonly",
        "yes",
      ],
      async (port) => {
        await using backend = redis(`redis://127.0.0.1:${port}/0`);
        const checks = byName(await checkBackend(backend));
        assertEquals(checks.eviction.status, "warn");
        assertMatch(
          checks.eviction.detail,
          /maxmemory-policy is volatile-lru: Redis may evict a lock key/,
        );
        assertEquals(checks.persistence.status, "ok");
        assertMatch(checks.persistence.detail, /AOF is on/);
      },
    ),
);

Deno.test(
  "redis check: an evicting policy without maxmemory evicts nothing",
  ready,
  () =>
    withServer(["--maxmemory-policy", "allkeys-lru"], async (port) => {
      await using backend = redis(`redis://127.0.0.1:${port}/0`);
      const checks = byName(await checkBackend(backend));
      assertEquals(checks.eviction.status, "ok");
      assertMatch(
        checks.eviction.detail,
        /maxmemory is 0, so no key is evicted/,
      );
    }),
);

Deno.test(
  "redis check: a wrong or missing password fails 'credentials', without the secret",
  ready,
  () =>
    withServer(["--requirepass", "right-one"], async (port) => {
      const secret = "Wr0ng-S3cret";
      for (
        const uri of [
          `redis://:${secret}@127.0.0.1:${port}/0`,
          `redis://127.0.0.1:${port}/0`,
        ]
      ) {
        await using backend = redis(uri);
        const results = await checkBackend(backend);
        const checks = byName(results);
        assertEquals(checks.reachable?.status, "ok", JSON.stringify(results));
        assertEquals(
          checks.credentials?.status,
          "fail",
          JSON.stringify(results),
        );
        assert(!JSON.stringify(results).includes(secret), "no secret");
      }
      await using good = redis(`redis://:right-one@127.0.0.1:${port}/0`);
      const checks = byName(await checkBackend(good));
      assertEquals(checks.credentials.status, "ok");
      assertEquals(checks.credentials.detail, "authenticated with a password");
    }),
);

Deno.test(
  "redis: a server that refuses INFO refuses locks with a clear reason; CONFIG refused only weakens check",
  ready,
  () =>
    withServer(
      ["--rename-command", "INFO", "", "--rename-command", "CONFIG", ""],
      async (port) => {
        await using backend = redis(`redis://127.0.0.1:${port}/0`);
        const error = await assertRejects(
          () => backend.tryAcquire(request(`noinfo-${Date.now()}`)),
          BackendUnavailableError,
        );
        assertMatch(
          error.message,
          /refuses INFO .*which coolock needs to tell a restarted server/,
        );
        assert(!error.message.includes("\n"), "one line");
        const checks = byName(await checkBackend(backend));
        assertEquals(checks.version.status, "warn");
        assertEquals(checks.persistence.status, "warn");
        assertMatch(checks.persistence.detail, /CONFIG GET is refused/);
      },
    ),
);

Deno.test(
  "redis status: node, owner, since, token, lease and guard left",
  ready,
  async () => {
    const server = (await sharedServer(redisServer))!;
    await using backend = redis(`redis://127.0.0.1:${server.port}/0`);
    await settle(backend);
    const lock = `status-${Date.now()}`;
    const lease = await acquire({
      backend,
      lock,
      ttl: 10,
      guardTime: 20,
      node: "n1",
    });
    const [status] = await lockStatus(backend, lock);
    assertEquals(status.limit, 1);
    assertEquals(status.lastToken, lease.token);
    const [holder] = status.holders;
    assertEquals(
      [holder.state, holder.node, holder.owner, holder.token],
      ["held", "n1", lease.owner, lease.token],
    );
    assert(Math.abs(holder.since!.getTime() - Date.now()) < 2_000, "since now");
    assert(
      holder.leaseLeftMs! > 15_000 && holder.leaseLeftMs! <= 20_000,
      `the lease covers the guard: ${holder.leaseLeftMs} ms`,
    );
    assert(
      holder.guardLeftMs! > 18_000 && holder.guardLeftMs! <= 20_000,
      `guard left ${holder.guardLeftMs} ms`,
    );
    await lease.release();
    const [after] = await lockStatus(backend, lock);
    assertEquals(after.holders[0].state, "guard");
    assertEquals(after.holders[0].leaseLeftMs, undefined);
    assert(after.holders[0].guardLeftMs! > 18_000, "the guard is left");
    await backend.forceRelease!(lock, AbortSignal.timeout(5_000));
  },
);
