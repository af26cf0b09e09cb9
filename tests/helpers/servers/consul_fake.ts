/**
 * The Consul fake (tests/backends/consul/fake/) as a process of its own, so
 * that tests can SIGSTOP and SIGKILL it like a Consul cluster. No Consul
 * server can be installed here; the fake follows Consul's source. It serves
 * two agents (nodes `node-1` and `node-2`, on `ports[0]` and `ports[1]`) of
 * one datacenter, and keeps its state in the data dir, so that `restart()`
 * finds it again, as Consul's Raft log would.
 */

import { ask, type ServerRecipe } from "./server.ts";

const FAKE =
  new URL("../../backends/consul/fake/mod.ts", import.meta.url).pathname;

/** The fake with Consul's defaults: ACLs off, reaping at 2 × TTL, 10 s minimum TTL. */
export const consulFakeServer: ServerRecipe = consulFakeRecipe();

/**
 * A fake with extra command-line flags, such as `["--token", secret]` or
 * `["--session-ttl-min", "3s"]`; `kind` keeps differently configured fakes
 * apart in `sharedServer`.
 */
export function consulFakeRecipe(
  flags: readonly string[] = [],
  kind = "consul",
): ServerRecipe {
  return {
    kind,
    requires: [Deno.execPath(), FAKE],
    ports: 2,
    command: (dir, ports) => ({
      cmd: Deno.execPath(),
      args: [
        "run",
        "--quiet",
        "--no-config",
        "--allow-net=127.0.0.1",
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        "--allow-env=CONSUL_FAKE_TOKEN",
        "--unstable-no-legacy-abort",
        FAKE,
        ...ports.flatMap((port) => ["--port", String(port)]),
        "--data-dir",
        dir,
        ...flags,
      ],
    }),
    ready: async (_dir, [port]) =>
      /^HTTP\/1\.[01] 200/.test(
        await ask(port, "GET /v1/status/leader HTTP/1.0\r\n\r\n"),
      ),
  };
}
