/**
 * The lock directory is trusted the way ssh trusts `~/.ssh`: root (these
 * tests run as root) never writes through another user's symlink or hard
 * link, never reads a stamp another user wrote, and refuses a directory that
 * another user owns or can write to, with one line and exit 78. The other
 * user is `nobody`, through `setpriv`; `protected_symlinks` is 0 here.
 */

import { file, UntrustedPathError } from "../../../backends/file/mod.ts";
import { fileTarget } from "../../../backends/file/uri.ts";
import { acquire } from "../../../src/lease.ts";
import { assert, assertEquals, assertMatch } from "../../helpers/assert.ts";
import { oneLine, runCli } from "../../helpers/cli.ts";
import { removeLater, scratchDir } from "./fixture.ts";

const NOBODY = [
  "setpriv",
  "--reuid=nobody",
  "--regid=nogroup",
  "--clear-groups",
];

/** Runs a shell command as `nobody`. */
async function asNobody(script: string): Promise<void> {
  const out = await new Deno.Command(NOBODY[0], {
    args: [...NOBODY.slice(1), "/bin/sh", "-c", script],
  }).output();
  assert(out.success, `as nobody: ${new TextDecoder().decode(out.stderr)}`);
}

/** A directory that `nobody` owns, in /tmp, and root's secret file. */
async function attackerSetup() {
  const name = `/tmp/coolock-attack-${crypto.randomUUID().slice(0, 8)}`;
  removeLater(name);
  await asNobody(`mkdir -m 0755 ${name}`);
  const vault = await scratchDir("coolock-vault-");
  const victim = `${vault}/secret`;
  await Deno.writeTextFile(victim, "root's data\n", { mode: 0o600 });
  return { dir: name, victim };
}

/** A fresh DENO_DIR that the user of a `deno eval` can create. */
function denoDir(): string {
  const path = `/tmp/coolock-deno-${crypto.randomUUID().slice(0, 8)}`;
  removeLater(path);
  return path;
}

const tryLock = (dir: string, lock: string) =>
  acquire({ backend: file(dir), lock, ttl: 2, guardTime: 0 }).then(
    (lease) => lease.release().then(() => "acquired"),
    (e) => e,
  );

Deno.test("a lock directory that another user owns: refused with one line and exit 78, nothing written through their symlink", async () => {
  const { dir, victim } = await attackerSetup();
  await asNobody(`ln -s ${victim} ${dir}/coolock.lock`);
  const result = await runCli([
    "--log-file",
    "-",
    "-b",
    `file://${dir}`,
    "-l",
    "coolock",
    "-g",
    "0",
    "--",
    "echo",
    "must-not-run",
  ]);
  assertEquals(result.code, 78, result.stderr);
  assertMatch(
    oneLine(result.stderr),
    /Lock directory '.*' can't be trusted: it is owned by uid 65534, not by you \(uid 0\) or root/,
  );
  assert(!result.stdout.includes("must-not-run"), "the command never ran");
  assertEquals(await Deno.readTextFile(victim), "root's data\n");
});

Deno.test("a stamp another user pre-wrote is never read: no silent skip, no chosen token", async () => {
  const { dir } = await attackerSetup();
  const far = Date.now() + 86_400_000;
  await asNobody(
    `printf '{"owner":"x","guardUntil":${far},"fence":"-5"}\\n' > ${dir}/job.lock`,
  );
  const error = await tryLock(dir, "job");
  assert(error instanceof UntrustedPathError, `refused: ${error}`);
});

Deno.test("in a shared sticky directory, another user's planted files are refused and root's own locks work", async () => {
  const shared = `/tmp/coolock-sticky-${crypto.randomUUID().slice(0, 8)}`;
  removeLater(shared);
  await Deno.mkdir(shared);
  await Deno.chmod(shared, 0o1777);
  const { victim } = await attackerSetup();
  await asNobody(
    [
      `ln -s ${victim} ${shared}/link.lock`,
      `printf '{"owner":"x","guardUntil":9e15,"fence":"-5"}\\n' > ${shared}/planted.lock`,
      `ln -s ${victim} ${shared}/own.meta`,
    ].join("; "),
  );
  const link = await tryLock(shared, "link");
  assert(
    link instanceof UntrustedPathError && /symbolic link/.test(link.message),
    `a planted symlink: ${link}`,
  );
  const planted = await tryLock(shared, "planted");
  assert(
    planted instanceof UntrustedPathError && /uid 65534/.test(planted.message),
    `a planted stamp: ${planted}`,
  );
  const own = await tryLock(shared, "own");
  assert(own instanceof UntrustedPathError, `a planted meta symlink: ${own}`);
  assertEquals(await tryLock(shared, "roots-own"), "acquired");
  assertEquals(await Deno.readTextFile(victim), "root's data\n");
  const { mode, uid } = await Deno.lstat(`${shared}/roots-own.lock`);
  assertEquals([uid, mode! & 0o777], [0, 0o600], "root's lock file is private");
});

Deno.test("a directory writable by others (not sticky), or under another user's directory, is refused", async () => {
  const open = await scratchDir("coolock-open-");
  await Deno.chmod(open, 0o777);
  const wide = await tryLock(open, "x");
  assert(
    wide instanceof UntrustedPathError &&
      /writable by other users \(mode 0777\) and not sticky/.test(wide.message),
    `a world-writable directory: ${wide}`,
  );
  await Deno.chmod(open, 0o770);
  const group = await tryLock(open, "x");
  assert(
    group instanceof UntrustedPathError && /its group/.test(group.message),
    `a group-writable directory: ${group}`,
  );
  const { dir } = await attackerSetup();
  await asNobody(`chmod 0777 ${dir}`);
  await Deno.mkdir(`${dir}/locks`, { mode: 0o700 });
  const nested = await tryLock(`${dir}/locks`, "x");
  assert(
    nested instanceof UntrustedPathError &&
      /its parent '.*' is owned by uid 65534/.test(nested.message),
    `a root-owned directory inside nobody's: ${nested}`,
  );
});

Deno.test("a lock file with another hard link is refused", async () => {
  const dir = await scratchDir("coolock-links-");
  const elsewhere = `${await scratchDir("coolock-elsewhere-")}/file`;
  await Deno.writeTextFile(elsewhere, "");
  await Deno.link(elsewhere, `${dir}/linked.lock`);
  const error = await tryLock(dir, "linked");
  assert(
    error instanceof UntrustedPathError && /hard links/.test(error.message),
    `a hard link: ${error}`,
  );
});

Deno.test("the default directory is never a predictable name another user could create first", async () => {
  const module = new URL("../../../backends/file/uri.ts", import.meta.url).href;
  const show = async (env: Record<string, string>, user?: string[]) => {
    const out = await new Deno.Command(user ? user[0] : Deno.execPath(), {
      args: [
        ...(user ? [...user.slice(1), Deno.execPath()] : []),
        "eval",
        `const { fileTarget } = await import(${
          JSON.stringify(module)
        }); console.log(fileTarget().dir);`,
      ],
      clearEnv: true,
      env: { DENO_DIR: denoDir(), ...env },
    }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout).trim();
  };
  assertEquals(await show({}), "/var/lib/coolock", "root without a home");
  assertEquals(await show({}, NOBODY), "/tmp/coolock-65534", "another user");
  assertEquals(
    await show({ HOME: "/home/x", XDG_STATE_HOME: "relative/state" }),
    "/home/x/.local/state/coolock",
    "a relative XDG_STATE_HOME is ignored, as the XDG spec says",
  );
  assertEquals(
    await show({ HOME: "/home/x", XDG_STATE_HOME: "/srv/state/" }),
    "/srv/state/coolock",
  );
  assertEquals(fileTarget("file:///var/lib/x/").dir, "/var/lib/x");
});
