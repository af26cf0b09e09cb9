import { file } from "../../backends/file/mod.ts";
import { encodeLockName } from "../../src/names.ts";
import { contract } from "./suite.ts";

const dir = await Deno.makeTempDir({ prefix: "coolock-file-" });
const uri = `file://${dir}`;

contract({
  name: "file",
  uri,
  uriAt: () => uri,
  uriWithSecret: (secret) => `${uri}?password=${secret}`,
  unreachableUri: "file:///proc/coolock-cannot-exist",
  open: (at = uri) => file(at),
  ttl: 2,
  entry: { module: "backends/file/mod.ts", factory: "file" },
  freeWithinMs: 1_000,
  faults: { pause: false, partition: false },
  remove: (lock) => Deno.remove(`${dir}/${encodeLockName(lock)}.lock`),
});
