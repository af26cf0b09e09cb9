/**
 * The Redis backend's contract fixture: the shared redis-server (without
 * persistence, so a restart loses every lock), an out-of-band client for
 * faults, and the server settled once, as a fresh server must be before it
 * grants a lock (the restart rule: backends/redis/scripts.ts).
 *
 * @module
 */

import { loadRedis, type RedisClient } from "../../../backends/redis/client.ts";
import { redis } from "../../../backends/redis/mod.ts";
import type { Backend } from "../../../src/backend.ts";
import type { ContractFixture } from "../../contract/fixture.ts";
import { redisServer } from "../../helpers/servers/redis.ts";
import {
  freePort,
  sharedServer,
  type TestServer,
} from "../../helpers/servers/server.ts";

/** Runs `work` on a client of its own to `port`, out of band. */
export async function admin<T>(
  port: number,
  work: (client: RedisClient) => Promise<T>,
): Promise<T> {
  const Redis = await loadRedis();
  const client = new Redis({
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
  });
  await client.connect();
  try {
    return await work(client);
  } finally {
    client.disconnect();
  }
}

/**
 * Waits until a freshly started server grants locks: it has been up for
 * more than a second, and one grant wrote its marker.
 */
export async function settle(backend: Backend): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (true) {
    const claim = await backend.tryAcquire({
      name: "fixture-settle",
      owner: `fixture:${crypto.randomUUID()}`,
      node: "fixture",
      limit: 1,
      expiresInMs: 1,
      guardMs: 0,
      wait: false,
      signal: AbortSignal.timeout(5_000),
    });
    if (claim) return await claim.release(0);
    if (performance.now() > deadline) throw new Error("redis never settled");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The fixture for the shared server, or undefined where redis can't run. */
export async function redisFixture(): Promise<ContractFixture | undefined> {
  const server: TestServer | undefined = await sharedServer(redisServer);
  if (!server) return undefined;
  const uriAt = (port: number) => `redis://127.0.0.1:${port}/0`;
  const uri = uriAt(server.port);
  {
    await using backend = redis(uri);
    await settle(backend);
  }
  return {
    name: "redis",
    uri,
    uriAt,
    uriWithSecret: (secret) =>
      `redis://coolock:${secret}@127.0.0.1:${server.port}/0?connect_timeout=3`,
    unreachableUri: uriAt(freePort()),
    open: (at = uri) => redis(at),
    entry: { module: "backends/redis/mod.ts", factory: "redis" },
    ttl: 2,
    freeWithinMs: 3_000,
    server,
    faults: { pause: true, partition: true, restart: "loses" },
    remove: (lock) =>
      admin(server.port, async (c) => void await c.del(`coolock:lock:${lock}`)),
  };
}
