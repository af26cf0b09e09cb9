/**
 * Signals for the job's process group. The job is its whole group, not only
 * the process coolock started, so that a background child (`sleep 3 &`)
 * never outlives the lock; a process that calls `setsid` leaves the group
 * and is out of reach.
 *
 * Who is still in the group is counted by the watchdog's clock from /proc
 * (Deno reads /proc only with --allow-all), zombies left out: a killed
 * process whose parent never reaps it (a container whose PID 1 doesn't)
 * still answers `kill -0`, but can't do anything. Without the clock, or
 * without /proc, a signal to the group tells only whether some process,
 * zombie or not, is still in it.
 *
 * @module
 */

/** Process groups and sessions exist (not on Windows). */
export const POSIX: boolean = Deno.build.os !== "windows";

/**
 * Whether some process (zombies included) is in group `pgid`; true when
 * Deno may not signal it (a scoped --allow-run), so that an unknown group
 * is never taken for gone.
 */
export function reachable(pgid: number): boolean {
  if (!POSIX) return false;
  try {
    // Deno has no signal 0; SIGCONT is harmless to a running process.
    Deno.kill(-pgid, "SIGCONT");
    return true;
  } catch (error) {
    return error instanceof Deno.errors.NotCapable;
  }
}

/** Sends `signal` to the whole group; false when nobody is left in it. */
export function signalGroup(pgid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}
