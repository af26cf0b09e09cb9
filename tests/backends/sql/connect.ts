/**
 * Shared SQL tests of getting connected: URIs checked at once, no client
 * loaded before use, bounded failures, TLS.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BackendUnavailableError } from "../../../src/backend.ts";
import { request, type SqlAdapter } from "./adapter.ts";
import { testCertificates } from "../../helpers/certs.ts";
import { startServer } from "../../helpers/servers/server.ts";

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

/** Registers the connection tests for one SQL backend. */
export function connectTests(adapter: SqlAdapter): void {
  const { name } = adapter;
  const ignore = adapter.fixture === undefined;

  Deno.test(`${name}: bad URIs are refused at once, without the password`, () => {
    for (const [uri, message] of adapter.badUris) {
      assert.throws(() => adapter.open(uri), (error: Error) => {
        assert.ok(error instanceof TypeError, uri);
        assert.match(error.message, message);
        assert.doesNotMatch(error.message, /s3cret/);
        return true;
      });
    }
  });

  Deno.test(`${name}: importing and opening the backend loads no npm client`, async () => {
    const code = `import { ${name} } from ${
      JSON.stringify(adapter.module.href)
    }; ${name}(${JSON.stringify(adapter.offlineUri)}); console.log("ok");`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-npm", code],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "ok");
  });

  Deno.test({
    name: `${name}: a bad password or no server is BackendUnavailableError`,
    ignore,
    async fn() {
      const fixture = adapter.fixture!;
      for (
        const uri of [
          fixture.uriWithSecret("wr0ng-s3cret"),
          fixture.unreachableUri,
        ]
      ) {
        const backend = adapter.open(uri);
        const started = performance.now();
        await assert.rejects(
          backend.tryAcquire(request("x")),
          (error: Error) => {
            assert.ok(error instanceof BackendUnavailableError, error.message);
            assert.doesNotMatch(error.message, /s3cret|coolock-test-pw/);
            return true;
          },
        );
        assert.ok(performance.now() - started < 6_000);
        await backend.close();
      }
    },
  });

  Deno.test({
    name: `${name}: a server that never answers fails within connect_timeout`,
    ignore,
    async fn() {
      const hole = blackHole();
      const uri = `${adapter.fixture!.uriAt(hole.port)}?connect_timeout=1`;
      const backend = adapter.open(uri);
      const started = performance.now();
      await assert.rejects(
        backend.tryAcquire(request("x")),
        BackendUnavailableError,
      );
      const took = performance.now() - started;
      assert.ok(took < 3_000, `took ${took} ms`);
      await backend.close();
      await hole.close();
    },
  });

  Deno.test({
    name:
      `${name}: TLS with a CA verifies the server, and required TLS insists`,
    ignore,
    async fn() {
      const { tls } = adapter;
      const certs = await testCertificates();
      const tlsServer = await startServer(tls.server(certs));
      try {
        const base = tls.uriAt(tlsServer.port);
        const lock = `tls-${crypto.randomUUID()}`;
        for (const query of tls.accepted(certs)) {
          await using backend = adapter.open(`${base}?${query}`);
          const claim = await backend.tryAcquire(request(lock));
          assert.ok(claim, query);
          if (tls.encrypted) {
            const encrypted = await tls.encrypted(tlsServer.port, lock);
            assert.equal(encrypted, true, "the holder's session is encrypted");
          }
          await claim.release(0);
        }
        for (const uri of tls.refused(base, certs)) {
          await using backend = adapter.open(uri);
          await assert.rejects(
            backend.tryAcquire(request(lock)),
            BackendUnavailableError,
            uri,
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
  });
}
