/**
 * The Consul fake, pinned to Consul's own source (hashicorp/consul): each
 * test names the file and function whose behaviour it asserts. The consul
 * backend is only as well tested as this fake is right.
 */

import { type ConsulFakeOptions, startConsulFake } from "./fake/mod.ts";
import { assert, assertEquals } from "../../helpers/assert.ts";

type Fake = ReturnType<typeof startConsulFake>;

interface Answer {
  status: number;
  text: string;
  json: unknown;
  index: string | null;
  type: string | null;
  date: string | null;
}

type Call = (
  method: string,
  path: string,
  body?: unknown,
  options?: { headers?: Record<string, string>; port?: number },
) => Promise<Answer>;

async function withFake(
  options: ConsulFakeOptions,
  fn: (fake: Fake, call: Call) => Promise<void>,
): Promise<void> {
  await using fake = startConsulFake(options);
  const call: Call = async (method, path, body, { headers, port } = {}) => {
    const response = await fetch(
      `http://127.0.0.1:${port ?? fake.port}${path}`,
      {
        method,
        body: body === undefined
          ? undefined
          : typeof body === "string"
          ? body
          : JSON.stringify(body),
        headers,
      },
    );
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
      date: response.headers.get("date"),
    };
  };
  await fn(fake, call);
}

async function session(
  call: Call,
  fields: unknown,
  port?: number,
): Promise<string> {
  const created = await call("PUT", "/v1/session/create", fields, { port });
  assertEquals(created.status, 200, created.text);
  const { ID } = created.json as { ID: string };
  assert(/^[0-9a-f-]{36}$/.test(ID), `a UUID, not ${ID}`);
  return ID;
}

async function info(call: Call, id: string): Promise<Record<string, unknown>> {
  const [entry] = (await call("GET", `/v1/session/info/${id}`)).json as Record<
    string,
    unknown
  >[];
  return entry;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const critical = (node: string) => ({
  Node: node,
  Check: { CheckID: "serfHealth", Status: "critical" },
});

Deno.test("consul fake: agent/session_endpoint.go SessionCreate defaults to the agent's node, serfHealth, 15 s lock-delay and release", async () => {
  await withFake({ agents: 2 }, async (fake, call) => {
    const id = await session(call, { Name: "test-session", TTL: "30s" });
    const entry = await info(call, id);
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
    assertEquals(
      [
        entry.Node,
        entry.LockDelay,
        entry.Behavior,
        entry.TTL,
        entry.NodeChecks,
      ],
      ["node-1", 15_000_000_000, "release", "30s", ["serfHealth"]],
    );
    // The second agent is another node of the same datacenter.
    const other = await session(call, {}, fake.ports[1]);
    assertEquals((await info(call, other)).Node, "node-2");
  });
});

Deno.test("consul fake: agent/session_endpoint.go fixupEmptySessionChecks: Checks: [] takes out serfHealth; NodeChecks: [] too", async () => {
  await withFake({}, async (_fake, call) => {
    for (const body of [{ Checks: [] }, { checks: [] }, { NodeChecks: [] }]) {
      const entry = await info(call, await session(call, body));
      assertEquals(
        [entry.NodeChecks, entry.ServiceChecks],
        [[], null],
        JSON.stringify(body),
      );
    }
    const explicit = await info(
      call,
      await session(call, { Checks: ["serfHealth"] }),
    );
    assertEquals(explicit.NodeChecks, ["serfHealth"]);
  });
});

Deno.test("consul fake: structs.Session.UnmarshalJSON reads a bare small LockDelay as seconds; Session.Apply keeps one over 60 s", async () => {
  await withFake({}, async (_fake, call) => {
    assertEquals(
      (await info(call, await session(call, { LockDelay: 5 }))).LockDelay,
      5_000_000_000,
    );
    assertEquals(
      (await info(call, await session(call, { LockDelay: "250ms" }))).LockDelay,
      250_000_000,
    );
    // Session.Apply (agent/consul/session_endpoint.go) has no lock-delay check.
    const long = await session(call, { LockDelay: "120s" });
    assertEquals((await info(call, long)).LockDelay, 120_000_000_000);
  });
});

Deno.test("consul fake: state/session.go deleteSessionTxn clamps a lock-delay to structs.MaxLockDelay (60 s)", async () => {
  await withFake({}, async (fake, call) => {
    const id = await session(call, { LockDelay: "120s", Checks: [] });
    await call("PUT", `/v1/kv/clamped?acquire=${id}`, "x");
    const destroyedAt = Date.now();
    await call("PUT", `/v1/session/destroy/${id}`);
    const until = fake.state.lockDelays.get("clamped")!;
    assert(
      Math.abs(until - destroyedAt - 60_000) < 1_000,
      `a 60 s delay, not ${until - destroyedAt} ms`,
    );
    const next = await session(call, {});
    assertEquals(
      (await call("PUT", `/v1/kv/clamped?acquire=${next}`, "y")).text,
      "false",
      "still in its lock-delay",
    );
  });
});

Deno.test("consul fake: agent/consul/session_endpoint.go Session.Apply takes TTLs from session_ttl_min to 24 h and names the range", async () => {
  await withFake({}, async (_fake, call) => {
    const short = await call("PUT", "/v1/session/create", { TTL: "5s" });
    assertEquals([short.status, short.text], [
      500,
      "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]",
    ]);
    assertEquals(
      (await call("PUT", "/v1/session/create", { TTL: "86401s" })).status,
      500,
    );
    const behavior = await call("PUT", "/v1/session/create", { Behavior: "x" });
    assertEquals(behavior.text, "Invalid Behavior setting 'x'");
  });
  await withFake({ sessionTtlMinMs: 2_000 }, async (_fake, call) => {
    await session(call, { TTL: "2s" });
    const short = await call("PUT", "/v1/session/create", { TTL: "1s" });
    assert(short.text.endsWith("must be between [2s=24h0m0s]"), short.text);
  });
});

Deno.test("consul fake: state/catalog.go ensureCheckTxn: a critical serfHealth deletes the sessions bound to it, not a check-less one", async () => {
  await withFake({ agents: 2 }, async (fake, call) => {
    const bound = await session(call, { Behavior: "delete", LockDelay: "0s" });
    const free = await session(call, { Behavior: "delete", Checks: [] });
    const elsewhere = await session(call, {}, fake.ports[1]);
    await call("PUT", `/v1/kv/bound?acquire=${bound}`, "x");
    await call("PUT", `/v1/kv/free?acquire=${free}`, "x");
    const failed = await call(
      "PUT",
      "/v1/catalog/register",
      critical("node-1"),
    );
    assertEquals(failed.status, 200, failed.text);
    assertEquals((await call("PUT", `/v1/session/renew/${bound}`)).status, 404);
    assertEquals(
      (await call("GET", "/v1/kv/bound")).status,
      404,
      "its key went with it",
    );
    assertEquals((await call("PUT", `/v1/session/renew/${free}`)).status, 200);
    const [kept] = (await call("GET", "/v1/kv/free")).json as {
      Session: string;
    }[];
    assertEquals(
      kept.Session,
      free,
      "the check-less session still holds its key",
    );
    assertEquals(
      (await call("PUT", `/v1/session/renew/${elsewhere}`)).status,
      200,
    );
    // state/session.go sessionCreateTxn: no new session on a critical check.
    const refused = await call("PUT", "/v1/session/create", {});
    assertEquals([refused.status, refused.text], [
      500,
      "Check 'serfHealth' is in critical state",
    ]);
    await session(call, { Checks: [] });
    assertEquals(fake.cluster.nodeChecks("node-1")[0].Status, "critical");
  });
});

Deno.test("consul fake: state/catalog.go deleteNodeTxn: a deregistered node's sessions all go, check-less ones too, with their lock-delay", async () => {
  await withFake({ agents: 2 }, async (fake, call) => {
    const free = await session(call, {
      Behavior: "delete",
      Checks: [],
      LockDelay: "700ms",
    });
    await call("PUT", `/v1/kv/left?acquire=${free}`, "x");
    await call("PUT", "/v1/catalog/deregister", { Node: "node-1" });
    assertEquals((await call("PUT", `/v1/session/renew/${free}`)).status, 404);
    assertEquals((await call("GET", "/v1/kv/left")).status, 404);
    const other = await session(call, {}, fake.ports[1]);
    assertEquals(
      (await call("PUT", `/v1/kv/left?acquire=${other}`, "y")).text,
      "false",
      "the lock-delay holds the key",
    );
    await sleep(800);
    assertEquals(
      (await call("PUT", `/v1/kv/left?acquire=${other}`, "y")).text,
      "true",
    );
    const missing = await call("PUT", "/v1/session/create", {});
    assertEquals(missing.text, "Missing node registration");
  });
});

Deno.test("consul fake: agent/consul/session_ttl.go reaps a session at TTL × SessionTTLMultiplier (2), re-armed by a renewal", async () => {
  await withFake({ sessionTtlMinMs: 100 }, async (_fake, call) => {
    const id = await session(call, { TTL: "400ms", Behavior: "delete" });
    await call("PUT", `/v1/kv/t?acquire=${id}`, "x");
    await sleep(600);
    assertEquals(
      (await call("GET", "/v1/kv/t")).status,
      200,
      "alive past 1 × TTL",
    );
    assertEquals((await call("PUT", `/v1/session/renew/${id}`)).status, 200);
    await sleep(600);
    assertEquals(
      (await call("GET", "/v1/kv/t")).status,
      200,
      "the renewal re-armed 2 × TTL",
    );
    await sleep(400);
    assertEquals((await call("GET", "/v1/kv/t")).status, 404);
    assertEquals((await call("PUT", `/v1/session/renew/${id}`)).status, 404);
  });
});

Deno.test("consul fake: session_ttl.go initializeSessionTimers: a new leader re-arms every TTL in full, after a leaderless gap", async () => {
  await withFake({ sessionTtlMinMs: 100 }, async (_fake, call) => {
    const id = await session(call, { TTL: "300ms" });
    await sleep(450);
    const changing = call("PUT", "/fake/leader-change?gap=200");
    await sleep(50);
    const leaderless = await call("GET", "/v1/kv/x");
    assertEquals([leaderless.status, leaderless.text], [
      500,
      "No cluster leader",
    ]);
    assertEquals((await call("GET", "/v1/status/leader")).json, "");
    await changing;
    // 650 ms after creation, past the first 2 × TTL, but re-armed at 650.
    await sleep(300);
    assertEquals((await call("PUT", `/v1/session/renew/${id}`)).status, 200);
  });
});

Deno.test("consul fake: state/kvs.go KV put, get and delete use Consul's fields and base64 values", async () => {
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
    // kvsSetTxn: an unchanged entry is not written again.
    await call("PUT", "/v1/kv/zip?flags=42", "test");
    const [same] = (await call("GET", "/v1/kv/zip")).json as {
      ModifyIndex: number;
    }[];
    assertEquals(same.ModifyIndex, entry.ModifyIndex);
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
    await call("PUT", "/v1/kv/coolock%2Fa", "x");
    assertEquals((await call("GET", "/v1/kv/coolock/a")).status, 200);
  });
});

Deno.test("consul fake: state/kvs.go kvsSetCASTxn, kvsListTxn and kvsDeleteCASTxn", async () => {
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
    assertEquals((listed.json as { Key: string }[]).map((e) => e.Key), [
      "a/1",
      "a/2",
    ]);
    assertEquals((await call("GET", "/v1/kv/?keys")).json, ["a/1", "a/2", "b"]);
    assertEquals((await call("DELETE", "/v1/kv/a/1?cas=0")).text, "false");
    await call("DELETE", "/v1/kv/a/?recurse");
    const gone = await call("GET", "/v1/kv/a/?recurse");
    assertEquals(gone.status, 404);
    assert(
      Number(gone.index) > Number(listed.index),
      "the tombstones carry the index",
    );
    assertEquals((await call("GET", "/v1/kv/b")).status, 200);
  });
});

Deno.test("consul fake: state/kvs.go kvsLockTxn and kvsUnlockTxn follow LockIndex and Session", async () => {
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
    assertEquals([released.LockIndex, "Session" in released], [1, false]);
    assert((released.ModifyIndex as number) > (held.ModifyIndex as number));
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

Deno.test("consul fake: state/session.go deleteSessionTxn releases or deletes keys, and kvsPreApply enforces the lock-delay", async () => {
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
    assertEquals(
      (await call("PUT", `/v1/kv/r?acquire=${next}`, "y")).text,
      "false",
    );
    assertEquals(
      (await call("PUT", `/v1/kv/d?acquire=${next}`, "y")).text,
      "false",
    );
    // A plain write is no lock, so the lock-delay doesn't stop it.
    assertEquals((await call("PUT", "/v1/kv/d?cas=0", "marker")).text, "true");
    await sleep(700);
    assertEquals(
      (await call("PUT", `/v1/kv/d?acquire=${next}`, "y")).text,
      "true",
    );
    await call("PUT", `/v1/kv/d?release=${next}`, "y");
    const other = await session(call, {});
    assertEquals(
      (await call("PUT", `/v1/kv/d?acquire=${other}`, "z")).text,
      "true",
      "an explicit release sets no lock-delay",
    );
  });
});

Deno.test("consul fake: kvs_endpoint.go KVS.Get and state/kvs.go kvsGetTxn: a missing key answers the table-wide index and wakes on any KV change", async () => {
  await withFake({}, async (fake, call) => {
    await call("PUT", "/v1/kv/w", "1");
    const first = await call("GET", "/v1/kv/w");
    const blocked = call("GET", `/v1/kv/w?index=${first.index}&wait=5s`);
    await sleep(150);
    await call("PUT", "/v1/kv/other", "x");
    await sleep(100);
    assertEquals(fake.state.waiting, 1, "a present key ignores other keys");
    await call("PUT", "/v1/kv/w", "2");
    const changed = await blocked;
    assertEquals((changed.json as { Value: string }[])[0].Value, "Mg==");
    const missing = await call("GET", "/v1/kv/absent");
    assertEquals(
      missing.index,
      String(fake.state.tableIndex("kvs", "tombstones")),
    );
    const started = performance.now();
    const waiting = call("GET", `/v1/kv/absent?index=${missing.index}&wait=5s`);
    await sleep(100);
    await call("PUT", "/v1/kv/unrelated", "x");
    const woke = await waiting;
    assert(performance.now() - started < 2_000, "woken by another key's write");
    assertEquals(woke.status, 404);
    assert(
      Number(woke.index) > Number(missing.index),
      "with the table's new index",
    );
    const timed = performance.now();
    const timedOut = await call(
      "GET",
      `/v1/kv/w?index=${changed.index}&wait=300ms`,
    );
    const waited = performance.now() - timed;
    assert(waited >= 290 && waited < 1_000, `waited ${waited} ms`);
    assertEquals(timedOut.index, changed.index, "no change, same index");
  });
});

Deno.test("consul fake: state/txn.go txnDispatch collects every op's error and rolls back", async () => {
  await withFake({}, async (_fake, call) => {
    const s1 = await session(call, { LockDelay: "0s" });
    const s2 = await session(call, {});
    await call("PUT", `/v1/kv/h?acquire=${s1}`, "x");
    const op = (
      Verb: string,
      Key: string,
      extra: Record<string, unknown> = {},
    ) => ({
      KV: { Verb, Key, Value: btoa("y"), ...extra },
    });
    const failed = await call("PUT", "/v1/txn", [
      op("set", "written"),
      op("unlock", "h", { Session: s2 }),
      op("cas", "h", { Index: 1 }),
    ]);
    assertEquals(failed.status, 409);
    assertEquals((failed.json as { Errors: unknown }).Errors, [
      {
        OpIndex: 1,
        What:
          `failed to unlock key "h", lock isn't held, or is held by another session`,
      },
      { OpIndex: 2, What: `failed to set key "h", index is stale` },
    ]);
    assertEquals(
      (await call("GET", "/v1/kv/written")).status,
      404,
      "rolled back",
    );
    const moved = await call("PUT", "/v1/txn", [
      op("unlock", "h", { Session: s1 }),
      op("lock", "h", { Session: s2 }),
    ]);
    assertEquals(moved.status, 200, moved.text);
    const { Results } = moved.json as {
      Results: {
        KV: { Session?: string; Value: unknown; ModifyIndex: number };
      }[];
    };
    assertEquals([Results.length, Results[1].KV.Session, Results[1].KV.Value], [
      2,
      s2,
      null,
    ]);
    const [entry] = (await call("GET", "/v1/kv/h")).json as Record<
      string,
      unknown
    >[];
    assertEquals([entry.Session, entry.LockIndex, entry.ModifyIndex], [
      s2,
      2,
      Results[1].KV.ModifyIndex,
    ]);
  });
});

Deno.test("consul fake: agent/consul/txn_endpoint.go preCheck collects ACL and lock-delay errors, one per op, in a 409", async () => {
  await withFake({
    acl: {
      tokens: [
        { secret: "admin", rules: "management" },
        { secret: "reader", rules: { key: { "": "read", "mine/": "write" } } },
      ],
    },
  }, async (_fake, call) => {
    const admin = { headers: { "X-Consul-Token": "admin" } };
    const reader = { headers: { "X-Consul-Token": "reader" } };
    const created = await call(
      "PUT",
      "/v1/session/create",
      { LockDelay: "5s" },
      admin,
    );
    const { ID } = created.json as { ID: string };
    await call("PUT", `/v1/kv/delayed?acquire=${ID}`, "x", admin);
    await call("PUT", `/v1/session/destroy/${ID}`, undefined, admin);
    const ops = [
      { KV: { Verb: "set", Key: "theirs", Value: btoa("x") } },
      { KV: { Verb: "set", Key: "mine/ok", Value: btoa("x") } },
      { KV: { Verb: "delete", Key: "other" } },
      { KV: { Verb: "lock", Key: "mine/delayed", Session: ID } },
    ];
    const refused = await call("PUT", "/v1/txn", ops, reader);
    assertEquals(refused.status, 409);
    const { Errors } = refused.json as {
      Errors: { OpIndex: number; What: string }[];
    };
    assertEquals(Errors.map((e) => e.OpIndex), [0, 2]);
    for (const error of Errors) {
      assert(
        /^Permission denied: token with AccessorID '[0-9a-f-]+' lacks permission 'key:write' on "(theirs|other)"$/
          .test(error.What),
        error.What,
      );
    }
    const delayed = await call("PUT", "/v1/txn", [
      { KV: { Verb: "lock", Key: "delayed", Session: ID } },
      { KV: { Verb: "set", Key: "fine", Value: btoa("x") } },
    ], admin);
    assertEquals((delayed.json as { Errors: unknown }).Errors, [
      { OpIndex: 0, What: `failed to lock key "delayed" due to lock delay` },
    ]);
    // KVS.Apply answers a single refused write with a 403.
    const put = await call("PUT", "/v1/kv/theirs", "x", reader);
    assertEquals(put.status, 403);
    assert(
      put.text.startsWith("Permission denied: token with AccessorID"),
      put.text,
    );
  });
});

Deno.test("consul fake: acl/errors.go: no token is the anonymous token; an unknown one is 'ACL not found'", async () => {
  await withFake({ token: "s3cret" }, async (_fake, call) => {
    const none = await call("GET", "/v1/kv/x");
    assertEquals(none.status, 403);
    assert(
      none.text.startsWith(
        `Permission denied: anonymous token lacks permission 'key:read' on "x".`,
      ),
      none.text,
    );
    const wrong = await call("GET", "/v1/kv/x", undefined, {
      headers: { "X-Consul-Token": "nope" },
    });
    assertEquals([wrong.status, wrong.text], [403, "ACL not found"]);
    for (
      const headers of [
        { "X-Consul-Token": "s3cret" },
        { Authorization: "Bearer s3cret" },
      ] as Record<string, string>[]
    ) {
      assertEquals(
        (await call("GET", "/v1/kv/x", undefined, { headers })).status,
        404,
      );
    }
    assertEquals((await call("GET", "/v1/kv/x?token=s3cret")).status, 404);
    assertEquals((await call("GET", "/v1/status/leader")).status, 200);
    const self = await call("GET", "/v1/agent/self");
    assert(self.text.includes("lacks permission 'agent:read'"), self.text);
  });
});

Deno.test("consul fake: agent/session_endpoint.go SessionCreate: a client agent refuses another datacenter; keys follow Consul 1.21.5's check", async () => {
  await withFake({}, async (_fake, call) => {
    const remote = await call("PUT", "/v1/session/create?dc=dc2", {});
    assertEquals([remote.status, remote.text], [
      500,
      "cross datacenter lock must be created at server agent",
    ]);
    const read = await call("GET", "/v1/kv/x?dc=dc2");
    assertEquals([read.status, read.text], [500, "No path to datacenter"]);
    const self = await call("GET", "/v1/agent/self");
    const { Config } = self.json as { Config: Record<string, unknown> };
    assertEquals([Config.Datacenter, Config.NodeName, Config.Server], [
      "dc1",
      "node-1",
      false,
    ]);
    assertEquals((await call("PUT", "/v1/kv/a%25b", "x")).status, 400);
    assertEquals((await call("PUT", "/v1/kv/a..b", "x")).status, 400);
    assertEquals((await call("PUT", "/v1/kv/a_2Fb-c/.lock", "x")).status, 200);
  });
  await withFake({ validateKeys: false }, async (_fake, call) => {
    assertEquals((await call("PUT", "/v1/kv/a%25b", "x")).status, 200);
  });
});

Deno.test("consul fake: an agent can be stopped or hung and come back, while the others serve the same state", async () => {
  await withFake({ agents: 2, clockOffsetMs: 5_000 }, async (fake, call) => {
    const answer = await call("GET", "/v1/status/leader");
    const skew = new Date(answer.date!).getTime() - Date.now();
    assert(skew > 3_500 && skew < 6_500, `the Date header is shifted: ${skew}`);
    await call("PUT", "/fake/agent/node-1?state=down", undefined, {
      port: fake.ports[1],
    });
    await sleep(100);
    const refused = await fetch(
      `http://127.0.0.1:${fake.port}/v1/status/leader`,
    )
      .then(() => "answered", () => "refused");
    assertEquals(refused, "refused");
    await call("PUT", "/v1/kv/shared", "x", { port: fake.ports[1] });
    await fake.setAgent("node-1", "hang");
    const hung = await fetch(`http://127.0.0.1:${fake.port}/v1/kv/shared`, {
      signal: AbortSignal.timeout(300),
    }).then(() => "answered", (e) => e.name);
    assertEquals(hung, "TimeoutError");
    await fake.setAgent("node-1", "up");
    assertEquals((await call("GET", "/v1/kv/shared")).status, 200);
  });
});
