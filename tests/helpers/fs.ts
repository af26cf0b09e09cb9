/** File system checks for tests. */

/** Resolves whether something exists at `path`. */
export function exists(path: string): Promise<boolean> {
  return Deno.stat(path).then(() => true, () => false);
}
