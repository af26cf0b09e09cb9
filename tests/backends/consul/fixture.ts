/**
 * The consul backend's contract fixture, on the Consul fake as a process of
 * its own (tests/helpers/servers/consul_fake.ts): two agents of one
 * datacenter, reaping sessions at 2 × TTL as Consul does.
 *
 * Consul's servers take sessions no shorter than their `session_ttl_min`
 * (10 s by default). The fake runs with `session_ttl_min = 3s`, a setting
 * real servers take too, and the URI says so (`session-ttl-min=3`), so that
 * the suite's many TTL waits stay short; `COOLOCK_CONSUL_TTL=10` runs it at
 * Consul's default instead.
 *
 * `open()` without a URI alternates between the two agents, so that a
 * suite's holder and contender sit on different agents (nodes).
 *
 * @module
 */

import { consul } from "../../../backends/consul/mod.ts";
import { consulKey } from "../../../backends/consul/keys.ts";
import type { ContractFixture } from "../../contract/fixture.ts";
import { consulFakeRecipe } from "../../helpers/servers/consul_fake.ts";
import { freePort, sharedServer } from "../../helpers/servers/server.ts";

/** The suite's TTL on Consul, in seconds. */
export const CONSUL_TEST_TTL = Number(
  Deno.env.get("COOLOCK_CONSUL_TTL") ?? "3",
);

async function call(
  port: number,
  method: string,
  path: string,
): Promise<unknown> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${response.status} ${text}`);
  }
  return text === "" ? undefined : JSON.parse(text);
}

/** The fixture on a shared fake; `undefined` where the fake can't run. */
export async function consulFixture(): Promise<ContractFixture | undefined> {
  const ttl = CONSUL_TEST_TTL;
  const server = await sharedServer(
    consulFakeRecipe(["--session-ttl-min", `${ttl}s`], `consul-ttl-${ttl}`),
  );
  if (!server) return undefined;
  const uriAt = (port: number) =>
    `consul://127.0.0.1:${port}?session-ttl-min=${ttl}`;
  let turn = 0;
  return {
    name: "consul",
    uri: uriAt(server.ports[0]),
    uriAt,
    uriWithSecret: (secret) =>
      `${uriAt(server.port)}&token=${encodeURIComponent(secret)}`,
    unreachableUri: uriAt(freePort()),
    open: (uri) => consul(uri ?? uriAt(server.ports[turn++ % 2])),
    entry: { module: "backends/consul/mod.ts", factory: "consul" },
    ttl,
    // A dead holder's session is reaped by 2 × TTL after its last renewal
    // (agent/consul/session_ttl.go), then its key is held for the session's
    // lock-delay: the TTL, at most 60 s.
    freeWithinMs: 2 * ttl * 1000 + Math.min(ttl * 1000, 60_000) + 1_000,
    server,
    faults: {
      pause: true,
      partition: true,
      restart: "keeps",
      async dropSession(lock) {
        const key = consulKey(lock);
        const entries = await call(
          server.port,
          "GET",
          `/v1/kv/${key}?recurse`,
        ).catch(() => []) as { Key: string; Session?: string }[];
        for (const { Key, Session } of entries ?? []) {
          if (Session && (Key === key || Key.startsWith(`${key}/`))) {
            await call(server.port, "PUT", `/v1/session/destroy/${Session}`);
          }
        }
      },
    },
    remove: async (lock) => {
      const key = consulKey(lock);
      await call(server.port, "DELETE", `/v1/kv/${key}`);
      await call(server.port, "DELETE", `/v1/kv/${key}/?recurse`);
    },
  };
}
