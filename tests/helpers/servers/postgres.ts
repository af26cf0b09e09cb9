/**
 * PostgreSQL 15 from Debian, as the `postgres` user (it refuses root). One
 * initdb per test run makes a template data dir; each server gets a copy, so
 * a start costs well under a second. TCP logins need a password
 * (scram-sha-256); the Unix socket in the server's dir trusts everyone, for
 * the fixture's out-of-band work.
 *
 * @module
 */

import type { TestCertificates } from "../certs.ts";
import { run, type ServerRecipe, type TestServer } from "./server.ts";
import { dataTemplate } from "./template.ts";

const BIN = "/usr/lib/postgresql/15/bin";

/** The login role the tests use; it owns {@linkcode POSTGRES_DATABASE}. */
export const POSTGRES_USER = "coolock";
/** The test role's password (also the superuser `postgres`'s). */
export const POSTGRES_PASSWORD = "coolock-test-pw";
/** The test database. */
export const POSTGRES_DATABASE = "coolock";
/** A second database of the test role's, for tables made by hand. */
export const POSTGRES_OTHER_DATABASE = "coolock_other";
/** A role that may log in and do nothing else (same password). */
export const POSTGRES_POWERLESS_USER = "coolock_ro";

const asPostgres = [
  "--reuid",
  "postgres",
  "--regid",
  "postgres",
  "--clear-groups",
];

const copyTemplate = dataTemplate("coolock-pg-template-", async (root) => {
  await Deno.chmod(root, 0o755);
  const data = `${root}/data`;
  await Deno.writeTextFile(`${root}/pw`, POSTGRES_PASSWORD);
  await run("chown", ["postgres:postgres", root, `${root}/pw`]);
  await run("setpriv", [
    ...asPostgres,
    `${BIN}/initdb`,
    "-D",
    data,
    "-U",
    "postgres",
    "--pwfile",
    `${root}/pw`,
    "--auth-host=scram-sha-256",
    "--auth-local=trust",
    "--no-sync",
    "--no-instructions",
    "-E",
    "UTF8",
    "--locale=C.UTF-8",
  ]);
  const bootstrap = new Deno.Command("setpriv", {
    args: [
      ...asPostgres,
      `${BIN}/postgres`,
      "--single",
      "-D",
      data,
      "-F",
      "postgres",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = bootstrap.stdin.getWriter();
  await writer.write(new TextEncoder().encode(
    `CREATE ROLE ${POSTGRES_USER} LOGIN PASSWORD '${POSTGRES_PASSWORD}';\n` +
      `CREATE DATABASE ${POSTGRES_DATABASE} OWNER ${POSTGRES_USER};\n` +
      `CREATE DATABASE ${POSTGRES_OTHER_DATABASE} OWNER ${POSTGRES_USER};\n` +
      `CREATE ROLE ${POSTGRES_POWERLESS_USER} LOGIN PASSWORD '${POSTGRES_PASSWORD}';\n`,
  ));
  await writer.close();
  const out = await bootstrap.output();
  const log = new TextDecoder().decode(out.stderr);
  if (!out.success || /ERROR/.test(log)) {
    throw new Error(`Bootstrapping the postgres template failed: ${log}`);
  }
  return data;
});

export const postgresServer: ServerRecipe = {
  kind: "postgres",
  requires: [`${BIN}/postgres`, `${BIN}/initdb`, "/usr/bin/setpriv"],
  async prepare(dir) {
    await copyTemplate(dir);
  },
  command: (dir, [port]) => ({
    cmd: "/usr/bin/setpriv",
    args: [
      ...asPostgres,
      `${BIN}/postgres`,
      "-D",
      `${dir}/data`,
      "-p",
      String(port),
      "-k",
      dir,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=300",
      "-c",
      "shared_buffers=16MB",
    ],
  }),
  ready: async (_dir, [port]) => {
    const probe = await new Deno.Command(`${BIN}/pg_isready`, {
      args: [
        "-q",
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-d",
        POSTGRES_DATABASE,
        "-t",
        "1",
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    return probe.success;
  },
};

function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      // The command name may hold spaces and parentheses; fields follow the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) found.push(Number(entry.name));
    } catch { /* gone */ }
  }
  return found;
}

function signalAll(pids: number[], signal: Deno.Signal): void {
  for (const pid of pids) {
    try {
      Deno.kill(pid, signal);
    } catch { /* gone */ }
  }
}

/**
 * The same server, but `pause()` stops the whole server and not only the
 * postmaster, and `kill()` kills it all. Each PostgreSQL session is a
 * process of its own that keeps answering while the postmaster is stopped;
 * a hung host or a partition stops them all, so the fault tests get that.
 * After `kill()`, `restart()` recovers the data dir as after a crash.
 */
export function wholeServer(server: TestServer): TestServer {
  return {
    kind: server.kind,
    host: server.host,
    port: server.port,
    ports: server.ports,
    dir: server.dir,
    get pid() {
      return server.pid;
    },
    pause() {
      server.pause(); // First, so that it forks no new session meanwhile.
      signalAll(childrenOf(server.pid), "SIGSTOP");
    },
    resume() {
      signalAll(childrenOf(server.pid), "SIGCONT");
      server.resume();
    },
    async kill() {
      // The sessions are children of the postmaster and outlive it; a new
      // postmaster refuses to start while they hold its shared memory. They
      // are found before the postmaster dies (orphans get a new parent).
      server.pause();
      const sessions = childrenOf(server.pid);
      signalAll(sessions, "SIGKILL");
      await server.kill();
      await gone(sessions);
    },
    restart: () => server.restart(),
  };
}

/** Resolves once none of `pids` runs (a zombie has ended). */
async function gone(pids: number[]): Promise<void> {
  const running = (pid: number) => {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 500 && pids.some(running); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The same server with TLS on, serving `certs`' server certificate. */
export function postgresTlsServer(certs: TestCertificates): ServerRecipe {
  return {
    ...postgresServer,
    async prepare(dir, ports) {
      await postgresServer.prepare!(dir, ports);
      for (const name of ["server.pem", "server.key"]) {
        await Deno.copyFile(`${certs.dir}/${name}`, `${dir}/data/${name}`);
        await Deno.chmod(`${dir}/data/${name}`, 0o600);
        await run("chown", ["postgres:postgres", `${dir}/data/${name}`]);
      }
    },
    command(dir, ports) {
      const plain = postgresServer.command(dir, ports);
      return {
        ...plain,
        args: [
          ...plain.args,
          "-c",
          "ssl=on",
          "-c",
          "ssl_cert_file=server.pem",
          "-c",
          "ssl_key_file=server.key",
        ],
      };
    },
  };
}
