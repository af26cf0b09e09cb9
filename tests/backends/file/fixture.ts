/**
 * The file backend's contract fixture: a fresh, private lock directory.
 * There is no server to pause, partition or restart; "unreachable" is a
 * directory that can't be created. A lock frees as soon as its holder's job
 * group is gone, so `freeWithinMs` is 1 s.
 *
 * @module
 */

import { file } from "../../../backends/file/mod.ts";
import { layoutOf } from "../../../backends/file/keys.ts";
import type { ContractFixture } from "../../contract/fixture.ts";

/** Builds the fixture in a new temporary directory. */
export async function fileFixture(): Promise<ContractFixture> {
  const dir = await scratchDir("coolock-file-");
  const uri = `file://${dir}`;
  return {
    name: "file",
    uri,
    uriAt: () => uri,
    unreachableUri: "file:///proc/coolock-cannot-exist",
    open: (at = uri) => file(at),
    ttl: 2,
    entry: { module: "backends/file/mod.ts", factory: "file" },
    freeWithinMs: 1_000,
    faults: { pause: false, partition: false },
    remove: async (lock) =>
      Deno.remove((await layoutOf(dir, lock)).slotPath(0)),
  };
}

const scratch: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const path of scratch) {
    try {
      Deno.removeSync(path, { recursive: true });
    } catch { /* best effort */ }
  }
});

/** A fresh directory for one test, removed when the test file ends. */
export async function scratchDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  scratch.push(dir);
  return dir;
}

/** Removes `path` (made by someone else, such as `nobody`) when the test file ends. */
export function removeLater(path: string): void {
  scratch.push(path);
}
