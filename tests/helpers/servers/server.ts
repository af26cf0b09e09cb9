/**
 * Throwaway real servers for tests, in the pattern of Tooz's pifpaf: each
 * runs as a plain process in a temp dir, on a free 127.0.0.1 port, and is
 * killed when the test process ends. One server per kind per test run; tests
 * share it and keep apart by lock name.
 *
 * The fault tests use `pause()` (SIGSTOP: a hung or partitioned server),
 * `resume()`, `kill()` (SIGKILL) and `restart()` (same port, same data dir).
 *
 * `COOLOCK_TEST_REQUIRE=all` (or a comma list of kinds) turns a missing
 * server binary into a failure instead of a skipped test.
 *
 * @module
 */

/** How to run one kind of server. */
export interface ServerRecipe {
  /** The kind, as `COOLOCK_TEST_REQUIRE` names it: `redis`, `etcd`, … */
  readonly kind: string;
  /** Files that must exist for the server to run here. */
  readonly requires: readonly string[];
  /** How many ports the server needs (client port first). Default 1. */
  readonly ports?: number;
  /** Runs once per data dir, before the first start (initdb and the like). */
  prepare?(dir: string, ports: readonly number[]): Promise<void>;
  /** The command line that runs the server in the foreground. */
  command(dir: string, ports: readonly number[]): {
    cmd: string;
    args: string[];
    env?: Record<string, string>;
  };
  /** Resolves true once the server answers. Called until it does. */
  ready(dir: string, ports: readonly number[]): Promise<boolean>;
}

/** A running test server. */
export interface TestServer {
  readonly kind: string;
  readonly host: string;
  /** The client port. */
  readonly port: number;
  /** Every port the server uses, client port first. */
  readonly ports: readonly number[];
  readonly dir: string;
  /** The process id of the server itself (not of a wrapper). */
  readonly pid: number;
  /** SIGSTOP: the server hangs, as in a network partition. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** SIGKILL, and wait until the process is gone. */
  kill(): Promise<void>;
  /** Start again on the same ports and data dir, after `kill()`. */
  restart(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 30_000;
const running = new Set<{ pid: number; dir: string }>();

globalThis.addEventListener("unload", () => {
  for (const { pid, dir } of running) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* already gone */ }
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* best effort */ }
  }
});

/**
 * Ports are picked below the kernel's ephemeral range (32768 and up on
 * Linux), where outgoing connections take their local ports: a port that the
 * kernel handed out as free a moment ago may be some client's by the time a
 * server binds it. And never twice in one process, so that servers started
 * side by side can't pick the same one.
 */
const PORTS = { from: 10_000, to: 32_000 } as const;
const handedOut = new Set<number>();

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  for (let tries = 0; tries < 1_000; tries++) {
    const port = PORTS.from +
      Math.floor(Math.random() * (PORTS.to - PORTS.from));
    // etcd's peer port is the client port + 1: keep both clear of others.
    if (handedOut.has(port) || handedOut.has(port - 1)) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch {
      continue;
    }
    handedOut.add(port);
    return port;
  }
  throw new Error("No free port on 127.0.0.1 below the ephemeral range");
}

/** Resolves true when something accepts TCP connections on the port. */
export async function acceptsTcp(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Sends `payload` and resolves the first bytes of the answer, as text. */
export async function ask(port: number, payload: string): Promise<string> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(new TextEncoder().encode(payload));
      const buffer = new Uint8Array(512);
      const read = await Promise.race([
        conn.read(buffer),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 1_000)),
      ]);
      return read ? new TextDecoder().decode(buffer.subarray(0, read)) : "";
    } finally {
      conn.close();
    }
  } catch {
    return "";
  }
}

/** Runs a command to completion, failing with its stderr. */
export async function run(
  cmd: string,
  args: string[],
  options: Deno.CommandOptions = {},
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    ...options,
  })
    .output();
  if (!out.success) {
    throw new Error(
      `'${cmd} ${args.join(" ")}' failed (${out.code}): ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

function required(kind: string): boolean {
  const wanted = (Deno.env.get("COOLOCK_TEST_REQUIRE") ?? "").split(",").map((
    s,
  ) => s.trim());
  return wanted.includes("all") || wanted.includes(kind);
}

function missing(recipe: ServerRecipe): string | undefined {
  for (const path of recipe.requires) {
    try {
      Deno.statSync(path);
    } catch {
      return path;
    }
  }
  return undefined;
}

/**
 * Whether the recipe's server can run here. Throws when it can't and
 * `COOLOCK_TEST_REQUIRE` says it must.
 */
export function available(recipe: ServerRecipe): boolean {
  const absent = missing(recipe);
  if (absent === undefined) return true;
  if (required(recipe.kind)) {
    throw new Error(
      `The ${recipe.kind} server is required (COOLOCK_TEST_REQUIRE) but '${absent}' is missing`,
    );
  }
  console.warn(`Skipping ${recipe.kind} tests: '${absent}' is missing`);
  return false;
}

async function launch(
  recipe: ServerRecipe,
  dir: string,
  ports: readonly number[],
): Promise<Deno.ChildProcess> {
  const { cmd, args, env } = recipe.command(dir, ports);
  // The shell's exec keeps the PID, so signals reach the server itself; the
  // log file says why a start failed and never blocks the server on a pipe.
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", 'exec "$0" "$@" >>server.log 2>&1', cmd, ...args],
    env,
    cwd: dir,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  const entry = { pid: child.pid, dir };
  running.add(entry);
  void child.status.then(() => running.delete(entry));
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let exited = false;
  void child.status.then(() => exited = true);
  while (!(await recipe.ready(dir, ports))) {
    if (exited || Date.now() > deadline) {
      const output = await Deno.readTextFile(`${dir}/server.log`).catch(() =>
        ""
      );
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      throw new Error(
        `The ${recipe.kind} server did not start: ${output.slice(-2000)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return child;
}

/** Starts a server of the recipe's kind on free ports, and waits until ready. */
export async function startServer(recipe: ServerRecipe): Promise<TestServer> {
  let dir: string;
  let ports: number[];
  let child: Deno.ChildProcess;
  for (let attempt = 1;; attempt++) {
    dir = await Deno.makeTempDir({ prefix: `coolock-${recipe.kind}-` });
    await Deno.chmod(dir, 0o777);
    ports = Array.from({ length: recipe.ports ?? 1 }, freePort);
    try {
      await recipe.prepare?.(dir, ports);
      child = await launch(recipe, dir, ports);
      break;
    } catch (error) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      // Someone took a port between its pick and the server's bind: pick
      // again. A recipe with its own ports (ports: 0) can't.
      const clash = /address already in use|EADDRINUSE|bind/i.test(
        String((error as Error)?.message),
      );
      if (!clash || attempt === 3 || recipe.ports === 0) throw error;
    }
  }
  let gone: Promise<unknown> = child.status;
  return {
    kind: recipe.kind,
    host: "127.0.0.1",
    port: ports[0],
    ports,
    dir,
    get pid() {
      return child.pid;
    },
    pause: () => Deno.kill(child.pid, "SIGSTOP"),
    resume: () => Deno.kill(child.pid, "SIGCONT"),
    async kill() {
      try {
        Deno.kill(child.pid, "SIGKILL");
      } catch { /* already gone */ }
      // An unref'd child's status alone doesn't keep the event loop alive.
      child.ref();
      await gone;
    },
    async restart() {
      child = await launch(recipe, dir, ports);
      gone = child.status;
    },
  };
}

const shared = new Map<string, Promise<TestServer>>();

/**
 * The one server of this kind for the whole test run, started on first use;
 * `undefined` where the server can't run here (the tests then skip, unless
 * `COOLOCK_TEST_REQUIRE` requires it).
 */
export function sharedServer(
  recipe: ServerRecipe,
): Promise<TestServer | undefined> {
  if (!available(recipe)) return Promise.resolve(undefined);
  let server = shared.get(recipe.kind);
  if (!server) {
    server = startServer(recipe);
    shared.set(recipe.kind, server);
  }
  return server;
}
