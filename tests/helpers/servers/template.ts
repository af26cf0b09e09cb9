/**
 * A data dir made once per test run (initdb and the like take seconds) and
 * copied into each server's own dir, so that a server starts in well under a
 * second.
 *
 * @module
 */

import { run } from "./server.ts";

/**
 * Returns a function that copies the template to `<dir>/data`, making it on
 * first use: `make(root)` fills a temp dir, removed when the process ends,
 * and resolves the template data dir's path.
 */
export function dataTemplate(
  prefix: string,
  make: (root: string) => Promise<string>,
): (dir: string) => Promise<void> {
  let template: Promise<string> | undefined;
  const create = async () => {
    const root = await Deno.makeTempDir({ prefix });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(root, { recursive: true });
      } catch { /* best effort */ }
    });
    return make(root);
  };
  return async (dir) => {
    template ??= create();
    await run("cp", ["-a", await template, `${dir}/data`]);
  };
}
