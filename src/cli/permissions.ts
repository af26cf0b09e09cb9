/**
 * Every Deno permission a run needs, checked before the lock is taken: a
 * missing one is exit 77 and one line naming the flags to add, never a job
 * that stops halfway or runs without its watchdog.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import { POSIX } from "./group.ts";
import { SHELL } from "./watchdog_scripts.ts";

/** A permission and who needs it, for the message. */
export interface Need {
  readonly descriptor: Deno.PermissionDescriptor;
  /** Who needs it: `the backend`, `the watchdog`, `the command`, … */
  readonly for: string;
}

/** The `deno run` flag that grants `descriptor`. */
export function flagOf(descriptor: Deno.PermissionDescriptor): string {
  const scope = (value: unknown) =>
    value === undefined
      ? ""
      : `=${value instanceof URL ? value.pathname : value}`;
  switch (descriptor.name) {
    case "run":
      return `--allow-run${scope(descriptor.command)}`;
    case "read":
    case "write":
    case "ffi":
      return `--allow-${descriptor.name}${scope(descriptor.path)}`;
    case "net":
    case "import":
      return `--allow-${descriptor.name}${scope(descriptor.host)}`;
    case "env":
      return `--allow-env${scope(descriptor.variable)}`;
    case "sys":
      return `--allow-sys${scope(descriptor.kind)}`;
    default:
      return `--allow-${(descriptor as { name: string }).name}`;
  }
}

/**
 * The line for the permissions in `needs` that Deno has not granted, or
 * undefined when all are.
 */
export function missing(needs: readonly Need[]): string | undefined {
  const lacking = new Map<string, string[]>();
  for (const need of needs) {
    let state: Deno.PermissionState;
    try {
      state = Deno.permissions.querySync(need.descriptor).state;
    } catch {
      state = "denied";
    }
    if (state === "granted") continue;
    const flag = flagOf(need.descriptor);
    const who = lacking.get(flag) ?? [];
    if (!who.includes(need.for)) who.push(need.for);
    lacking.set(flag, who);
  }
  if (lacking.size === 0) return undefined;
  const entries = [...lacking].map(([flag, who]) =>
    `${flag} (${who.join(", ")})`
  );
  return `${
    entries.length === 1
      ? "A Deno permission is missing"
      : "Deno permissions are missing"
  }: ${entries.join(", ")}`;
}

/** The permissions a run needs before the command is known to exist. */
export function runNeeds(plan: {
  readonly backend: Backend;
  readonly permissions?: readonly Deno.PermissionDescriptor[];
  readonly unguarded: boolean;
}): Need[] {
  const list: Need[] = [];
  for (const descriptor of plan.backend.permissions ?? []) {
    list.push({ descriptor, for: `the ${plan.backend.scheme} backend` });
  }
  for (const descriptor of plan.permissions ?? []) {
    list.push({ descriptor, for: "coolock" });
  }
  if (!plan.unguarded) {
    list.push({
      descriptor: { name: "run", command: SHELL },
      for: "the watchdog",
    });
  }
  if (plan.unguarded) {
    list.push({
      descriptor: { name: "env" },
      for: "the command's environment",
    });
    // Deno signals a process group only with an unscoped --allow-run.
    if (POSIX) {
      list.push({ descriptor: { name: "run" }, for: "signals to the job" });
    }
  }
  return list;
}
