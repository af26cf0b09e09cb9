/**
 * Shared SQL tests of getting connected: URIs checked at once and never
 * echoed with a secret, bounded failures, refused logins, TLS, and the
 * Deno permissions the backend declares being all that it needs.
 *
 * @module
 */

import { BackendUnavailableError } from "../../../src/backend.ts";
import { checkBackend } from "../../../src/operate.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "../../helpers/assert.ts";
import { testCertificates } from "../../helpers/certs.ts";
import { startServer } from "../../helpers/servers/server.ts";
import { fresh, request, serverTest, type SqlAdapter } from "./adapter.ts";

/** A TCP port that accepts connections and never says a word. */
function blackHole(): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) conns.push(conn);
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const conn of conns) conn.close();
      await accepting;
    },
  };
}

const ROOT = new URL("../../../", import.meta.url);

/** Registers the connection tests for one SQL backend. */
export function connectTests(adapter: SqlAdapter): void {
  const { name } = adapter;

  Deno.test(`${name}: bad URIs are refused at once, one line, without the password`, () => {
    for (const [uri, message] of adapter.badUris) {
      const error = assertThrows(() => adapter.open(uri), TypeError);
      assertMatch(error.message, message, uri);
      assert(!/s3cr/.test(error.message), `the password leaked: ${error}`);
      assert(!error.message.includes("\n"), "one line");
    }
  });

  serverTest(
    adapter,
    "a bad password is BackendUnavailableError for a lock, a failed credentials check for check()",
    async () => {
      const fixture = adapter.fixture!;
      await using backend = adapter.open(fixture.uriWithSecret("wr0ng-s3cret"));
      const error = await assertRejects(
        () => backend.tryAcquire(request("x")),
        BackendUnavailableError,
      );
      assert(!/s3cret|coolock-test-pw/.test(error.message), error.message);
      const results = await checkBackend(backend);
      const credentials = results.find((r) => r.name === "credentials");
      assertEquals(credentials?.status, "fail", JSON.stringify(results));
      assert(!/s3cret/.test(JSON.stringify(results)), "no secret in check");
    },
  );

  serverTest(
    adapter,
    "a server that never answers fails within connect_timeout",
    async () => {
      const hole = blackHole();
      const uri = `${adapter.fixture!.uriAt(hole.port)}?connect_timeout=1`;
      await using backend = adapter.open(uri);
      const started = performance.now();
      await assertRejects(
        () => backend.tryAcquire(request("x")),
        BackendUnavailableError,
      );
      const took = performance.now() - started;
      assert(took < 3_000, `took ${took} ms`);
      await hole.close();
    },
  );

  serverTest(
    adapter,
    "the Deno permissions the backend declares are all a lock needs",
    async () => {
      const fixture = adapter.fixture!;
      const logins = [
        { uri: fixture.uri, env: {} },
        ...(adapter.envLogin ? [adapter.envLogin] : []),
      ];
      for (const { uri, env } of logins) {
        const backend = adapter.open(uri);
        const flags = {
          net: [] as string[],
          env: [] as string[],
          sys: [] as string[],
        };
        for (const permission of backend.permissions ?? []) {
          if (permission.name === "net") flags.net.push(permission.host!);
          if (permission.name === "env") flags.env.push(permission.variable!);
          if (permission.name === "sys") flags.sys.push(permission.kind!);
        }
        await backend.close();
        const { module, factory } = fixture.entry;
        const code = `import { ${factory} } from ${
          JSON.stringify(new URL(module, ROOT).href)
        };
          const backend = ${factory}(${JSON.stringify(uri)});
          const claim = await backend.tryAcquire({ name: ${
          JSON.stringify(fresh("perm"))
        }, owner: "p:1:x", node: "p", limit: 1, expiresInMs: 5000, guardMs: 0,
            wait: false, signal: new AbortController().signal });
          await claim.release(0);
          await backend.close();
          console.log("ok");`;
        const script = await Deno.makeTempFile({ suffix: ".ts" });
        await Deno.writeTextFile(script, code);
        const denoDir = Deno.env.get("DENO_DIR") ??
          `${Deno.env.get("HOME")}/.cache/deno`;
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--quiet",
            "--no-prompt",
            `--allow-read=${ROOT.pathname},${denoDir},${script}`,
            `--allow-net=${flags.net.join(",")}`,
            `--allow-env=${flags.env.join(",")}`,
            ...(flags.sys.length ? [`--allow-sys=${flags.sys.join(",")}`] : []),
            script,
          ],
          env,
          stdout: "piped",
          stderr: "piped",
        }).output();
        await Deno.remove(script);
        const decoder = new TextDecoder();
        assertEquals(
          decoder.decode(out.stdout).trim(),
          "ok",
          `${uri}: ${decoder.decode(out.stderr)}`,
        );
      }
    },
  );

  serverTest(
    adapter,
    "TLS with a CA verifies the server, and required TLS insists",
    async () => {
      const { tls } = adapter;
      const certs = await testCertificates();
      const tlsServer = await startServer(tls.server(certs));
      try {
        const base = tls.uriAt(tlsServer.port);
        const lock = fresh("tls");
        for (const query of tls.accepted(certs)) {
          await using backend = adapter.open(`${base}?${query}`);
          const claim = await backend.tryAcquire(request(lock));
          assert(claim, query);
          if (tls.encrypted) {
            const encrypted = await tls.encrypted(tlsServer.port, lock);
            assertEquals(encrypted, true, "the holder's session is encrypted");
          }
          await claim.release(0);
        }
        for (const uri of tls.refused(base, certs)) {
          await using backend = adapter.open(uri);
          await assertRejects(
            () => backend.tryAcquire(request(lock)),
            BackendUnavailableError,
          );
        }
      } finally {
        // The server's child process is unref'd: a timer keeps the loop alive
        // until its exit is seen.
        const awake = setInterval(() => {}, 50);
        await tlsServer.kill().finally(() => clearInterval(awake));
        await Deno.remove(tlsServer.dir, { recursive: true });
        await Deno.remove(certs.dir, { recursive: true });
      }
    },
  );
}
