/**
 * The memcached backend's contract fixture: the shared memcached (a restart
 * loses every lock), an out-of-band connection for faults, and the server
 * settled once, as a fresh server must be before it grants a lock (the
 * restart rule: backends/memcached/mod.ts).
 *
 * @module
 */

import { Connection } from "../../../backends/memcached/client.ts";
import { keysOf } from "../../../backends/memcached/keys.ts";
import { memcached } from "../../../backends/memcached/mod.ts";
import { Op } from "../../../backends/memcached/protocol.ts";
import type { Backend } from "../../../src/backend.ts";
import type { ContractFixture } from "../../contract/fixture.ts";
import { memcachedServer } from "../../helpers/servers/memcached.ts";
import {
  freePort,
  sharedServer,
  type TestServer,
} from "../../helpers/servers/server.ts";

/** Runs `work` on a connection of its own to one server, out of band. */
export async function admin<T>(
  port: number,
  work: (connection: Connection) => Promise<T>,
): Promise<T> {
  const connection = await Connection.open([{ host: "127.0.0.1", port }], {
    timeoutMs: 3_000,
  });
  try {
    return await work(connection);
  } finally {
    await connection.close();
  }
}

/**
 * Waits until a freshly started server grants locks: memcached's uptime
 * says it has certainly been up a moment, and one grant wrote its marker.
 */
export async function settle(backend: Backend): Promise<void> {
  const deadline = performance.now() + 15_000;
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
    if (performance.now() > deadline) {
      throw new Error("memcached never settled");
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The fixture for the shared server, or undefined where memcached can't run. */
export async function memcachedFixture(): Promise<
  ContractFixture | undefined
> {
  const server: TestServer | undefined = await sharedServer(memcachedServer);
  if (!server) return undefined;
  const uriAt = (port: number) => `memcached://127.0.0.1:${port}`;
  const uri = uriAt(server.port);
  {
    await using backend = memcached(uri);
    await settle(backend);
  }
  return {
    name: "memcached",
    uri,
    uriAt,
    uriWithSecret: (secret) =>
      `memcached://coolock:${secret}@127.0.0.1:${server.port}?timeout=3`,
    unreachableUri: uriAt(freePort()),
    open: (at = uri) => memcached(at),
    entry: { module: "backends/memcached/mod.ts", factory: "memcached" },
    ttl: 2,
    // Whole-second expiry: an item set for N s may live N + 1 s.
    freeWithinMs: 4_000,
    server,
    faults: { pause: true, partition: true, restart: "loses" },
    remove: async (lock) => {
      const { route, lock: key } = await keysOf(lock);
      await admin(server.port, (c) => c.send(route, Op.delete, key, {}));
    },
  };
}
