/**
 * What the `etcd` (JSON gateway) and `etcd3` (gRPC) test files share: one
 * key layout, the same servers, and the same checks of auth, TLS, the fair
 * queue, close() and a process that exits once closed, each run with the
 * backend's own factory and parameters.
 *
 * @module
 */

import { lockPrefix } from "../../../backends/etcd/keys.ts";
import type { Backend } from "../../../src/backend.ts";
import { BackendUnavailableError } from "../../../src/backend.ts";
import { acquire } from "../../../src/lease.ts";
import type { ContractFixture } from "../../contract/fixture.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "../../helpers/assert.ts";
import {
  fixtureOf,
  lockNamesOf,
  moduleUrl,
  requestsWith,
  servedInOrder,
  sleep,
  stopServer,
  testCloseReleases,
  testScriptExits,
} from "../../helpers/backend_checks.ts";
import {
  enableAuth,
  ETCD_ROOT_PASSWORD,
  etcdAuthServer,
  etcdDeletePrefix,
  etcdKeys,
  etcdServer,
  etcdTlsServer,
} from "../../helpers/servers/etcd.ts";
import {
  available,
  sharedServer,
  startServer,
  type TestServer,
} from "../../helpers/servers/server.ts";

// tests/helpers/proxy.ts calls closeWrite() (a promise) without awaiting it,
// so a connection closed under it rejects out of band; that is the proxy's
// bug, not a lock failure.
globalThis.addEventListener("unhandledrejection", (event) => {
  const reason = event.reason;
  if (
    reason instanceof Deno.errors.BadResource &&
    /closeWrite[\s\S]*proxy\.ts/.test(String(reason.stack))
  ) event.preventDefault();
});

/** The shared etcd server of the test run, if etcd runs here. */
export const server: TestServer | undefined = await sharedServer(etcdServer);

/** The key prefix of a lock, under the default root. */
export const prefixOf = (lock: string): string => lockPrefix("coolock", lock);

/** How many keys a lock has on the shared server. */
export const keysOf = async (lock: string): Promise<number> =>
  (await etcdKeys(server!.port, prefixOf(lock))).length;

/** One of the two etcd backends, as its test file describes it. */
export interface EtcdFlavour {
  /** The scheme and the factory's name: `etcd` or `etcd3`. */
  readonly scheme: "etcd" | "etcd3";
  readonly open: (uri: string) => Backend;
  /** The TTL the contract suite uses. */
  readonly ttl: number;
}

/** The parts of one flavour's tests, on the shared server. */
export function etcdParts(flavour: EtcdFlavour) {
  const { scheme, open } = flavour;
  const uriAt = (port: number) => `${scheme}://127.0.0.1:${port}`;
  const fixture: ContractFixture | undefined = fixtureOf(server, {
    name: scheme,
    uriAt,
    uriWithSecret: (secret, port) =>
      `${scheme}://root:${secret}@127.0.0.1:${port}`,
    open,
    ttl: flavour.ttl,
    remove: (lock) => etcdDeletePrefix(server!.port, prefixOf(lock)),
  });
  return {
    uriAt,
    fixture,
    request: requestsWith({ expiresInMs: 10_000, timeoutMs: 10_000 }),
    lockName: lockNamesOf(scheme),
    withServer: { ignore: !server },
  };
}

/**
 * Registers the checks both flavours pass alike: auth with
 * re-authentication, TLS with client certificates, close(), and a script
 * that locks, waits, releases and closes, then exits by itself.
 */
export function etcdChecks(flavour: EtcdFlavour, options: {
  /** A query for the wrong-password URI, such as `?timeout=2`. */
  wrongQuery: string;
  wrongMessage: RegExp;
  /** Whether a client without credentials is refused too. */
  anonymousRejects: boolean;
  /** The TLS host: grpc-js needs a host name for SNI under Deno. */
  tlsHost: string;
  /** Whether a client without the CA is refused, with this message. */
  noCaMessage?: RegExp;
}): void {
  const { scheme, open } = flavour;
  const { fixture, request, lockName, withServer } = etcdParts(flavour);

  Deno.test(
    `${scheme}: user and password auth, with re-authentication`,
    withServer,
    async () => {
      const secured = await startServer(etcdAuthServer);
      try {
        await enableAuth(secured.port);
        const base = `127.0.0.1:${secured.port}`;
        await using good = open(
          `${scheme}://root:${ETCD_ROOT_PASSWORD}@${base}`,
        );
        const first = await good.tryAcquire(request(lockName("auth")));
        assert(first, "acquired with the password");
        await first.release(0);
        // The server's tokens expire after 1 s idle: the next call re-authenticates.
        await sleep(2_500);
        const second = await good.tryAcquire(request(lockName("auth")));
        assert(second, "acquired again after the token expired");
        await second.release(0);
        await using wrong = open(
          `${scheme}://root:hunter2@${base}${options.wrongQuery}`,
        );
        const error = await assertRejects(
          () => wrong.tryAcquire(request(lockName("auth"))),
          BackendUnavailableError,
        );
        assertMatch(error.message, options.wrongMessage);
        assert(
          !`${error.message} ${error.stack}`.includes("hunter2"),
          error.message,
        );
        if (options.anonymousRejects) {
          await using anonymous = open(`${scheme}://${base}`);
          await assertRejects(
            () => anonymous.tryAcquire(request(lockName("auth"))),
            BackendUnavailableError,
          );
        }
      } finally {
        await stopServer(secured);
      }
    },
  );

  Deno.test(`${scheme}: ${scheme}+https:// with ca, cert and key files`, {
    ignore: !available(etcdTlsServer),
  }, async () => {
    const tls = await startServer(etcdTlsServer);
    try {
      const base = `${scheme}+https://${options.tlsHost}:${tls.port}`;
      const files =
        `ca=${tls.dir}/ca.pem&cert=${tls.dir}/client.pem&key=${tls.dir}/client-key.pem`;
      await using good = open(`${base}?${files}`);
      const name = lockName("tls");
      const claim = await good.tryAcquire(request(name));
      assert(claim, "acquired over TLS with a client certificate");
      const waiter = acquire({
        backend: good,
        lock: name,
        guardTime: 0,
        ttl: 2,
        waitTimeout: 10,
      });
      await sleep(300);
      await claim.release(0);
      await (await waiter).release();
      await using noCert = open(`${base}?ca=${tls.dir}/ca.pem&timeout=2`);
      await assertRejects(
        () => noCert.tryAcquire(request(name)),
        BackendUnavailableError,
      );
      if (options.noCaMessage) {
        await using noCa = open(`${base}?timeout=2`);
        const error = await assertRejects(
          () => noCa.tryAcquire(request(name)),
          BackendUnavailableError,
        );
        assertMatch(error.message, options.noCaMessage);
      }
    } finally {
      await stopServer(tls);
    }
  });

  testCloseReleases({
    label: scheme,
    open: () => open(fixture!.uri),
    request,
    lockName,
    keys: keysOf,
    waiter: true,
    ignore: !server,
  });

  testScriptExits({
    label: scheme,
    name: "a script that locks, waits, releases and closes exits by itself",
    script: () => {
      const name = lockName("exit");
      const lock = `lock: "${name}", guardTime: 0, ttl: 2`;
      return `
    import { ${scheme} } from "${moduleUrl(`backends/${scheme}.ts`)}";
    import { acquire } from "${moduleUrl("src/lease.ts")}";
    const a = ${scheme}("${fixture!.uri}");
    const b = ${scheme}("${fixture!.uri}");
    const first = await acquire({ backend: a, ${lock} });
    const waiter = acquire({ backend: b, ${lock}, waitTimeout: 10 });
    setTimeout(() => first.release(), 1_500);
    const second = await waiter;
    await second.release();
    await a.close();
    await b.close();
    console.log("done");`;
    },
    expect: "done",
    withinMs: 8_000,
    test: withServer,
  });
}

/**
 * Queues a waiter on each of `backends` after the first and checks that
 * they are served in arrival order, woken by watches: resolves the order.
 */
export async function queueInOrder(
  backends: readonly Backend[],
  lock: string,
  options: { holdMs: number; settleMs?: number },
): Promise<{ order: number[]; handoffs: number[] }> {
  const result = await servedInOrder({
    backends,
    lock,
    ttl: 2,
    waitTimeout: 20,
    holdMs: options.holdMs,
    queued: () => sleep(300),
    beforeRelease: async () => {
      await sleep(options.settleMs ?? 0);
      assertEquals(await keysOf(lock), backends.length);
    },
  });
  for (const ms of result.handoffs) assert(ms < 500, `handoff took ${ms} ms`);
  return result;
}
