/**
 * The Consul API fake (tests/fakes/consul.ts) as a process of its own, so
 * that the contract suite can SIGSTOP and SIGKILL it like a real agent. No
 * Consul server can be installed here; the fake follows Consul's HTTP API
 * documentation. It keeps its KV and sessions in the data dir, so that
 * `restart()` finds them again, as a Consul server's Raft log would.
 */

import { ask, type ServerRecipe } from "./server.ts";

const FAKE =
  new URL("../../backends/consul/fake/mod.ts", import.meta.url).pathname;

/** The fake with its defaults: ACLs off, TTL invalidation at exactly TTL. */
export const consulFakeServer: ServerRecipe = consulFakeRecipe();

/** A fake with extra command-line flags, such as `["--token", secret]`. */
export function consulFakeRecipe(flags: readonly string[] = []): ServerRecipe {
  return {
    kind: "consul",
    requires: [Deno.execPath(), FAKE],
    command: (dir, [port]) => ({
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
        "--port",
        String(port),
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
