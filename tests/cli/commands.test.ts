/**
 * `coolock status`, `release` and `check`: their words, JSON and exit codes.
 *
 * The first part runs `runCommand` in a child process (it prints to the
 * real stdout and stderr) against a small scripted Backend, to pin the
 * output for every shape of answer: the CLI side alone. The second part runs
 * the real CLI on the file backend, with real holders.
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import {
  alive,
  type CliResult,
  eventually,
  oneLine,
  runCli,
  spawnCli,
} from "../helpers/cli.ts";

const COMMANDS = new URL("../../src/cli/commands.ts", import.meta.url).href;
const ERRORS = new URL("../../src/errors.ts", import.meta.url).href;

/** What the scripted backend answers; dates and tokens as text. */
interface Script {
  scheme?: string;
  listsLocks?: boolean;
  status?: unknown[] | "unavailable" | "missing";
  removals?: unknown[];
  checks?: unknown[] | "unavailable";
}

interface Options {
  lock?: string;
  all?: boolean;
  json?: boolean;
  force?: boolean;
  lockFromDefault?: boolean;
  guardTime?: number;
  secrets?: string[];
}

const RUNNER = `
import { runCommand } from "${COMMANDS}";
import { BackendUnavailableError } from "${ERRORS}";
const [kind, scriptText, optionsText, callsFile] = Deno.args;
const script = JSON.parse(scriptText);
const options = JSON.parse(optionsText);
const record = (call) => Deno.writeTextFileSync(callsFile, call + "\\n", { append: true });
const display = "fake://u:***@h";
const down = () => new BackendUnavailableError(display, "connection refused");
const revive = (lock) => ({
  ...lock,
  lastToken: lock.lastToken === undefined ? undefined : BigInt(lock.lastToken),
  holders: lock.holders.map((holder) => ({
    ...holder,
    since: holder.since === undefined ? undefined : new Date(holder.since),
    token: holder.token === undefined ? undefined : BigInt(holder.token),
  })),
});
const backend = {
  scheme: script.scheme ?? "fake",
  displayUri: display,
  capabilities: {
    notifiesWaiters: false, fairQueue: false, minTtlMs: 1, maxTtlMs: 1e10,
    clock: "server", listsLocks: script.listsLocks ?? false, storesLimit: false,
  },
  tryAcquire: () => Promise.resolve(undefined),
  close: () => Promise.resolve(),
  [Symbol.asyncDispose]: () => Promise.resolve(),
  ...(script.status === "missing" ? {} : {
    status: (name) => {
      record("status " + (name ?? "*"));
      if (script.status === "unavailable") return Promise.reject(down());
      return Promise.resolve((script.status ?? []).map(revive));
    },
  }),
  forceRelease: (name) => {
    record("forceRelease " + name);
    return Promise.resolve(script.removals ?? []);
  },
  check: () => {
    record("check");
    if (script.checks === "unavailable") return Promise.reject(down());
    return Promise.resolve(script.checks ?? []);
  },
};
Deno.exit(await runCommand(kind, { all: false, json: false, force: false, lockFromDefault: false, ...options, backend }));
`;

let runnerPath: string | undefined;

async function runner(): Promise<string> {
  if (!runnerPath) {
    runnerPath = await Deno.makeTempFile({
      prefix: "coolock-commands-",
      suffix: ".js",
    });
    await Deno.writeTextFile(runnerPath, RUNNER);
    globalThis.addEventListener("unload", () => Deno.removeSync(runnerPath!));
  }
  return runnerPath;
}

interface Run extends CliResult {
  readonly calls: string[];
}

async function command(
  kind: "status" | "release" | "check",
  script: Script,
  options: Options = {},
): Promise<Run> {
  const calls = await Deno.makeTempFile();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        await runner(),
        kind,
        JSON.stringify(script),
        JSON.stringify(options),
        calls,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      ms: 0,
      calls: (await Deno.readTextFile(calls)).split("\n").filter(Boolean),
    };
  } finally {
    await Deno.remove(calls);
  }
}

const SINCE = "2026-03-01T08:31:08.123Z";
const HELD = {
  name: "nightly",
  limit: 2,
  lastToken: "12345678901234567890",
  waiting: 3,
  holders: [
    {
      slot: 1,
      state: "guard",
      node: "web-2",
      guardLeftMs: 4_200,
      token: "12345678901234567889",
    },
    {
      slot: 0,
      state: "held",
      node: "web-1",
      owner: "web-1:ab12",
      since: SINCE,
      token: "12345678901234567890",
      leaseLeftMs: 28_140,
      guardLeftMs: 0,
    },
  ],
};

Deno.test("commands: status of a free lock says so and exits 0", async () => {
  const result = await command("status", {
    status: [{ name: "nightly", holders: [], lastToken: "41" }],
  }, { lock: "nightly" });
  assertEquals(result.code, 0, result.stderr);
  assertEquals(
    result.stdout,
    "Backend fake://u:***@h\nLock 'nightly': free (last token 41)\n",
  );
  assertEquals(result.calls, ["status nightly"]);
  // A backend that knows nothing of the lock: free too.
  const unknown = await command("status", { status: [] }, { lock: "other" });
  assertEquals(unknown.code, 0);
  assertEquals(unknown.stdout, "Backend fake://u:***@h\nLock 'other': free\n");
});

Deno.test("commands: status of a held lock is a table by slot, and exits 1", async () => {
  const result = await command("status", { status: [HELD] }, {
    lock: "nightly",
  });
  assertEquals(result.code, 1, result.stderr);
  assertEquals(result.stderr, "");
  const lines = result.stdout.trimEnd().split("\n");
  assertEquals(lines.slice(0, 2), [
    "Backend fake://u:***@h",
    "Lock 'nightly': held (limit 2, 3 waiting, last token 12345678901234567890)",
  ]);
  assertEquals(lines.slice(2), [
    "  SLOT  STATE  NODE   OWNER       SINCE                     TOKEN                 LEASE LEFT  GUARD LEFT",
    `  0     held   web-1  web-1:ab12  ${SINCE}  12345678901234567890  28.1 s      0 ms`,
    "  1     guard  web-2  -           -                         12345678901234567889  -           4.2 s",
  ]);
});

Deno.test("commands: status --json is one document with tokens as strings", async () => {
  const result = await command("status", { status: [HELD] }, {
    lock: "nightly",
    json: true,
  });
  assertEquals(result.code, 1);
  const document = JSON.parse(result.stdout);
  assertEquals(document.backend, "fake://u:***@h");
  assertEquals(document.held, true);
  const [lock] = document.locks;
  assertEquals(lock.name, "nightly");
  assertEquals(lock.state, "held");
  assertEquals(lock.lastToken, "12345678901234567890");
  assertEquals(lock.waiting, 3);
  assertEquals(lock.holders.map((holder: { slot: number }) => holder.slot), [
    0,
    1,
  ]);
  assertEquals(lock.holders[0], {
    slot: 0,
    state: "held",
    node: "web-1",
    owner: "web-1:ab12",
    since: SINCE,
    token: "12345678901234567890",
    leaseLeftMs: 28_140,
    guardLeftMs: 0,
  });
  const free = await command("status", { status: [] }, {
    lock: "x",
    json: true,
  });
  assertEquals(free.code, 0);
  assertEquals(JSON.parse(free.stdout).locks, [{
    name: "x",
    state: "free",
    holders: [],
  }]);
});

Deno.test("commands: status --all lists every lock, sorted, and exits 1 when any is held", async () => {
  const free = { name: "a-free", holders: [] };
  const result = await command("status", {
    listsLocks: true,
    status: [HELD, free],
  }, { all: true, lock: "coolock", lockFromDefault: true });
  assertEquals(result.code, 1, result.stderr);
  assertEquals(result.calls, ["status *"]);
  const lines = result.stdout.split("\n");
  assertEquals(lines[1], "Lock 'a-free': free");
  assert(lines[2].startsWith("Lock 'nightly': held"), lines[2]);
  const none = await command("status", { listsLocks: true, status: [] }, {
    all: true,
  });
  assertEquals(none.code, 0);
  assertEquals(none.stdout, "No coolock locks on fake://u:***@h\n");
  const allFree = await command(
    "status",
    { listsLocks: true, status: [free] },
    { all: true, json: true },
  );
  assertEquals(allFree.code, 0);
  assertEquals(JSON.parse(allFree.stdout).held, false);
});

Deno.test("commands: status --all where the backend can't list, or with --lock, is one line and 64", async () => {
  const cannot = await command("status", {
    scheme: "memcached",
    listsLocks: false,
  }, { all: true });
  assertEquals(cannot.code, 64);
  assertEquals(cannot.stdout, "");
  assertEquals(
    oneLine(cannot.stderr),
    "coolock: The memcached backend can't list its locks: name one with 'coolock status --lock NAME'",
  );
  assertEquals(cannot.calls, []);
  const both = await command("status", { listsLocks: true }, {
    all: true,
    lock: "x",
  });
  assertEquals(both.code, 64);
  assert(oneLine(both.stderr).includes("not both"), both.stderr);
  const missing = await command("status", { status: "missing" }, { lock: "x" });
  assertEquals(missing.code, 64);
  assert(
    oneLine(missing.stderr).includes("can't report a lock's status"),
    missing.stderr,
  );
  const badName = await command("status", {}, { lock: "a\nb" });
  assertEquals(badName.code, 64);
  oneLine(badName.stderr);
});

Deno.test("commands: an unreachable backend is 69 with one line, human or JSON", async () => {
  for (const json of [false, true]) {
    const result = await command("status", { status: "unavailable" }, {
      lock: "x",
      json,
    });
    assertEquals(result.code, 69);
    assertEquals(result.stdout, "");
    assertEquals(
      oneLine(result.stderr),
      "coolock: Backend 'fake://u:***@h' is unavailable: connection refused",
    );
  }
});

Deno.test("commands: release refuses without --force, saying what it would do, and touches nothing", async () => {
  const result = await command("release", {
    removals: [{ what: "lease", detail: "x" }],
  }, { lock: "nightly" });
  assertEquals(result.code, 64);
  assertEquals(result.stdout, "");
  const line = oneLine(result.stderr);
  assert(
    line.includes(
      "would free lock 'nightly' on fake://u:***@h whoever holds it",
    ) &&
      line.includes("exit 75") && line.includes("add --force"),
    line,
  );
  assertEquals(result.calls, []);
  const unnamed = await command("release", {}, {
    lock: "coolock",
    lockFromDefault: true,
    force: true,
  });
  assertEquals(unnamed.code, 64);
  assert(oneLine(unnamed.stderr).includes("--lock NAME"), unnamed.stderr);
  assertEquals(unnamed.calls, []);
});

Deno.test("commands: release --force prints what it removed, or that the lock was free", async () => {
  const removals = [
    { what: "lease", detail: "key coolock:lock:nightly of web-1" },
    { what: "queue entry", detail: "node /coolock/nightly/q-0000000007" },
  ];
  const result = await command("release", { removals }, {
    lock: "nightly",
    force: true,
  });
  assertEquals(result.code, 0, result.stderr);
  assertEquals(result.calls, ["forceRelease nightly"]);
  assertEquals(
    result.stdout,
    [
      "Released lock 'nightly' on fake://u:***@h:",
      "  removed  lease        key coolock:lock:nightly of web-1",
      "  removed  queue entry  node /coolock/nightly/q-0000000007",
      "",
    ].join("\n"),
  );
  const json = await command("release", { removals }, {
    lock: "nightly",
    force: true,
    json: true,
  });
  assertEquals(JSON.parse(json.stdout), {
    backend: "fake://u:***@h",
    lock: "nightly",
    removed: removals,
  });
  const free = await command("release", { removals: [] }, {
    lock: "nightly",
    force: true,
  });
  assertEquals(free.code, 0);
  assertEquals(
    free.stdout,
    "Lock 'nightly' on fake://u:***@h was free: nothing removed\n",
  );
});

const CHECKS = [
  {
    name: "reachable",
    status: "ok",
    detail: "127.0.0.1:6379, round trip 0.4 ms",
    ms: 0.4,
  },
  { name: "version", status: "ok", detail: "Redis 7.0.15" },
  {
    name: "eviction",
    status: "warn",
    detail: "maxmemory-policy allkeys-lru can evict locks",
  },
];

Deno.test("commands: check prints aligned lines and exits 0 with warnings, 1 with a failure, 69 unreachable", async () => {
  const result = await command("check", { checks: CHECKS });
  assertEquals(result.code, 0, result.stderr);
  assertEquals(
    result.stdout,
    [
      "Backend fake://u:***@h",
      "ok    reachable  127.0.0.1:6379, round trip 0.4 ms",
      "ok    version    Redis 7.0.15",
      "warn  eviction   maxmemory-policy allkeys-lru can evict locks",
      "",
    ].join("\n"),
  );
  const failed = await command("check", {
    checks: [...CHECKS, {
      name: "permissions",
      status: "fail",
      detail: "NOPERM for SET",
    }],
  });
  assertEquals(failed.code, 1);
  assert(
    failed.stdout.includes("fail  permissions  NOPERM for SET"),
    failed.stdout,
  );
  const unreachable = await command("check", {
    checks: [{
      name: "reachable",
      status: "fail",
      detail: "connection refused",
    }],
  });
  assertEquals(unreachable.code, 69);
  const thrown = await command("check", { checks: "unavailable" });
  assertEquals(thrown.code, 69);
  oneLine(thrown.stderr);
  const json = await command("check", { checks: CHECKS }, { json: true });
  const document = JSON.parse(json.stdout);
  assertEquals(document.ok, true);
  assertEquals(document.checks, CHECKS);
});

Deno.test("commands: clock skew that could shorten guard time is a warning", async () => {
  const clock = (ms: number) => ({
    name: "clock",
    status: "ok",
    detail: `skew ${ms} ms`,
    ms,
  });
  const cases: Array<[number, number | undefined, string]> = [
    [50, undefined, "ok"],
    [-1_500, undefined, "warn"],
    [1_500, 60, "warn"],
    [600, 5, "warn"],
    [400, 5, "ok"],
  ];
  for (const [skew, guardTime, expected] of cases) {
    const result = await command("check", { checks: [clock(skew)] }, {
      guardTime,
      json: true,
    });
    const [line] = JSON.parse(result.stdout).checks;
    assertEquals(
      line.status,
      expected,
      `skew ${skew} ms, guard ${guardTime} s`,
    );
    assertEquals(result.code, 0);
    if (expected === "warn") {
      assert(line.detail.includes("can shorten guard time"), line.detail);
    }
  }
  // A backend's own warning or failure stands.
  const failed = await command("check", {
    checks: [{ ...clock(5_000), status: "fail" }],
  });
  assertEquals(failed.code, 1);
});

Deno.test("commands: output is scrubbed of secrets and of control characters from the server", async () => {
  const status = [{
    name: "x",
    holders: [{
      slot: 0,
      state: "held",
      node: "evil\u001b[2Jnode",
      owner: "o\nwner",
    }],
  }];
  const result = await command("status", { status }, {
    lock: "x",
    secrets: ["hunter2"],
  });
  assert(!result.stdout.includes("\u001b"), JSON.stringify(result.stdout));
  assert(
    result.stdout.includes("evil\\u001b[2Jnode") &&
      result.stdout.includes("o\\u000awner"),
    result.stdout,
  );
  const leaky = await command("check", {
    checks: [{
      name: "credentials",
      status: "fail",
      detail: "server said WRONGPASS hunter2",
    }],
  }, { secrets: ["hunter2"] });
  assert(
    !leaky.stdout.includes("hunter2") && leaky.stdout.includes("WRONGPASS ***"),
    leaky.stdout,
  );
});

// ---------------------------------------------------------------------------
// The real CLI on the file backend.

async function withLockDir(
  body: (uri: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "coolock-commands-" });
  try {
    await body(`file://${dir}/locks`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function statusOf(uri: string, ...args: string[]): Promise<CliResult> {
  return runCli(["status", "-b", uri, ...args]);
}

async function jsonStatus(uri: string, lock: string) {
  const result = await statusOf(uri, "--lock", lock, "--json");
  assert(
    [0, 1].includes(result.code),
    `status exit ${result.code}: ${result.stderr}`,
  );
  return { code: result.code, document: JSON.parse(result.stdout) };
}

Deno.test("commands CLI: a live holder is held (1) with node and token; after it ends, free (0)", async () => {
  await withLockDir(async (uri) => {
    const holder = spawnCli([
      "-b",
      uri,
      "-l",
      "live",
      "-n",
      "node-a",
      "-g",
      "0",
      "--",
      "sleep",
      "30",
    ]);
    try {
      await eventually(
        async () => (await statusOf(uri, "--lock", "live")).code === 1,
        10_000,
        "the holder",
      );
      const human = await statusOf(uri, "--lock", "live");
      assertEquals(human.code, 1, human.stderr);
      assert(/Lock 'live': held/.test(human.stdout), human.stdout);
      assert(/^\s+0\s+held\s+node-a\s/m.test(human.stdout), human.stdout);
      const { document } = await jsonStatus(uri, "live");
      const [holder0] = document.locks[0].holders;
      assertEquals(holder0.node, "node-a");
      assertEquals(typeof holder0.token, "string");
      assert(BigInt(holder0.token) > 0n);
      assert(
        Math.abs(Date.parse(holder0.since) - Date.now()) < 60_000,
        holder0.since,
      );
    } finally {
      holder.kill("SIGTERM");
      await holder.output();
    }
    await eventually(
      async () => (await statusOf(uri, "--lock", "live")).code === 0,
      10_000,
      "the lock to be free",
    );
  });
});

Deno.test("commands CLI: a guard after the job's exit is held, in state guard, with guard time left", async () => {
  await withLockDir(async (uri) => {
    const run = await runCli([
      "-b",
      uri,
      "-l",
      "guarded",
      "-g",
      "60",
      "--",
      "true",
    ]);
    assertEquals(run.code, 0, run.stderr);
    const { code, document } = await jsonStatus(uri, "guarded");
    assertEquals(code, 1);
    const [holder] = document.locks[0].holders;
    assertEquals(holder.state, "guard");
    assert(
      holder.guardLeftMs > 50_000 && holder.guardLeftMs <= 60_000,
      String(holder.guardLeftMs),
    );
  });
});

Deno.test("commands CLI: a SIGKILLed holder's lock is held while its job's group lives, then free", async () => {
  await withLockDir(async (uri) => {
    // The job ignores SIGTERM, so the watchdog's SIGTERM leaves it running
    // for the kill-after time; the lock must stay held through that.
    const holder = spawnCli([
      "-b",
      uri,
      "-l",
      "killed",
      "-g",
      "0",
      "--kill-after",
      "5",
      "--shell",
      "trap '' TERM; echo $$; sleep 30",
    ]);
    const reader = holder.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    const jobPid = Number((await reader.read()).value?.trim());
    reader.releaseLock();
    try {
      assert(jobPid > 0);
      holder.kill("SIGKILL");
      await holder.status;
      const { code, document } = await jsonStatus(uri, "killed");
      // Alive after the status call, so alive during it.
      assert(alive(jobPid), "the job outlived the status call");
      assertEquals(code, 1, JSON.stringify(document));
      await eventually(
        () => !alive(jobPid),
        10_000,
        "the watchdog to end the job",
      );
      const after = await statusOf(uri, "--lock", "killed");
      assertEquals(after.code, 0, after.stdout + after.stderr);
    } finally {
      await holder.stdout.cancel().catch(() => {});
      await holder.stderr.cancel().catch(() => {});
      try {
        Deno.kill(-jobPid, "SIGKILL");
      } catch { /* gone */ }
    }
  });
});

Deno.test("commands CLI: status --all lists the locks on the file backend", async () => {
  await withLockDir(async (uri) => {
    for (const lock of ["one", "two"]) {
      assertEquals(
        (await runCli([
          "-b",
          uri,
          "-l",
          lock,
          "-g",
          lock === "one" ? "60" : "0",
          "--",
          "true",
        ])).code,
        0,
      );
    }
    const result = await statusOf(uri, "--all", "--json");
    assertEquals(result.code, 1, result.stderr);
    const locks = JSON.parse(result.stdout).locks;
    assertEquals(locks.map((lock: { name: string }) => lock.name), [
      "one",
      "two",
    ]);
    assertEquals(locks.map((lock: { state: string }) => lock.state), [
      "held",
      "free",
    ]);
  });
});

Deno.test("commands CLI: release needs --force; with it, a guard is gone and the next token is higher", async () => {
  await withLockDir(async (uri) => {
    const run = await runCli([
      "-b",
      uri,
      "-l",
      "stuck",
      "-g",
      "600",
      "--",
      "true",
    ]);
    assertEquals(run.code, 0, run.stderr);
    const before =
      (await jsonStatus(uri, "stuck")).document.locks[0].holders[0];
    const refused = await runCli(["release", "-b", uri, "--lock", "stuck"]);
    assertEquals(refused.code, 64);
    assert(oneLine(refused.stderr).includes("--force"), refused.stderr);
    assertEquals((await statusOf(uri, "--lock", "stuck")).code, 1);
    const released = await runCli([
      "release",
      "-b",
      uri,
      "--lock",
      "stuck",
      "--force",
    ]);
    assertEquals(released.code, 0, released.stderr);
    assert(
      released.stdout.startsWith("Released lock 'stuck'"),
      released.stdout,
    );
    assertEquals((await statusOf(uri, "--lock", "stuck")).code, 0);
    const again = await runCli([
      "release",
      "-b",
      uri,
      "--lock",
      "stuck",
      "--force",
      "--json",
    ]);
    assertEquals(again.code, 0);
    assertEquals(JSON.parse(again.stdout).removed, []);
    const next = await runCli([
      "-b",
      uri,
      "-l",
      "stuck",
      "-g",
      "0",
      "--",
      "sh",
      "-c",
      "echo $COOLOCK_FENCING_TOKEN",
    ]);
    assertEquals(next.code, 0, next.stderr);
    assert(
      BigInt(next.stdout.trim()) > BigInt(before.token),
      `${next.stdout} > ${before.token}`,
    );
  });
});

Deno.test("commands CLI: check on the file backend exits 0 and says what it can't see", async () => {
  await withLockDir(async (uri) => {
    const result = await runCli(["check", "-b", uri]);
    assertEquals(result.code, 0, result.stderr + result.stdout);
    assert(/^ok\s+\S+/m.test(result.stdout), result.stdout);
    const json = await runCli(["check", "-b", uri, "--json"]);
    const document = JSON.parse(json.stdout);
    assertEquals(document.ok, true);
    assert(document.checks.length > 0);
  });
});
