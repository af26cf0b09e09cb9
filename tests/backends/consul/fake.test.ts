/**
 * The Consul API fake, pinned to Consul's HTTP API documentation (session.mdx,
 * kv.mdx, txn.mdx, features/blocking.mdx): status codes, field names, base64
 * values, lock-delay, what session invalidation does to keys, and blocking
 * queries. The consul backend is only as well tested as this fake is right.
 */

import { type ConsulFakeOptions, startConsulFake } from "./fake/mod.ts";
import { assert, assertEquals } from "../../helpers/assert.ts";

type Fake = ReturnType<typeof startConsulFake>;

async function withFake(
  options: ConsulFakeOptions,
  fn: (fake: Fake, call: Call) => Promise<void>,
): Promise<void> {
  await using fake = startConsulFake({ port: 0, ...options });
  const call: Call = async (method, path, body, headers = {}) => {
    const response = await fetch(`${fake.url}${path}`, {
      method,
      body,
      headers,
    });
    const text = await response.text();
    let json: unknown = undefined;
    try {
      json = JSON.parse(text);
    } catch { /* text */ }
    return {
      status: response.status,
      text,
      json,
      index: response.headers.get("x-consul-index"),
      type: response.headers.get("content-type"),
    };
  };
  await fn(fake, call);
}

type Call = (
  method: string,
  path: string,
  body?: string,
  headers?: Record<string, string>,
) => Promise<
  {
    status: number;
    text: string;
    json: unknown;
    index: string | null;
    type: string | null;
  }
>;

async function session(call: Call, fields: unknown): Promise<string> {
  const created = await call(
    "PUT",
    "/v1/session/create",
    JSON.stringify(fields),
  );
  assertEquals(created.status, 200, created.text);
  const { ID } = created.json as { ID: string };
  assert(/^[0-9a-f-]{36}$/.test(ID), `a UUID, not ${ID}`);
  return ID;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("consul fake: session create, info, renew and destroy answer as documented", async () => {
  await withFake({}, async (_fake, call) => {
    const id = await session(call, { Name: "test-session", TTL: "30s" });
    const info = await call("GET", `/v1/session/info/${id}`);
    assertEquals(info.status, 200);
    assert(Number(info.index) > 0, "info is a blocking endpoint");
    const [entry] = info.json as Record<string, unknown>[];
    assertEquals(Object.keys(entry), [
      "ID",
      "Name",
      "Node",
      "LockDelay",
      "Behavior",
      "TTL",
      "NodeChecks",
      "ServiceChecks",
      "CreateIndex",
      "ModifyIndex",
    ]);
    // Defaults: a 15 s lock-delay in nanoseconds, behavior release, serfHealth.
    assertEquals(
      [entry.LockDelay, entry.Behavior, entry.TTL, entry.NodeChecks],
      [15_000_000_000, "release", "30s", ["serfHealth"]],
    );
    const renewed = await call("PUT", `/v1/session/renew/${id}`);
    assertEquals(renewed.status, 200);
    assertEquals((renewed.json as { ID: string }[])[0].ID, id);
    const destroyed = await call("PUT", `/v1/session/destroy/${id}`);
    assertEquals([destroyed.status, destroyed.text], [200, "true"]);
    assertEquals((await call("GET", `/v1/session/info/${id}`)).json, []);
    const gone = await call("PUT", `/v1/session/renew/${id}`);
    assertEquals([gone.status, gone.text], [
      404,
      `Session id '${id}' not found`,
    ]);
    assertEquals(
      (await call("PUT", `/v1/session/destroy/${id}`)).status,
      200,
      "destroy is idempotent",
    );
  });
});

Deno.test("consul fake: session TTLs outside 10s to 24h and lock-delays over 60s are refused", async () => {
  await withFake({}, async (_fake, call) => {
    const short = await call(
      "PUT",
      "/v1/session/create",
      JSON.stringify({ TTL: "5s" }),
    );
    assertEquals(short.status, 500);
    assert(short.text.includes("[10s=24h0m0s]"), short.text);
    const long = await call(
      "PUT",
      "/v1/session/create",
      JSON.stringify({ TTL: "86401s" }),
    );
    assertEquals(long.status, 500);
    const delay = await call(
      "PUT",
      "/v1/session/create",
      JSON.stringify({ LockDelay: "61s" }),
    );
    assertEquals(delay.status, 500);
    // FixupLockDelay: a bare small number means seconds.
    const id = await session(call, { LockDelay: 5 });
    const [entry] = (await call("GET", `/v1/session/info/${id}`))
      .json as { LockDelay: number }[];
    assertEquals(entry.LockDelay, 5_000_000_000);
  });
});

Deno.test("consul fake: KV put, get and delete use the documented fields and base64 values", async () => {
  await withFake({}, async (_fake, call) => {
    const put = await call("PUT", "/v1/kv/zip?flags=42", "test");
    assertEquals([put.status, put.text, put.type], [
      200,
      "true",
      "application/json",
    ]);
    const got = await call("GET", "/v1/kv/zip");
    const [entry] = got.json as Record<string, unknown>[];
    assertEquals(Object.keys(entry), [
      "LockIndex",
      "Key",
      "Flags",
      "Value",
      "CreateIndex",
      "ModifyIndex",
    ]);
    assertEquals([entry.Key, entry.Flags, entry.Value, entry.LockIndex], [
      "zip",
      42,
      "dGVzdA==",
      0,
    ]);
    assertEquals(got.index, String(entry.ModifyIndex));
    assertEquals((await call("GET", "/v1/kv/zip?raw")).text, "test");
    await call("PUT", "/v1/kv/empty", "");
    const [empty] = (await call("GET", "/v1/kv/empty")).json as {
      Value: unknown;
    }[];
    assertEquals(empty.Value, null, "an empty value is null");
    const missing = await call("GET", "/v1/kv/nope");
    assertEquals([missing.status, missing.text], [404, ""]);
    assert(Number(missing.index) > 0, "a 404 still carries X-Consul-Index");
    assertEquals((await call("DELETE", "/v1/kv/zip")).text, "true");
    assertEquals((await call("GET", "/v1/kv/zip")).status, 404);
    // Slashes arrive encoded from the npm client and name one key.
    await call("PUT", "/v1/kv/coolock%2Fa", "x");
    assertEquals((await call("GET", "/v1/kv/coolock/a")).status, 200);
  });
});

Deno.test("consul fake: KV cas, recurse and keys behave as documented", async () => {
  await withFake({}, async (_fake, call) => {
    assertEquals((await call("PUT", "/v1/kv/a/1?cas=0", "v")).text, "true");
    assertEquals(
      (await call("PUT", "/v1/kv/a/1?cas=0", "v")).text,
      "false",
      "cas=0 only creates",
    );
    const [{ ModifyIndex }] = (await call("GET", "/v1/kv/a/1")).json as {
      ModifyIndex: number;
    }[];
    assertEquals(
      (await call("PUT", `/v1/kv/a/1?cas=${ModifyIndex + 1}`, "w")).text,
      "false",
    );
    assertEquals(
      (await call("PUT", `/v1/kv/a/1?cas=${ModifyIndex}`, "w")).text,
      "true",
    );
    await call("PUT", "/v1/kv/a/2", "v");
    await call("PUT", "/v1/kv/b", "v");
    const listed = await call("GET", "/v1/kv/a/?recurse");
    assertEquals(
      (listed.json as { Key: string }[]).map((e) => e.Key),
      ["a/1", "a/2"],
    );
    assertEquals((await call("GET", "/v1/kv/?keys")).json, [
      "a/1",
      "a/2",
      "b",
    ]);
    assertEquals(
      (await call("DELETE", "/v1/kv/a/1?cas=0")).text,
      "false",
      "a 0 index does not delete",
    );
    await call("DELETE", "/v1/kv/a/?recurse");
    assertEquals((await call("GET", "/v1/kv/a/?recurse")).status, 404);
    assertEquals((await call("GET", "/v1/kv/b")).status, 200);
  });
});

Deno.test("consul fake: acquire and release follow LockIndex and Session as documented", async () => {
  await withFake({}, async (_fake, call) => {
    const s1 = await session(call, { LockDelay: "0s" });
    const s2 = await session(call, {});
    assertEquals(
      (await call("PUT", `/v1/kv/l?acquire=${s1}`, "a")).text,
      "true",
    );
    assertEquals(
      (await call("PUT", `/v1/kv/l?acquire=${s1}`, "b")).text,
      "true",
      "the holder may update",
    );
    const [held] = (await call("GET", "/v1/kv/l")).json as Record<
      string,
      unknown
    >[];
    assertEquals([held.LockIndex, held.Session, held.Value], [1, s1, "Yg=="]);
    assertEquals(
      (await call("PUT", `/v1/kv/l?acquire=${s2}`, "c")).text,
      "false",
    );
    assertEquals(
      (await call("PUT", `/v1/kv/l?release=${s2}`, "c")).text,
      "false",
    );
    assertEquals(
      (await call("PUT", `/v1/kv/l?release=${s1}`, "d")).text,
      "true",
    );
    const [released] = (await call("GET", "/v1/kv/l")).json as Record<
      string,
      unknown
    >[];
    assertEquals(released.LockIndex, 1);
    assertEquals("Session" in released, false);
    assert(
      (released.ModifyIndex as number) > (held.ModifyIndex as number),
      "release increments ModifyIndex",
    );
    assertEquals(
      (await call("PUT", `/v1/kv/l?acquire=${s2}`, "e")).text,
      "true",
    );
    const [again] = (await call("GET", "/v1/kv/l")).json as {
      LockIndex: number;
    }[];
    assertEquals(again.LockIndex, 2);
    const invalid = await call(
      "PUT",
      "/v1/kv/m?acquire=00000000-0000-0000-0000-000000000000",
      "x",
    );
    assertEquals(invalid.status, 500);
    assert(invalid.text.startsWith("invalid session"), invalid.text);
  });
});

Deno.test("consul fake: session invalidation releases or deletes keys, and lock-delay holds them", async () => {
  await withFake({}, async (_fake, call) => {
    const releaser = await session(call, { Behavior: "release" });
    const deleter = await session(call, {
      Behavior: "delete",
      LockDelay: "600ms",
    });
    await call("PUT", `/v1/kv/r?acquire=${releaser}`, "x");
    await call("PUT", `/v1/kv/d?acquire=${deleter}`, "x");
    await call("PUT", `/v1/session/destroy/${releaser}`);
    await call("PUT", `/v1/session/destroy/${deleter}`);
    const [kept] = (await call("GET", "/v1/kv/r")).json as Record<
      string,
      unknown
    >[];
    assertEquals("Session" in kept, false, "release keeps the key, unlocked");
    assertEquals((await call("GET", "/v1/kv/d")).status, 404);
    const next = await session(call, {});
    // The releaser's default 15 s lock-delay holds 'r'; 600 ms holds 'd'.
    assertEquals(
      (await call("PUT", `/v1/kv/r?acquire=${next}`, "y")).text,
      "false",
    );
    assertEquals(
      (await call("PUT", `/v1/kv/d?acquire=${next}`, "y")).text,
      "false",
    );
    await sleep(700);
    assertEquals(
      (await call("PUT", `/v1/kv/d?acquire=${next}`, "y")).text,
      "true",
    );
    // An explicit release sets no lock-delay.
    await call("PUT", `/v1/kv/d?release=${next}`, "y");
    const other = await session(call, {});
    assertEquals(
      (await call("PUT", `/v1/kv/d?acquire=${other}`, "z")).text,
      "true",
    );
  });
});

Deno.test("consul fake: a session TTL invalidates at TTL x the multiplier", async () => {
  await withFake({ sessionTtlMinMs: 100 }, async (_fake, call) => {
    const id = await session(call, { TTL: "0.6s", Behavior: "delete" });
    await call("PUT", `/v1/kv/t?acquire=${id}`, "x");
    await sleep(300);
    assertEquals((await call("PUT", `/v1/session/renew/${id}`)).status, 200);
    await sleep(350);
    assertEquals((await call("GET", "/v1/kv/t")).status, 200, "renewed");
    await sleep(600);
    assertEquals((await call("GET", "/v1/kv/t")).status, 404);
    assertEquals((await call("PUT", `/v1/session/renew/${id}`)).status, 404);
  });
  await withFake(
    { sessionTtlMinMs: 100, ttlMultiplier: 2 },
    async (_fake, call) => {
      const id = await session(call, { TTL: "400ms" });
      await sleep(550);
      assertEquals(
        (await call("PUT", `/v1/session/renew/${id}`)).status,
        200,
        "alive past 1 x TTL",
      );
      await sleep(1_000);
      assertEquals((await call("PUT", `/v1/session/renew/${id}`)).status, 404);
    },
  );
});

Deno.test("consul fake: blocking queries return on a change, or at the wait timeout", async () => {
  await withFake({}, async (fake, call) => {
    await call("PUT", "/v1/kv/w", "1");
    const first = await call("GET", "/v1/kv/w");
    const started = performance.now();
    const blocked = call("GET", `/v1/kv/w?index=${first.index}&wait=5s`);
    await sleep(200);
    assertEquals(fake.state.waiting, 1);
    await call("PUT", "/v1/kv/other", "x");
    await sleep(100);
    assertEquals(fake.state.waiting, 1, "another key does not wake it");
    await call("PUT", "/v1/kv/w", "2");
    const changed = await blocked;
    assert(performance.now() - started < 2_000, "returned on the change");
    assert(Number(changed.index) > Number(first.index), "with a higher index");
    assertEquals((changed.json as { Value: string }[])[0].Value, "Mg==");
    const waitStarted = performance.now();
    const timedOut = await call(
      "GET",
      `/v1/kv/w?index=${changed.index}&wait=300ms`,
    );
    const waited = performance.now() - waitStarted;
    assert(waited >= 290 && waited < 1_000, `waited ${waited} ms`);
    assertEquals(timedOut.index, changed.index, "no change, same index");
    const stale = await call("GET", `/v1/kv/w?index=1&wait=5s`);
    assertEquals(stale.index, changed.index, "an old index returns at once");
    const deleted = call("GET", `/v1/kv/w?index=${changed.index}&wait=5s`);
    await sleep(50);
    await call("DELETE", "/v1/kv/w");
    const gone = await deleted;
    assertEquals(gone.status, 404);
    assert(Number(gone.index) > Number(changed.index), "deletion wakes it");
  });
});

Deno.test("consul fake: ACL tokens: none, wrong and right, by header, bearer or query", async () => {
  await withFake({ token: "s3cret" }, async (_fake, call) => {
    const none = await call("GET", "/v1/kv/x");
    assertEquals([none.status, none.text], [403, "Permission denied"]);
    const wrong = await call("GET", "/v1/kv/x", undefined, {
      "X-Consul-Token": "nope",
    });
    assertEquals([wrong.status, wrong.text], [403, "ACL not found"]);
    for (
      const headers of [
        { "X-Consul-Token": "s3cret" },
        { Authorization: "Bearer s3cret" },
      ] as Record<string, string>[]
    ) {
      assertEquals(
        (await call("GET", "/v1/kv/x", undefined, headers)).status,
        404,
      );
    }
    assertEquals((await call("GET", "/v1/kv/x?token=s3cret")).status, 404);
    assertEquals((await call("GET", "/v1/status/leader")).status, 200);
  });
});

Deno.test("consul fake: key names follow Consul 1.21.5's check; an unknown dc has no path", async () => {
  await withFake({}, async (_fake, call) => {
    const percent = await call("PUT", "/v1/kv/a%25b", "x");
    assertEquals(percent.status, 400);
    assert(percent.text.startsWith("invalid key name"), percent.text);
    assertEquals((await call("PUT", "/v1/kv/a..b", "x")).status, 400);
    assertEquals((await call("PUT", "/v1/kv/a_2Fb-c/d", "x")).status, 200);
    const dc = await call("GET", "/v1/kv/x?dc=dc2");
    assertEquals([dc.status, dc.text], [500, "No path to datacenter"]);
  });
  await withFake({ validateKeys: false }, async (_fake, call) => {
    assertEquals((await call("PUT", "/v1/kv/a%25b", "x")).status, 200);
  });
});

Deno.test("consul fake: a transaction applies every operation or none", async () => {
  await withFake({}, async (_fake, call) => {
    const s1 = await session(call, { LockDelay: "0s" });
    const s2 = await session(call, {});
    await call("PUT", `/v1/kv/h?acquire=${s1}`, "x");
    const op = (Verb: string, Session: string) => ({
      KV: { Verb, Key: "h", Value: btoa("y"), Session },
    });
    const failed = await call(
      "PUT",
      "/v1/txn",
      JSON.stringify([op("unlock", s2), op("lock", s2)]),
    );
    assertEquals(failed.status, 409);
    const { Errors } = failed.json as { Errors: { OpIndex: number }[] };
    assertEquals(Errors[0].OpIndex, 0);
    const [still] = (await call("GET", "/v1/kv/h")).json as {
      Session: string;
    }[];
    assertEquals(still.Session, s1, "rolled back");
    const moved = await call(
      "PUT",
      "/v1/txn",
      JSON.stringify([op("unlock", s1), op("lock", s2)]),
    );
    assertEquals(moved.status, 200, moved.text);
    const { Results } = moved.json as {
      Results: { KV: { Session?: string; Value: unknown } }[];
    };
    assertEquals(Results.length, 2);
    assertEquals([Results[1].KV.Session, Results[1].KV.Value], [s2, null]);
    const [entry] = (await call("GET", "/v1/kv/h")).json as {
      Session: string;
      LockIndex: number;
      Value: string;
    }[];
    assertEquals([entry.Session, entry.LockIndex, entry.Value], [
      s2,
      2,
      "eQ==",
    ]);
  });
});
