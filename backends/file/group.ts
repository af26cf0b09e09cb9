/**
 * Process-group liveness, for the file backend's promise: a `flock(2)` dies
 * with its holder, but the job it started may live on (until the watchdog
 * ends it, and up to `--kill-after` more if it ignores SIGTERM). So the
 * holder records its job's process group in the stamp, and a contender that
 * gets the flock treats the lock as held while any non-zombie process of
 * that group lives.
 *
 * A recorded group is `{pgid, start, boot}`: the group leader's start time
 * (`/proc/<pid>/stat` field 22, in clock ticks since boot) and the boot id.
 * Linux never hands out a pid number while some live process still has it
 * as its process group, so "a live process has pgrp P" means the group is
 * ours, unless a process with pid P exists whose start time differs (then P
 * was reused after our group had ended) or the host has rebooted. A zombie
 * has ended: it only waits for a parent to reap it, which a container's PID
 * 1 may never do.
 *
 * Where /proc is: Deno lets a program read it only with `--allow-all`, so
 * without that the same files are read by a tiny `/bin/sh` script (the CLI
 * needs `--allow-run=/bin/sh` for its watchdog anyway); the script only
 * prints the files, and the rules are applied here, once. Without /proc
 * (macOS, the BSDs) the group is probed with `kill -0 -<pgid>`, which counts
 * a zombie as alive and can't tell a reused group number: both err on the
 * side of keeping the lock. Windows has no process groups: nothing is
 * recorded, and the lease end covers a dead holder.
 *
 * @module
 */

/** A job's process group, as recorded in a stamp. */
export interface GroupRecord {
  readonly pgid: number;
  /** The leader's start time in clock ticks since boot (Linux). */
  readonly start?: string;
  /** `/proc/sys/kernel/random/boot_id` when it was recorded (Linux). */
  readonly boot?: string;
}

const SH = "/bin/sh";
const BOOT_ID = "/proc/sys/kernel/random/boot_id";

/**
 * Prints each file named (or, for `--stat`, every /proc/<pid>/stat) as one
 * line: its path, a tab, and its lines joined by spaces (a command name may
 * hold a newline). Files that vanish are skipped.
 */
const CAT = `[ "$1" = --stat ] && set -- /proc/[0-9]*/stat
for f do
  s=
  { while IFS= read -r l; do s="$s $l"; done; } < "$f" 2>/dev/null || continue
  printf '%s\\t%s\\n' "$f" "$s"
done`;

type Mode = "deno" | "sh" | "kill" | "none";
let mode: Mode | undefined;

function detect(): Mode {
  if (Deno.build.os === "windows") return "none";
  try {
    Deno.readTextFileSync(BOOT_ID);
    return "deno";
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) return "sh";
    return "kill";
  }
}

async function sh(args: string[], script = CAT): Promise<string> {
  try {
    const out = await new Deno.Command(SH, {
      args: ["-c", script, "sh", ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      clearEnv: true,
    }).output();
    return new TextDecoder().decode(out.stdout);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new Deno.errors.NotCapable(
        `The file backend reads /proc to see whether a job's process group lives: Deno allows that only with --allow-all, or else through ${SH} (--allow-run=${SH})`,
      );
    }
    throw error;
  }
}

/**
 * Reads /proc files, each as one line (newlines become spaces); `"--stat"`
 * reads every process's stat file. Missing files are absent from the map.
 */
async function readProc(paths: string[]): Promise<Map<string, string>> {
  mode ??= detect();
  const found = new Map<string, string>();
  if (mode === "deno") {
    const all = paths[0] === "--stat";
    const list = all ? [] : paths;
    if (all) {
      for (const entry of Deno.readDirSync("/proc")) {
        if (/^\d+$/.test(entry.name)) list.push(`/proc/${entry.name}/stat`);
      }
    }
    for (const path of list) {
      try {
        found.set(path, Deno.readTextFileSync(path).replaceAll("\n", " "));
      } catch { /* gone meanwhile */ }
    }
    return found;
  }
  for (const line of (await sh(paths)).split("\n")) {
    const tab = line.indexOf("\t");
    if (tab > 0) found.set(line.slice(0, tab), line.slice(tab + 2));
  }
  return found;
}

interface ProcStat {
  readonly pid: number;
  readonly state: string;
  readonly pgrp: number;
  readonly start: string;
}

/** Parses a stat line; `undefined` when it is not one. */
function parseStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(")");
  const fields = text.slice(close + 2).trim().split(/ +/);
  // After the command name: state, ppid, pgrp, … and field 22, starttime.
  if (close < 0 || fields.length < 20) return undefined;
  return {
    pid: Number(text.slice(0, text.indexOf(" "))),
    state: fields[0],
    pgrp: Number(fields[2]),
    start: fields[19],
  };
}

const ended = (stat: ProcStat) => stat.state === "Z" || stat.state === "X";

/** How this host tracks groups, for `check`. */
export function groupTracking(): Mode {
  return mode ??= detect();
}

/**
 * The record of `pgid`, right after its leader was spawned. Where the
 * leader's start time or the boot id can't be read, they are left out,
 * which only makes the record match more, never less.
 */
export async function recordGroup(pgid: number): Promise<GroupRecord> {
  mode ??= detect();
  if (mode === "none" || mode === "kill") return { pgid };
  const leader = `/proc/${pgid}/stat`;
  const files = await readProc([leader, BOOT_ID]);
  const stat = parseStat(files.get(leader) ?? "");
  return {
    pgid,
    start: stat?.pid === pgid ? stat.start : undefined,
    boot: files.get(BOOT_ID)?.trim() || undefined,
  };
}

/** Whether any non-zombie process of the recorded group still lives. */
export async function groupAlive(group: GroupRecord): Promise<boolean> {
  mode ??= detect();
  if (mode === "none") return false;
  if (mode === "kill") return await killProbe(group.pgid);
  const leaderPath = `/proc/${group.pgid}/stat`;
  const first = await readProc([leaderPath, BOOT_ID]);
  const boot = first.get(BOOT_ID)?.trim();
  if (group.boot && boot && boot !== group.boot) return false;
  const leader = parseStat(first.get(leaderPath) ?? "");
  if (leader && group.start && leader.start !== group.start) return false;
  if (leader && !ended(leader)) return true;
  // The leader has ended: another member may live on.
  for (const text of (await readProc(["--stat"])).values()) {
    const stat = parseStat(text);
    if (stat && stat.pgrp === group.pgid && !ended(stat)) return true;
  }
  return false;
}

/** `kill -0 -<pgid>`: succeeds for a zombie too, which keeps the lock longer. */
async function killProbe(pgid: number): Promise<boolean> {
  const out = await sh(
    [String(pgid)],
    `kill -0 -"$1" 2>/dev/null && echo alive`,
  );
  return out.trim() === "alive";
}

/**
 * The flocks held on this host, as `major:minor:inode` (from /proc/locks),
 * or `undefined` where that can't be read. Waiters (`->`) are left out.
 */
export async function heldFlocks(): Promise<Set<string> | undefined> {
  mode ??= detect();
  if (mode !== "deno" && mode !== "sh") return undefined;
  const text = (await readProc(["/proc/locks"])).get("/proc/locks");
  if (text === undefined) return undefined;
  const held = new Set<string>();
  const entry =
    /\d+: (->)? ?FLOCK +\S+ +\S+ +\d+ +([0-9a-f]+):([0-9a-f]+):(\d+)/g;
  for (const match of text.matchAll(entry)) {
    if (match[1]) continue;
    held.add(
      `${parseInt(match[2], 16)}:${parseInt(match[3], 16)}:${match[4]}`,
    );
  }
  return held;
}

/** The `major:minor:inode` key of a file, as {@linkcode heldFlocks} gives. */
export function flockKey(info: Deno.FileInfo): string {
  // glibc's dev_t: major in bits 8–19 and 32–63, minor in 0–7 and 20–31.
  const dev = BigInt(info.dev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn & 0xffffffffn);
  return `${major}:${minor}:${info.ino}`;
}
