/**
 * ZooKeeper URIs: hosts, chroot, options, the permissions they need, and
 * bad values refused as one line with the password hidden.
 */

import { zookeeper } from "../../../backends/zookeeper/mod.ts";
import { parseZooKeeperUri } from "../../../backends/zookeeper/uri.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertThrows,
} from "../../helpers/assert.ts";

function bad(uri: string, pattern: RegExp): void {
  const error = assertThrows(() => zookeeper(uri), TypeError);
  assertMatch(error.message, pattern);
  assert(!error.message.includes("hunter2"), error.message);
  assert(!error.message.includes("\n"), "one line");
}

Deno.test("zookeeper URIs: hosts, chroot and options", async () => {
  await using b = zookeeper("zookeeper://zk1:2181,zk2,zk3:2182/apps/cron");
  assertEquals(b.scheme, "zookeeper");
  assertEquals(b.displayUri, "zookeeper://zk1:2181,zk2,zk3:2182/apps/cron");
  assertEquals(b.permissions, [
    { name: "net", host: "zk1:2181" },
    { name: "net", host: "zk2:2181" },
    { name: "net", host: "zk3:2182" },
  ]);
  assertEquals(b.capabilities.storesLimit, true);
  assertEquals(b.capabilities.listsLocks, true);
  assertEquals(b.capabilities.maxTtlMs, 366 * 86_400_000);
  const target = parseZooKeeperUri(
    "kazoo://app:hunter2@zk/x/?session_timeout=6",
  );
  assertEquals(target.scheme, "kazoo");
  assertEquals(target.connect, "zk:2181");
  assertEquals(target.root, "/x/coolock");
  assertEquals(target.digest, "app:hunter2");
  assertEquals(target.sessionTimeoutMs, 6_000);
  assertEquals(target.display, "kazoo://app:***@zk/x/?session_timeout=6");
  assertEquals(parseZooKeeperUri("zookeeper://zk").root, "/coolock");
  // A day-long ask is valid: the server bounds it, the protocol carries 2³¹−1 ms.
  assertEquals(
    parseZooKeeperUri("zookeeper://zk?session_timeout=31622400")
      .sessionTimeoutMs,
    2 ** 31 - 1,
  );
  await zookeeper(new URL("zookeeper://zk:2181/apps")).close();
});

Deno.test("zookeeper URIs: bad values are one line without the password", () => {
  bad("redis://app:hunter2@zk", /must start with zookeeper:\/\/ or kazoo/);
  bad("zookeeper://app:hunter2@", /names no host/);
  bad("zookeeper://app:hunter2@zk:0", /bad port '0'/);
  bad("zookeeper://app:hunter2@zk1,,zk2", /empty or bad host/);
  bad("zookeeper://app:hunter2@[::1]:2181", /IPv6 address '::1'/);
  bad("zookeeper://:hunter2@zk", /both a user name and a password/);
  bad("zookeeper://app@zk", /both a user name and a password/);
  bad("zookeeper://a%3Ab:hunter2@zk", /':' in its user name/);
  bad("zookeeper://app:hunter2@zk/a//b", /bad chroot '\/a\/\/b'.*empty/);
  bad("zookeeper://app:hunter2@zk/a/../b", /bad chroot .*'\.' or '\.\.'/);
  bad("zookeeper://app:hunter2@zk/zookeeper/x", /'\/zookeeper' is reserved/);
  bad("zookeeper://app:hunter2@zk/a%01b", /character ZooKeeper forbids/);
  bad("zookeeper://app:hunter2@zk/a%zz", /badly percent-encoded path/);
  bad("zookeeper://app:hunter2@zk?timeout=3", /unknown option 'timeout'/);
  bad("zookeeper://app:hunter2@zk?session_timeout=x", /bad 'session_timeout'/);
  bad("zookeeper://app:hunter2@zk?session_timeout=0.5", /at least 1 second/);
  bad("zookeeper://app:pa#ss@zk", /%23/);
});
