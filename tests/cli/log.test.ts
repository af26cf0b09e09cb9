/**
 * The log file: the seed's text format, JSON lines, the secrets scrub, and
 * the rules that keep root from writing through another user's links
 * (`src/cli/log_file.ts`). The attacks run as `nobody` with
 * `protected_symlinks` at 0, as on this machine, so the kernel doesn't help.
 */

import { Logger } from "../../src/cli/log.ts";
import { assert, assertEquals } from "../helpers/assert.ts";
import { runCli } from "../helpers/cli.ts";

const TEXT_LINE =
  /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - coolock \(\d+\) - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - .*$/;

const isRoot = Deno.uid() === 0;
const hasSetpriv = (() => {
  try {
    return Deno.statSync("/usr/bin/setpriv").isFile;
  } catch {
    return false;
  }
})();
const canAttack = isRoot && hasSetpriv;

/** Runs a command as `nobody`, failing on a non-zero exit. */
async function asNobody(...args: string[]): Promise<void> {
  const out = await new Deno.Command("/usr/bin/setpriv", {
    args: ["--reuid=nobody", "--regid=nogroup", "--clear-groups", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `as nobody: ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

/** A root-owned 0755 dir (so nobody can reach inside), removed after `body`. */
async function withDirs(
  body: (root: string) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "coolock-log-test-" });
  await Deno.chmod(root, 0o755);
  try {
    await body(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** A directory that `nobody` owns, inside `root`. */
async function nobodyDir(root: string, name = "shared"): Promise<string> {
  const dir = `${root}/${name}`;
  await Deno.mkdir(dir);
  await Deno.chown(dir, 65534, 65534);
  return dir;
}

/** A root-only victim file, as `/root/victim` would be. */
async function victim(root: string, name = "victim"): Promise<string> {
  await Deno.mkdir(`${root}/private`, { recursive: true, mode: 0o700 });
  const path = `${root}/private/${name}`;
  await Deno.writeTextFile(path, "root's own data\n", { mode: 0o600 });
  return path;
}

function runArgs(root: string, logFile: string, extra: string[] = []) {
  return [
    "-b",
    `file://${root}/locks`,
    "-l",
    "log-test",
    "-g",
    "0",
    "-f",
    logFile,
    ...extra,
    "--",
    "echo",
    "job ran",
  ];
}

Deno.test("log: the text format is the seed's, one line per message", async () => {
  await withDirs(async (root) => {
    const file = `${root}/text.log`;
    const logger = new Logger({
      file,
      level: "debug",
      maxSize: 0,
      copies: 0,
    });
    logger.info("Lock 'x' acquired.", { event: "acquired", token: 7n });
    logger.debug("two\nlines");
    const lines = (await Deno.readTextFile(file)).trimEnd().split("\n");
    assertEquals(lines.length, 2);
    for (const line of lines) assert(TEXT_LINE.test(line), line);
    assert(
      lines[0].endsWith(` - coolock (${Deno.pid}) - INFO - Lock 'x' acquired.`),
    );
    assert(lines[1].endsWith(" - DEBUG - two lines"), lines[1]);
    assertEquals((await Deno.stat(file)).mode! & 0o777, 0o640);
  });
});

Deno.test("log: JSON lines carry time, level, pid, node, lock, event, token, slot and exit code", async () => {
  await withDirs(async (root) => {
    const file = `${root}/json.log`;
    const base = new Logger({
      file,
      level: "info",
      maxSize: 0,
      copies: 0,
      format: "json",
      context: { node: "web-1" },
    });
    const logger = base.with({ lock: "nightly" });
    logger.info(
      "Lock 'nightly' acquired with fencing token 12345678901234567890.",
      {
        event: "acquired",
        token: 12345678901234567890n,
        slot: 0,
      },
    );
    logger.error("The command failed", { event: "exited", exitCode: 3 });
    base.warning("no lock yet");
    logger.debug("below the threshold");
    const lines = (await Deno.readTextFile(file)).trimEnd().split("\n");
    assertEquals(lines.length, 3);
    const [acquired, exited, plain] = lines.map((line) => JSON.parse(line));
    assert(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(acquired.time),
      acquired.time,
    );
    assert(Math.abs(Date.parse(acquired.time) - Date.now()) < 60_000);
    assertEquals(acquired.level, "info");
    assertEquals(acquired.pid, Deno.pid);
    assertEquals(acquired.node, "web-1");
    assertEquals(acquired.lock, "nightly");
    assertEquals(acquired.event, "acquired");
    assertEquals(acquired.token, "12345678901234567890");
    assertEquals(acquired.slot, 0);
    assertEquals(
      acquired.message,
      "Lock 'nightly' acquired with fencing token 12345678901234567890.",
    );
    assertEquals(exited.level, "error");
    assertEquals(exited.exitCode, 3);
    assertEquals(plain.level, "warning");
    assertEquals(plain.lock, undefined);
    assertEquals(plain.node, "web-1");
  });
});

Deno.test("log: the last scrub replaces the backend's secrets in every message", async () => {
  await withDirs(async (root) => {
    const file = `${root}/scrub.log`;
    for (const format of ["text", "json"] as const) {
      const logger = new Logger({
        file,
        level: "info",
        maxSize: 0,
        copies: 0,
        format,
        secrets: ["S3c#ret", "S3c%23ret"],
      }).with({}, ["t0ken"]);
      logger.error("server said: WRONGPASS S3c#ret (S3c%23ret), token t0ken");
    }
    const text = await Deno.readTextFile(file);
    assert(!/S3c|t0ken/.test(text), text);
    assertEquals(text.match(/\*\*\*/g)?.length, 6);
  });
});

Deno.test("log: --log-format json through the CLI: every line one object with node and lock", async () => {
  await withDirs(async (root) => {
    const file = `${root}/cli.json.log`;
    const result = await runCli([
      ...runArgs(root, file, [
        "--log-format",
        "json",
        "-n",
        "node-j",
        "-v",
        "debug",
      ]),
    ]);
    assertEquals(result.code, 0, result.stderr);
    const lines = (await Deno.readTextFile(file)).trimEnd().split("\n");
    assert(lines.length >= 2, lines.join("\n"));
    for (const line of lines) {
      const record = JSON.parse(line);
      assertEquals(record.node, "node-j");
      assertEquals(record.lock, "log-test");
      assertEquals(record.pid > 0, true);
      assert(typeof record.message === "string" && record.message !== "");
      assert(
        ["debug", "info", "warning", "error", "critical"].includes(
          record.level,
        ),
      );
    }
    // The acquisition line carries the token, as a string.
    assert(
      lines.map((line) => JSON.parse(line)).some((record) =>
        typeof record.token === "string" && BigInt(record.token) > 0n
      ),
      lines.join("\n"),
    );
  });
});

Deno.test("log: '-' and /dev/null are not files to refuse", async () => {
  await withDirs(async (root) => {
    for (const file of ["-", "/dev/null"]) {
      const result = await runCli(runArgs(root, file));
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.stdout, "job ran\n");
      assert(!result.stderr.includes("can't write log file"), result.stderr);
    }
    const stderr = await runCli(runArgs(root, "-"));
    assert(
      stderr.stderr.split("\n").filter(Boolean).every((line) =>
        TEXT_LINE.test(line)
      ),
      stderr.stderr,
    );
  });
});

Deno.test("log: a FIFO or a directory is refused at once, and the job still runs", async () => {
  await withDirs(async (root) => {
    const fifo = `${root}/fifo`;
    await new Deno.Command("mkfifo", { args: [fifo] }).output();
    await Deno.mkdir(`${root}/dir.log`);
    for (
      const [file, why] of [[fifo, "not a regular file"], [
        `${root}/dir.log`,
        "a directory",
      ]]
    ) {
      const result = await runCli(runArgs(root, file));
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.stdout, "job ran\n");
      assert(
        result.stderr.startsWith(
          `coolock: can't write log file '${file}' (it is ${why}`,
        ),
        result.stderr,
      );
      // Once: then the lines go to stderr.
      assertEquals(result.stderr.match(/can't write log file/g)?.length, 1);
    }
  });
});

Deno.test({
  name: "log: root never appends through nobody's symlink, dangling or not",
  ignore: !canAttack,
  fn: async () => {
    await withDirs(async (root) => {
      const shared = await nobodyDir(root);
      const target = await victim(root);
      const missing = `${root}/private/created-by-coolock`;
      await asNobody("ln", "-s", target, `${shared}/coolock.log`);
      await asNobody("ln", "-s", missing, `${shared}/dangling.log`);
      for (const name of ["coolock.log", "dangling.log"]) {
        const result = await runCli(runArgs(root, `${shared}/${name}`));
        assertEquals(result.code, 0, result.stderr);
        assertEquals(result.stdout, "job ran\n");
        assert(
          result.stderr.includes(
            "symbolic link in a directory that other users can write to",
          ),
          result.stderr,
        );
      }
      // Root's own trusted link that leads to nobody's link is judged there.
      await Deno.symlink(`${shared}/coolock.log`, `${root}/chain.log`);
      const chain = await runCli(runArgs(root, `${root}/chain.log`));
      assertEquals(chain.code, 0, chain.stderr);
      assert(
        chain.stderr.includes("symbolic link in a directory"),
        chain.stderr,
      );
      assertEquals(await Deno.readTextFile(target), "root's own data\n");
      assertEquals((await Deno.stat(target)).mode! & 0o777, 0o600);
      assert(!(await exists(missing)), "coolock created the link's target");
    });
  },
});

Deno.test({
  name:
    "log: in nobody's directory, nobody's own file or a swapped one is refused",
  ignore: !canAttack,
  fn: async () => {
    await withDirs(async (root) => {
      const shared = await nobodyDir(root);
      await asNobody("sh", "-c", `echo planted > ${shared}/coolock.log`);
      const result = await runCli(runArgs(root, `${shared}/coolock.log`));
      assertEquals(result.code, 0, result.stderr);
      assert(result.stderr.includes("belongs to another user"), result.stderr);
      assertEquals(
        await Deno.readTextFile(`${shared}/coolock.log`),
        "planted\n",
      );
      // A file root creates there itself is fine, and stays root's.
      const own = `${shared}/own.log`;
      const fine = await runCli(runArgs(root, own));
      assertEquals(fine.code, 0, fine.stderr);
      assert(!fine.stderr.includes("can't write"), fine.stderr);
      assert((await Deno.readTextFile(own)).includes("released"));
      assertEquals((await Deno.stat(own)).uid, 0);
    });
  },
});

Deno.test({
  name: "log: a hard link to root's file in nobody's directory is refused",
  ignore: !canAttack,
  fn: async () => {
    await withDirs(async (root) => {
      const shared = await nobodyDir(root);
      const target = await victim(root);
      // protected_hardlinks keeps nobody from linking root's file here; where
      // it is off they could, so root makes the link in their place.
      await Deno.link(target, `${shared}/coolock.log`);
      const result = await runCli(runArgs(root, `${shared}/coolock.log`));
      assertEquals(result.code, 0, result.stderr);
      assert(result.stderr.includes("has other hard links"), result.stderr);
      assertEquals(await Deno.readTextFile(target), "root's own data\n");
    });
  },
});

Deno.test({
  name:
    "log: rotation renames over nobody's planted .N links, never writing through them",
  ignore: !canAttack,
  fn: async () => {
    await withDirs(async (root) => {
      const shared = await nobodyDir(root);
      const one = await victim(root, "victim1");
      const two = await victim(root, "victim2");
      const log = `${shared}/coolock.log`;
      await asNobody("ln", "-s", one, `${log}.1`);
      await asNobody("ln", "-s", two, `${log}.2`);
      const rotate = ["--log-max-size", "1", "--rotate-log-copies", "3"];
      for (let run = 0; run < 4; run++) {
        const result = await runCli(
          runArgs(root, log, ["-v", "debug", ...rotate]),
        );
        assertEquals(result.code, 0, result.stderr);
        assert(!result.stderr.includes("can't write"), result.stderr);
      }
      assertEquals(await Deno.readTextFile(one), "root's own data\n");
      assertEquals(await Deno.readTextFile(two), "root's own data\n");
      // The links were moved along and finally replaced by root's copies.
      for (const copy of [log, `${log}.1`, `${log}.2`]) {
        const info = await Deno.lstat(copy);
        assert(info.isFile && info.uid === 0, `${copy} is root's file`);
      }
    });
  },
});

Deno.test({
  name:
    "log: a sticky shared dir (as /tmp) takes root's new file, not nobody's",
  ignore: !canAttack,
  fn: async () => {
    await withDirs(async (root) => {
      const sticky = `${root}/sticky`;
      await Deno.mkdir(sticky);
      await Deno.chmod(sticky, 0o1777);
      await asNobody("sh", "-c", `echo planted > ${sticky}/theirs.log`);
      const theirs = await runCli(runArgs(root, `${sticky}/theirs.log`));
      assert(theirs.stderr.includes("belongs to another user"), theirs.stderr);
      assertEquals(
        await Deno.readTextFile(`${sticky}/theirs.log`),
        "planted\n",
      );
      const mine = await runCli(runArgs(root, `${sticky}/mine.log`));
      assertEquals(mine.code, 0, mine.stderr);
      assert(!mine.stderr.includes("can't write"), mine.stderr);
      assert(
        (await Deno.readTextFile(`${sticky}/mine.log`)).includes("acquired"),
      );
    });
  },
});

Deno.test({
  name: "log: a directory reached through nobody's link is refused",
  ignore: !canAttack,
  fn: async () => {
    await withDirs(async (root) => {
      const shared = await nobodyDir(root);
      await Deno.mkdir(`${root}/private`, { mode: 0o700 });
      const target = `${root}/private/coolock.log`;
      await Deno.writeTextFile(target, "root's own data\n", { mode: 0o600 });
      // nobody makes 'logs' a link to root's private dir.
      await asNobody("ln", "-s", `${root}/private`, `${shared}/logs`);
      const result = await runCli(runArgs(root, `${shared}/logs/coolock.log`));
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.stdout, "job ran\n");
      assert(
        result.stderr.includes(
          `goes through '${shared}/logs', a symbolic link`,
        ),
        result.stderr,
      );
      assertEquals(await Deno.readTextFile(target), "root's own data\n");
    });
  },
});

Deno.test({
  name: "log: a symlink in a trusted directory is followed to a checked target",
  ignore: !isRoot,
  fn: async () => {
    await withDirs(async (root) => {
      await Deno.mkdir(`${root}/data`, { mode: 0o755 });
      await Deno.symlink(`${root}/data/real.log`, `${root}/coolock.log`);
      const result = await runCli(runArgs(root, `${root}/coolock.log`));
      assertEquals(result.code, 0, result.stderr);
      assert(!result.stderr.includes("can't write"), result.stderr);
      assert(
        (await Deno.readTextFile(`${root}/data/real.log`)).includes("acquired"),
      );
      assert((await Deno.lstat(`${root}/coolock.log`)).isSymlink);
    });
  },
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
