/**
 * The consul backend's operator calls, where Consul differs: `status`
 * times come from the holder's clock, a guard shows with its end;
 * `forceRelease` deletes a key before destroying its session so that no
 * lock-delay starts; `check` reports the token, the permissions, the
 * datacenter and the agent's clock skew from its `Date` header. The
 * generic cases are in the contract suite.
 */

import { consul } from "../../../backends/consul/mod.ts";
import { assert, assertEquals, assertMatch } from "../../helpers/assert.ts";
import { startConsulFake } from "./fake/mod.ts";
import { claimOf, request, sessionsOf, uriOf, withBackend } from "./helpers.ts";

const signal = () => AbortSignal.timeout(10_000);

Deno.test("consul operate: status names the holder by its stored value; a guard shows until when, and a semaphore's slots", async () => {
  await withBackend({}, async (backend) => {
    const before = Date.now();
    const claim = await claimOf(backend, "who", {
      node: "web-1",
      owner: "web-1:42:ab",
    });
    const [held] = await backend.status!("who", signal());
    assertEquals(held.holders.length, 1);
    const [holder] = held.holders;
    assertEquals([holder.state, holder.node, holder.owner, holder.token], [
      "held",
      "web-1",
      "web-1:42:ab",
      claim.token,
    ]);
    assert(
      holder.since!.getTime() >= before - 5 &&
        holder.since!.getTime() <= Date.now(),
      "since, by the holder's clock",
    );
    assertEquals(
      holder.leaseLeftMs,
      undefined,
      "Consul doesn't expose a session's time left",
    );
    await claim.release(5_000);
    const [guarded] = await backend.status!("who", signal());
    assertEquals(guarded.holders.map((h) => [h.state, h.token]), [[
      "guard",
      claim.token,
    ]]);
    assert(guarded.holders[0].guardLeftMs! > 4_000, "the guard's end");
    const slots = [
      await claimOf(backend, "slots", { limit: 2 }),
      await claimOf(backend, "slots", { limit: 2 }),
    ];
    await slots[1].release(3_000);
    const [semaphore] = await backend.status!("slots", signal());
    assertEquals(semaphore.limit, 2);
    assertEquals(
      semaphore.holders.map((h) => [h.slot, h.state, h.token]),
      [[0, "held", slots[0].token], [1, "guard", slots[1].token]],
    );
    const all = await backend.status!(undefined, signal());
    assertEquals(all.map((s) => s.name).sort(), ["slots", "who"]);
    await slots[0].release(0);
  });
});

Deno.test("consul operate: forceRelease deletes the key before the session, so no lock-delay starts", async () => {
  await withBackend({}, async (backend, fake) => {
    await claimOf(backend, "stuck", { expiresInMs: 30_000 });
    const [session] = sessionsOf(fake).values();
    assertEquals(session.LockDelay, 30_000_000_000, "a 30 s lock-delay");
    const removed = await backend.forceRelease!("stuck", signal());
    assertEquals(removed.map((r) => r.what), ["session"]);
    assertMatch(removed[0].detail, /on coolock\/stuck \(node test\)/);
    const next = await backend.tryAcquire(request("stuck"));
    assert(next, "free at once");
    await next.release(0);
  });
});

Deno.test("consul operate: check reports the agent, the token, the permissions and the clock skew", async () => {
  await using fake = startConsulFake({
    sessionTtlMinMs: 1_000,
    clockOffsetMs: 5_000,
    acl: {
      tokens: [
        { secret: "full-token", rules: "management" },
        {
          secret: "read-token",
          rules: {
            key: { "": "read" },
            session: { "": "write" },
            agent: { "": "read" },
          },
        },
      ],
    },
  });
  const run = async (query: string) => {
    await using backend = consul(uriOf(fake, 0, query));
    const results = await backend.check!(signal());
    return Object.fromEntries(results.map((r) => [r.name, r]));
  };
  const good = await run("&token=full-token");
  assertEquals(
    Object.keys(good),
    ["reachable", "credentials", "version", "permissions", "clock"],
  );
  assertEquals(good.reachable.status, "ok");
  assertMatch(
    good.version.detail,
    /^Consul 1\.21\.5 on node node-1 \(client agent\), datacenter dc1$/,
  );
  assertEquals(good.permissions.status, "ok");
  assertEquals(good.clock.status, "warn", good.clock.detail);
  assert(Math.abs(good.clock.ms! - 5_000) < 1_200, `skew ${good.clock.ms} ms`);
  const readOnly = await run("&token=read-token");
  assertEquals(readOnly.permissions.status, "fail");
  assertMatch(readOnly.permissions.detail, /Permission denied: .*key:write/);
  const unknown = await run("&token=nobody-knows");
  assertEquals(unknown.credentials.status, "fail");
  const elsewhere = await run("&token=full-token&dc=dc2");
  assertEquals(elsewhere.datacenter.status, "fail");
  for (
    const result of [good, readOnly, unknown, elsewhere].flatMap(Object.values)
  ) {
    assert(
      !/full-token|read-token|nobody-knows/.test(result.detail),
      result.detail,
    );
  }
});
