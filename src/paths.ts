/**
 * Where a user's coolock state lives by default, written once for the file
 * backend's lock directory and the CLI's log file: `$XDG_STATE_HOME/coolock`,
 * else `~/.local/state/coolock`. A relative `XDG_STATE_HOME` or `HOME` is
 * ignored, as the XDG spec says, so that a cron job's working directory
 * never picks the place.
 *
 * @module
 */

/** Whether `path` is absolute here (a drive letter counts on Windows only). */
export function isAbsolute(path: string): boolean {
  return path.startsWith("/") ||
    (Deno.build.os === "windows" && /^[A-Za-z]:[\\/]/.test(path));
}

/**
 * The user's coolock state directory, or `undefined` when neither variable
 * holds an absolute path.
 */
export function userStateDir(
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string | undefined {
  const absolute = (name: string) => {
    const value = env(name);
    return value && isAbsolute(value) ? value.replace(/\/+$/, "") : undefined;
  };
  const state = absolute("XDG_STATE_HOME");
  if (state) return `${state}/coolock`;
  const home = absolute("HOME");
  return home ? `${home}/.local/state/coolock` : undefined;
}
