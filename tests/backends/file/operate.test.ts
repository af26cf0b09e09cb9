/**
 * The operator's calls where the file backend differs: `status` of a dead
 * holder whose job still runs, `forceRelease` of it (the operator's call:
 * the group runs on, the lock is free), and `check` on a directory it can't
 * trust or create.
 */

import { file } from "../../../backends/file/mod.ts";
import {
  checkBackend,
  forceRelease,
  lockStatus,
} from "../../../src/operate.ts";
import { acquire } from "../../../src/lease.ts";
import { assert, assertEquals } from "../../helpers/assert.ts";
import { scratchDir } from "./fixture.ts";

const HOLDER = new URL("./holder.ts", import.meta.url).pathname;

Deno.test("status and forceRelease of a SIGKILLed holder whose job group runs on", async () => {
  const dir = await scratchDir("coolock-file-operate-");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      HOLDER,
      dir,
      "orphan",
      `${dir}/beats`,
      "group",
      "2",
    ],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const [token, pgid] = new TextDecoder().decode((await reader.read()).value)
    .trim().split(" ").map(Number);
  reader.releaseLock();
  await using backend = file(dir);
  try {
    const [live] = await lockStatus(backend, "orphan");
    assertEquals(live.holders.length, 1);
    assertEquals(live.holders[0].state, "held");
    assertEquals(live.holders[0].token, BigInt(token));
    assertEquals(
      live.holders[0].leaseLeftMs,
      undefined,
      "its group holds it, not a lease",
    );
    child.kill("SIGKILL");
    await child.status;
    await new Promise((ok) => setTimeout(ok, 3_000));
    const [orphaned] = await lockStatus(backend, "orphan");
    assertEquals(
      orphaned.holders[0]?.state,
      "held",
      "held by the orphaned group past its lease",
    );
    const removed = await forceRelease(backend, "orphan");
    assertEquals(removed.map((r) => r.what), ["job group"]);
    assert(removed[0].detail.includes(String(pgid)), removed[0].detail);
    assert(removed[0].detail.includes("still running"), removed[0].detail);
    const lease = await acquire({
      backend,
      lock: "orphan",
      ttl: 2,
      guardTime: 0,
    });
    assert(lease.token > BigInt(token), "a higher token");
    await lease.release();
  } finally {
    try {
      Deno.kill(-pgid, "SIGKILL");
    } catch { /* gone */ }
  }
});

Deno.test("check: a healthy directory, an untrusted one, and one that can't be created", async () => {
  const dir = await scratchDir("coolock-file-check-");
  const healthy = await checkBackend(file(dir));
  assertEquals(
    healthy.map((r) => `${r.name} ${r.status}`),
    [
      "reachable ok",
      "credentials ok",
      "permissions ok",
      "groups ok",
      "version ok",
      "clock ok",
    ],
  );
  assert(
    /this host's clock only/.test(
      healthy.find((r) => r.name === "clock")!.detail,
    ),
    "the clock line says what it can't see",
  );
  await Deno.chmod(dir, 0o777);
  const untrusted = await checkBackend(file(dir));
  const permissions = untrusted.find((r) => r.name === "permissions");
  assertEquals(permissions?.status, "fail");
  assert(
    /writable by other users/.test(permissions!.detail),
    permissions!.detail,
  );
  const missing = await checkBackend(file("/proc/coolock-cannot-exist"));
  assertEquals(missing.map((r) => `${r.name} ${r.status}`), ["reachable fail"]);
});
