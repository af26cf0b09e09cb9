/**
 * The README's `deno run` recipes, run as printed: each ```sh block of the
 * "`deno run` from a URL" section, with only its paths, its host and the
 * release URL swapped for the test's own (the repo served on 127.0.0.1),
 * through /bin/sh as an operator's crontab would. Each must run the job with
 * the watchdog on: the guard stands in the job's process group, and a
 * SIGKILL of coolock ends the job.
 */

import { alive, eventually } from "../helpers/cli.ts";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { redisServer } from "../helpers/servers/redis.ts";
import { available, startServer } from "../helpers/servers/server.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const RELEASE = "https://raw.githubusercontent.com/coolock/coolock/v0.1.0/";
const decoder = new TextDecoder();

/** The recipes: every `deno run` block of the README's section. */
function recipes(): string[] {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const start = readme.indexOf("### `deno run` from a URL");
  const end = readme.indexOf("\n### ", start + 1);
  const section = readme.slice(start, end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
    .map((match) => match[1])
    .filter((block) => block.startsWith("deno run"));
}

/** The repo's files over HTTP on a free loopback port. */
function serveRepo() {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = decodeURIComponent(new URL(request.url).pathname);
      if (path.split("/").includes("..")) {
        return new Response("Forbidden", { status: 403 });
      }
      try {
        const body = await Deno.readFile(`${ROOT}${path.slice(1)}`);
        const type = path.endsWith(".json")
          ? "application/json"
          : "application/typescript";
        return new Response(body, { headers: { "content-type": type } });
      } catch {
        return new Response("Not found", { status: 404 });
      }
    },
  );
  return {
    host: `127.0.0.1:${server.addr.port}`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** A DENO_DIR of the test's own for the remote modules, sharing the npm cache. */
async function denoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
  }).output();
  const { npmCache } = JSON.parse(decoder.decode(out.stdout));
  const dir = await Deno.makeTempDir({ prefix: "coolock-recipe-deno-" });
  await Deno.symlink(npmCache, `${dir}/npm`);
  return dir;
}

/** Live (non-zombie) processes of group `pgid`. */
function group(pgid: number): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[2]) === pgid) {
        found.push(Number(entry.name));
      }
    } catch { /* gone meanwhile */ }
  }
  return found;
}

function parentOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

Deno.test("recipes: the README has a file and a Redis recipe", () => {
  const found = recipes();
  assertEquals(found.length, 2, found.join("\n---\n"));
  assertMatch(found[0], /--backend file:\/\/\/var\/lib\/coolock/);
  assertMatch(found[1], /--backend redis:\/\/db:6379/);
});

for (const recipe of recipes()) {
  const redis = recipe.includes("redis://");
  Deno.test({
    name: `recipes: the ${
      redis ? "Redis" : "file"
    } recipe runs the job as printed, with the watchdog on`,
    ignore: redis && !available(redisServer),
    async fn() {
      await using server = serveRepo();
      const tmp = await Deno.makeTempDir({ prefix: "coolock-recipe-" });
      const home = `${tmp}/home`;
      await Deno.mkdir(home);
      await Deno.mkdir(`${tmp}/log`);
      const script = `${tmp}/backup.sh`;
      await Deno.writeTextFile(
        script,
        `#!/bin/sh\necho $$ > ${tmp}/job.pid\necho "backup ran with token $COOLOCK_FENCING_TOKEN"\nsleep "\${BACKUP_SECONDS:-0}"\n`,
      );
      await Deno.chmod(script, 0o755);
      const redisTest = redis ? await startServer(redisServer) : undefined;
      let line = recipe
        .replace("deno run", `deno run --quiet --allow-import=${server.host}`)
        .replaceAll(RELEASE, `http://${server.host}/`)
        .replaceAll("/var/lib/coolock", `${tmp}/lib`)
        .replaceAll("/var/log/coolock", `${tmp}/log`)
        .replaceAll("/usr/local/bin/backup.sh", script);
      if (redisTest) {
        line = line.replaceAll("db:6379", `127.0.0.1:${redisTest.port}`);
      }
      const dir = await denoDir();
      const run = (seconds: number) =>
        new Deno.Command("/bin/sh", {
          args: ["-c", line],
          env: {
            PATH: `${Deno.execPath().replace(/\/[^/]*$/, "")}:/usr/bin:/bin`,
            HOME: home,
            DENO_DIR: dir,
            NO_COLOR: "1",
            BACKUP_SECONDS: String(seconds),
          },
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).spawn();
      try {
        if (redisTest) {
          // A Redis server up for less than the lease grants no lock until
          // coolock has marked it once: one short-lease run does that.
          const prime = await new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "-A",
              `${ROOT}cli.ts`,
              ...["-b", `redis://127.0.0.1:${redisTest.port}`, "--ttl", "1.5"],
              ...["--kill-after", "0.2"],
              ...["-w", "20", "-g", "0", "--log-file=-", "-l", "prime", "true"],
            ],
            stdout: "null",
            stderr: "null",
          }).output();
          assertEquals(prime.code, 0, "primed the server");
        }
        const first = await run(0).output();
        assertEquals(first.code, 0, decoder.decode(first.stderr));
        assertMatch(
          decoder.decode(first.stdout),
          /^backup ran with token \d+\n$/,
        );
        assertEquals(decoder.decode(first.stderr), "");

        // The same recipe, and the job outlives a SIGKILLed coolock by
        // no more than the watchdog's reaction (guard time is 30 s, so
        // another lock name).
        await Deno.remove(`${tmp}/job.pid`);
        line = line.replace("--lock nightly-backup", "--lock killed-backup");
        const holder = run(60);
        await eventually(
          () => Deno.stat(`${tmp}/job.pid`).then(() => true, () => false),
          30_000,
          "the job to start",
        );
        await eventually(
          async () =>
            (await Deno.readTextFile(`${tmp}/job.pid`)).endsWith("\n"),
          2_000,
          "the pid",
        );
        const job = Number((await Deno.readTextFile(`${tmp}/job.pid`)).trim());
        const members = group(job);
        assert(
          members.some((pid) =>
            pid !== job &&
            Deno.readTextFileSync(`/proc/${pid}/cmdline`).startsWith(
              "/bin/sh\0-c\0",
            )
          ),
          `the guard stands in the job's group (${members})`,
        );
        const coolock = parentOf(job);
        Deno.kill(coolock, "SIGKILL");
        await eventually(() => !alive(job), 3_000, "the job to end");
        await eventually(() => group(job).length === 0, 8_000, "the group");
        await holder.output();
      } finally {
        await redisTest?.kill();
        await Deno.remove(dir, { recursive: true });
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });
}
