/**
 * What the file backend accepts: every lock name of 1 to 200 characters,
 * however long its encoding (a file name may have only 255 bytes), mapped to
 * distinct files; and only absolute `file:///dir` locations, refused with a
 * clear line (exit 64) before anything is created.
 */

import { file } from "../../../backends/file/mod.ts";
import {
  baseOf,
  layoutOf,
  MAX_PLAIN_BASE,
  nameOfBase,
  parseEntry,
} from "../../../backends/file/keys.ts";
import { fileTarget } from "../../../backends/file/uri.ts";
import { LockHeldError } from "../../../src/errors.ts";
import { acquire } from "../../../src/lease.ts";
import { lockStatus } from "../../../src/operate.ts";
import { assert, assertEquals, assertThrows } from "../../helpers/assert.ts";
import { oneLine, runCli } from "../../helpers/cli.ts";
import { scratchDir } from "./fixture.ts";

const LONG_NAMES = [
  "夜".repeat(28),
  "é".repeat(200),
  "€".repeat(29),
  `a${" ".repeat(85)}b`,
  "🔒".repeat(200),
  "x".repeat(200),
  `${"%".repeat(199)}x`,
];

Deno.test("long names map to short, distinct file names that never collide with plain ones", async () => {
  for (const name of LONG_NAMES) {
    const base = await baseOf(name);
    const bytes = new TextEncoder().encode(`${base}+999.lock`).length;
    assert(bytes <= 255, `${bytes} bytes for ${JSON.stringify(name)}`);
    if (base.includes("~")) {
      assert(
        base.length <= MAX_PLAIN_BASE,
        "a hashed base is no longer than a plain one",
      );
    }
  }
  const bases = await Promise.all(LONG_NAMES.map(baseOf));
  assertEquals(new Set(bases).size, LONG_NAMES.length, "all distinct");
  // The plain encoding never emits '~' or '+': no plain base is a hashed one or a slot file.
  assertEquals(nameOfBase(await baseOf("x".repeat(200))), "x".repeat(200));
  assertEquals(nameOfBase(await baseOf("夜".repeat(28))), undefined);
  assertEquals(await baseOf("a~b+c"), "a%7Eb%2Bc");
  assertEquals(parseEntry("a%7Eb%2Bc+2.lock"), {
    kind: "slot",
    base: "a%7Eb%2Bc",
    slot: 2,
  });
  const layout = await layoutOf("/d", "x.1");
  assertEquals(layout.slotPath(0), "/d/x.1.lock");
  assertEquals(
    (await layoutOf("/d", "x")).slotPath(1),
    "/d/x+1.lock",
    "slot 1 of 'x' is not the lock 'x.1'",
  );
});

Deno.test("long lock names work: held, exclusive, listed by name, with slots", async () => {
  const dir = await scratchDir("coolock-file-names-");
  await using a = file(dir);
  await using b = file(dir);
  const leases = [];
  for (const name of LONG_NAMES) {
    leases.push(
      await acquire({ backend: a, lock: name, ttl: 2, guardTime: 0 }),
    );
  }
  for (const name of LONG_NAMES) {
    const error = await acquire({
      backend: b,
      lock: name,
      ttl: 2,
      guardTime: 0,
    })
      .then((l) => l.release().then(() => "acquired"), (e) => e);
    assert(error instanceof LockHeldError, `'${name}' is held`);
  }
  const listed = (await lockStatus(a, undefined)).map((s) => s.name);
  for (const name of LONG_NAMES) {
    assert(listed.includes(name), `status lists ${JSON.stringify(name)}`);
  }
  for (const lease of leases) await lease.release();
  const slots = await Promise.all(
    [0, 1, 2].map(() =>
      acquire({
        backend: a,
        lock: LONG_NAMES[0],
        ttl: 2,
        guardTime: 0,
        limit: 3,
      })
    ),
  );
  assertEquals(slots.map((l) => l.slot).sort(), [0, 1, 2]);
  for (const lease of slots) await lease.release();
});

Deno.test("the CLI runs a job under a 200-character non-ASCII lock name", async () => {
  const dir = await scratchDir("coolock-file-names-");
  const result = await runCli([
    "--log-file",
    "-",
    "-b",
    `file://${dir}`,
    "-l",
    "é".repeat(200),
    "-g",
    "0",
    "--",
    "echo",
    "ran",
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(result.stdout, "ran\n");
});

Deno.test("bad file locations: TypeError in the library, one line and exit 64 from the CLI, nothing created", async () => {
  const cwd = await scratchDir("coolock-file-cwd-");
  const cases: Array<[string, RegExp]> = [
    ["file:", /must be file:\/\/\/absolute\/dir/],
    ["file:relative", /must be file:\/\/\/absolute\/dir/],
    ["file:relative/dir", /must be file:\/\/\/absolute\/dir/],
    ["file:///tmp/x%00y", /must not contain a NUL byte/],
    ["file://host/x", /this host only/],
    ["file:///tmp/x?password=S3cr3t", /takes no query/],
    ["file://user:S3cr3t@localhost/tmp/x", /takes no user name or password/],
  ];
  for (const [uri, message] of cases) {
    const error = assertThrows(() => file(uri), TypeError);
    assert(message.test(error.message), `${uri}: ${error.message}`);
    assert(!error.message.includes("S3cr3t"), `no secret: ${error.message}`);
    const result = await runCli(
      ["--log-file", "-", "-b", uri, "-l", "x", "--", "echo", "must-not-run"],
      { cwd },
    );
    assertEquals(result.code, 64, `${uri}: ${result.stderr}`);
    assert(message.test(oneLine(result.stderr)), result.stderr);
    assert(!result.stderr.includes("S3cr3t"), result.stderr);
    assert(!result.stdout.includes("must-not-run"), "never ran");
  }
  assertEquals([...Deno.readDirSync(cwd)], [], "nothing was created");
  for (const path of ["relative", "./x", "", "x\0y"]) {
    assertThrows(() => file(path), TypeError);
  }
  assertEquals(fileTarget("file://localhost/srv/locks").dir, "/srv/locks");
  assertEquals(fileTarget(new URL("file:///srv/a%20b")).dir, "/srv/a b");
});
