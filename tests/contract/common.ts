/**
 * What the contract suite's themes share: test registration with explicit
 * capability skips (as Tooz does), lock names, requests, lease options, CLI
 * flags, and watching a process group from the outside.
 *
 * @module
 */

import type { Backend, LockRequest } from "../../src/backend.ts";
import { LockLostError } from "../../src/errors.ts";
import type { Lease } from "../../src/lease.ts";
import type { LockOptions } from "../../src/options.ts";
import type { ContractFixture } from "./fixture.ts";
import { eventually, runCli, spawnCli } from "../helpers/cli.ts";

export { assert, assertEquals } from "../helpers/assert.ts";

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** What a test needs beyond a plain backend; missing needs skip it, by name. */
export interface Needs {
  /** A server process (not the file backend). */
  readonly server?: boolean;
  readonly pause?: boolean;
  readonly partition?: boolean;
  readonly restart?: boolean;
  readonly dropSession?: boolean;
  readonly fairQueue?: boolean;
  readonly listsLocks?: boolean;
  readonly storesLimit?: boolean;
  /** `status`, `forceRelease` and `check`. */
  readonly operate?: boolean;
  /** The backend takes credentials (a password or token in its URI). */
  readonly credentials?: boolean;
}

/** The first need the fixture does not meet, or undefined. */
export function unmet(
  f: ContractFixture,
  backend: Backend,
  needs: Needs,
): string | undefined {
  const caps = backend.capabilities;
  const table: Array<[keyof Needs, boolean]> = [
    ["server", f.server !== undefined],
    ["pause", f.faults.pause && f.server !== undefined],
    ["partition", f.faults.partition && f.server !== undefined],
    ["restart", f.faults.restart !== undefined && f.server !== undefined],
    ["dropSession", f.faults.dropSession !== undefined],
    ["fairQueue", caps.fairQueue],
    ["listsLocks", caps.listsLocks],
    ["storesLimit", caps.storesLimit],
    [
      "operate",
      !!backend.status && !!backend.forceRelease && !!backend.check,
    ],
    ["credentials", f.uriWithSecret !== undefined],
  ];
  return table.find(([need, has]) => needs[need] && !has)?.[0];
}

/** The test registrar of one backend's run of the suite. */
export type Register = (
  name: string,
  fn: (f: ContractFixture) => Promise<void>,
  needs?: Needs,
) => void;

/**
 * Makes the registrar: a test whose need is unmet is registered as ignored,
 * with the reason in its name, so every skip shows in the output.
 */
export function registrar(
  fixture: ContractFixture | undefined,
  label: string,
): Register {
  let probe: Backend | undefined;
  const capabilities = () => {
    probe ??= fixture!.open();
    return probe;
  };
  return (name, fn, needs = {}) => {
    const missing = fixture && unmet(fixture, capabilities(), needs);
    Deno.test({
      name: `${label}: ${name}${missing ? ` (skipped: no ${missing})` : ""}`,
      ignore: fixture === undefined || missing !== undefined,
      sanitizeOps: false,
      sanitizeResources: false,
      fn: () => fn(fixture!),
    });
  };
}

let counter = 0;
/** A fresh lock name for one test. */
export function lockName(label: string, tag: string): string {
  return `${label}-${tag}-${Date.now().toString(36)}-${counter++}`;
}

/** One direct backend request, with overrides. */
export function request(
  lock: string,
  overrides: Partial<LockRequest> = {},
): LockRequest {
  return {
    name: lock,
    owner: `contract:${crypto.randomUUID()}`,
    node: "contract",
    limit: 1,
    expiresInMs: 60_000,
    guardMs: 0,
    wait: false,
    signal: AbortSignal.timeout(30_000),
    ...overrides,
  };
}

/** Lease options for the suite: the fixture's TTL, no guard time. */
export function leaseOptions(
  f: ContractFixture,
  backend: Backend,
  lock: string,
  extra: Partial<LockOptions> = {},
): LockOptions {
  return {
    backend,
    lock,
    ttl: f.ttl,
    guardTime: 0,
    node: "contract",
    ...extra,
  };
}

/** The CLI flags every run of the suite shares: this backend, a short TTL. */
export function flags(
  f: ContractFixture,
  lock: string,
  guardTime: number,
  uri = f.uri,
): string[] {
  return [
    "--log-file",
    "-",
    "--kill-after",
    "0.5",
    "--backend",
    uri,
    "--lock",
    lock,
    "--ttl",
    String(f.ttl),
    "--guard-time",
    String(guardTime),
  ];
}

/** Runs the CLI with the fixture's environment. */
export function cli(f: ContractFixture, args: string[]) {
  return runCli(["--log-file", "-", "--kill-after", "0.5", ...args], {
    env: f.env,
  });
}

/** Starts the CLI with the fixture's environment. */
export function spawn(f: ContractFixture, args: string[]) {
  return spawnCli(args, { env: f.env });
}

/** Waits until the lease's lost signal fires; resolves how long it took. */
export async function lostWithin(lease: Lease, ms: number): Promise<number> {
  const started = performance.now();
  await eventually(
    () => lease.signal.aborted,
    ms,
    `the lost signal of '${lease.name}'`,
  );
  if (!(lease.signal.reason instanceof LockLostError)) {
    throw new Error("the lost signal's reason is a LockLostError");
  }
  return performance.now() - started;
}

const scratch = Deno.makeTempDirSync({ prefix: "coolock-contract-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(scratch, { recursive: true });
  } catch { /* best effort */ }
});

/** A fresh directory for one test's files. */
export function tempDir(): Promise<string> {
  return Deno.makeTempDir({ dir: scratch });
}

/** Wall-clock milliseconds, as the shell's `date +%s%3N` prints them. */
export const wallMs = (): number => Date.now();

/**
 * The live (non-zombie) processes of process group `pgid`, from /proc: a
 * zombie has ended, even though `kill -0` still reaches it.
 */
export function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command name: state, ppid, pgrp.
    if (fields[0] !== "Z" && Number(fields[2]) === pgid) {
      members.push(Number(entry.name));
    }
  }
  return members;
}

/**
 * Watches a process group from the outside, every 10 ms: `lastSeenAlive`
 * is the last wall-clock time it had a live member (no later than its real
 * end), `goneAt` the first time it had none.
 */
export function watchGroup(pgid: number): {
  readonly lastSeenAlive: number;
  readonly goneAt: number | undefined;
  gone(ms: number): Promise<void>;
  stop(): void;
} {
  let lastSeenAlive = wallMs();
  let goneAt: number | undefined;
  const timer = setInterval(() => {
    const now = wallMs();
    if (groupMembers(pgid).length > 0) lastSeenAlive = now;
    else if (goneAt === undefined) {
      goneAt = now;
      clearInterval(timer);
    }
  }, 10);
  return {
    get lastSeenAlive() {
      return lastSeenAlive;
    },
    get goneAt() {
      return goneAt;
    },
    gone: (ms) =>
      eventually(
        () => goneAt !== undefined,
        ms,
        `process group ${pgid} to end`,
      ),
    stop: () => clearInterval(timer),
  };
}

/** The lines of a file, or none when it does not exist yet. */
export async function lines(path: string): Promise<string[]> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.split("\n").filter(Boolean);
}
