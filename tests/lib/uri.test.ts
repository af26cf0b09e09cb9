import { checkLockName, encodeLockName } from "../../src/names.ts";
import { parseBackendUri, redactUri, secondsParam } from "../../src/uri.ts";
import { openBackend } from "../../backends/mod.ts";
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";

Deno.test("uri: host lists, default ports, IPv6, paths and queries", () => {
  const uri = parseBackendUri(
    "zookeeper://zk1:2181,zk2,[::1]:2182/app/locks?session_timeout=6",
    2181,
  );
  assertEquals(uri.scheme, "zookeeper");
  assertEquals(uri.hosts, [{ host: "zk1", port: 2181 }, {
    host: "zk2",
    port: 2181,
  }, { host: "::1", port: 2182 }]);
  assertEquals(uri.path, "/app/locks");
  assertEquals(secondsParam(uri, "session_timeout", 1), 6000);
});

Deno.test("uri: credentials are percent-decoded and never displayed", () => {
  const uri = parseBackendUri("redis://app:p%40ss%3Aw0rd@db:6380/2", 6379);
  assertEquals(uri.username, "app");
  assertEquals(uri.password, "p@ss:w0rd");
  assertEquals(uri.display, "redis://app:***@db:6380/2");
  assertEquals(parseBackendUri("redis://db", 6379).password, undefined);
});

Deno.test("uri: redaction covers passwords, tokens and broken URIs", () => {
  assertEquals(
    redactUri("consul://agent:8500?token=abc&dc=eu"),
    "consul://agent:8500?token=***&dc=eu",
  );
  assertEquals(
    redactUri("redis://:pw@h?sentinel_password=x"),
    "redis://:***@h?sentinel_password=***",
  );
  assertEquals(
    redactUri("etcd://root:secret@h1:2379,h2:99999"),
    "etcd://root:***@h1:2379,h2:99999",
  );
  assertEquals(redactUri("not a uri user:pass@"), "not a uri user:pass@");
  assertEquals(redactUri("mysql://u@h/db"), "mysql://u@h/db");
});

Deno.test("uri: bad ports, hosts and encodings are TypeErrors without the password", () => {
  for (
    const [text, pattern] of [
      ["redis://u:hunter2@db:99999", /bad port '99999'/],
      ["redis://u:hunter2@db:abc", /bad port 'abc'/],
      ["redis://u:hunter2@:6379", /empty or bad host/],
      ["redis://u:hunter2@a b:1", /bad host/],
      ["redis:/u:hunter2@db", /not of the form/],
      ["redis://u:%zz@db", /badly percent-encoded password/],
    ] as const
  ) {
    const error = assertThrows(() => parseBackendUri(text, 6379), TypeError);
    assert(pattern.test(error.message), `${text}: ${error.message}`);
    assert(
      !error.message.includes("hunter2") && !error.message.includes("%zz"),
      error.message,
    );
  }
  const error = assertThrows(
    () => secondsParam(parseBackendUri("z://h?t=-1", 1), "t", 0),
    TypeError,
  );
  assert(error.message.includes("'t'"), error.message);
});

Deno.test("uri: openBackend knows every scheme of the design card and names the unknown", () => {
  const error = assertThrows(() => openBackend("ftp://u:secret@h"), TypeError);
  assert(
    error.message.startsWith("Unknown backend scheme 'ftp'"),
    error.message,
  );
  assert(!error.message.includes("secret"), error.message);
  assert(
    error.message.includes("memcached") && error.message.includes("kazoo"),
    error.message,
  );
  assertThrows(() => openBackend("just-text"), TypeError);
  assertEquals(openBackend("file:///tmp/coolock-uri-test").scheme, "file");
});

Deno.test("names: any Unicode name without control characters, up to 200 characters", () => {
  for (
    const name of [
      "a",
      "nightly-backup",
      "o'brien; DROP",
      "锁/🔒",
      "x".repeat(200),
    ]
  ) checkLockName(name);
  for (const bad of ["", "a\nb", "tab\there", "x".repeat(201), "\ud800"]) {
    assertThrows(() => checkLockName(bad), TypeError);
  }
  assertThrows(() => checkLockName(42), TypeError);
});

Deno.test("names: encoding is a safe, injective path segment", () => {
  const names = [
    "a/b",
    "a%2Fb",
    "..",
    ".",
    ".hidden",
    "a.b",
    "ünï",
    "a b",
    "A",
    "a",
  ];
  const encoded = names.map(encodeLockName);
  assertEquals(new Set(encoded).size, names.length);
  for (const segment of encoded) {
    assert(/^[A-Za-z0-9_%-][A-Za-z0-9_.%-]*$/.test(segment), segment);
    assert(segment !== "." && segment !== "..", segment);
  }
  assertEquals(encodeLockName("../etc/passwd"), "%2E.%2Fetc%2Fpasswd");
});
