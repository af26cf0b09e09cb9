import { checkLockName, encodeLockName } from "../../src/names.ts";
import {
  parseBackendUri,
  redactUri,
  secondsParam,
  secretsOf,
} from "../../src/uri.ts";
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
  // A user name with characters a URI can't hold there may be a password
  // that lost its ':': the whole user info goes.
  assertEquals(redactUri("not a uri user:pass@"), "***@");
  assertEquals(redactUri("mysql://u@h/db"), "mysql://u@h/db");
});

Deno.test("uri: the masker hides every part of a secret in malformed URIs", () => {
  for (
    const [text, shown] of [
      ["redis://:pa#ss@h:1", "redis://:***@h:1"],
      ["redis://app:s3c#ret@db", "redis://app:***@db"],
      ["postgres://u:s3cr/et@h/db", "postgres://u:***@h/db"],
      // A "?" before the last "@": a query may hold the "@", so its tail goes.
      ["mysql://u:a?b@h/db", "mysql://u:***@***"],
      ["redis://u:p@ss@h", "redis://u:***@h"],
      [":s3cret@127.0.0.1", ":***@127.0.0.1"],
      ["user:s3cret@127.0.0.1", "user:***@127.0.0.1"],
      ["s3c#ret@host", "***@host"],
      ["file://:s3cret@host/x", "file://:***@host/x"],
      ["file:/a:s3cret@host/x", "file:***@host/x"],
      // No '@': a "port" that is not a number may be the password.
      ["redis://:s3cret", "redis://:***"],
      ["postgres://u:s3cr/et", "postgres://u:***"],
      // A '#' cuts a secret short: everything after it goes.
      ["consul://h?token=ab#cd&dc=x", "consul://h?token=***#***"],
      ["consul://h?dc=x&acl_token=t0k", "consul://h?dc=x&acl_token=***"],
      ["consul://h?to%6Ben=t0k", "consul://h?to%6Ben=***"],
      // The last '@' inside a token: its tail, up to the next '&', goes too.
      ["consul://h?token=a@b", "consul://***@***"],
      ["consul://h?dc=a@b&token=t0k", "consul://***@***&token=***"],
      // A '&' inside a token: what follows without '=' is its tail.
      ["consul://h?token=t0k&en2&dc=x", "consul://h?token=***&***&dc=x"],
      ["etcd://r:p@[::1]:2379", "etcd://r:***@[::1]:2379"],
    ] as const
  ) {
    assertEquals(redactUri(text), shown, text);
  }
});

Deno.test("uri: secretsOf lists each secret as written and decoded", () => {
  assertEquals(secretsOf("redis://:p%40ss@db?sentinel_password=x%2By"), [
    "p%40ss",
    "p@ss",
    "x%2By",
    "x+y",
  ]);
  assertEquals(secretsOf("redis://app@db"), []);
});

Deno.test("uri: characters that must be encoded in user info are refused by position", () => {
  for (
    const [text, secret, char, position, encoded] of [
      ["redis://:pa#ss@h:1", "pa#ss", "#", 12, "%23"],
      ["postgres://u:s3cr/et@h/db", "s3cr/et", "/", 18, "%2F"],
      ["mysql://u:a?b@h/db", "a?b", "?", 12, "%3F"],
      ["redis://u:p@ss@h", "p@ss", "@", 12, "%40"],
      ["etcd://r:p[1]@h", "p[1]", "[", 11, "%5B"],
    ] as const
  ) {
    const error = assertThrows(() => parseBackendUri(text, 1), TypeError);
    assert(
      error.message.includes(`unencoded '${char}' at character ${position}`) &&
        error.message.includes(`write it as ${encoded}`) &&
        error.message.includes("in its password"),
      `${text}: ${error.message}`,
    );
    assert(!error.message.includes(secret), error.message);
  }
  const control = assertThrows(
    () => parseBackendUri("redis://:a\tb@h", 1),
    TypeError,
  );
  assert(control.message.includes("control character"), control.message);
  const user = assertThrows(() => parseBackendUri("redis://a#b@h", 1));
  assert(user.message.includes("in its user name"), user.message);
  const tail = assertThrows(() => parseBackendUri("consul://h?token=a&bcd", 1));
  assert(
    tail.message.includes("without '=' at character 20") &&
      !tail.message.includes("bcd"),
    tail.message,
  );
  const fragment = assertThrows(() => parseBackendUri("redis://h/0#x", 1));
  assert(fragment.message.includes("no fragment"), fragment.message);
});

Deno.test("uri: spaces, quotes, unicode and ':' in a password are taken as written", () => {
  for (
    const password of [`p w`, `"q'`, "pässwörd🔒", "a:b:c", "a+b", "a=b&c"]
  ) {
    const uri = parseBackendUri(`redis://u:${password}@db:1/2`, 6379);
    assertEquals(uri.password, password);
    assertEquals(uri.username, "u");
    assertEquals(uri.hosts, [{ host: "db", port: 1 }]);
    assertEquals(uri.display, "redis://u:***@db:1/2");
  }
  const encoded = parseBackendUri("redis://u:%23%3F%2F%40%25@db", 6379);
  assertEquals(encoded.password, "#?/@%");
});

Deno.test("uri: query values keep '+' and are percent-decoded", () => {
  const uri = parseBackendUri(
    "redis://h?sentinel=m&sentinel_password=a+b%26c",
    1,
  );
  assertEquals(uri.params.get("sentinel_password"), "a+b&c");
  const error = assertThrows(
    () => parseBackendUri("redis://h?token=a%zz", 1),
    TypeError,
  );
  assert(
    /badly percent-encoded query at character 18/.test(error.message),
    error.message,
  );
  assert(!error.message.includes("a%zz"), error.message);
});

Deno.test("uri: bad ports, hosts and encodings are TypeErrors without the password", () => {
  for (
    const [text, pattern] of [
      ["redis://u:hunter2@db:99999", /bad port '99999'/],
      ["redis://u:hunter2@db:abc", /bad port 'abc'/],
      ["redis://u:hunter2@:6379", /empty or bad host/],
      ["redis://u:hunter2@a b:1", /bad host/],
      // Without user info a bad "port" may be a password: position only.
      ["redis://db:hunter2", /bad port at character 12/],
      ["redis://:hunter2", /empty or bad host at character 9/],
      ["redis:/u:hunter2@db", /not of the form/],
      ["redis://u:%zz@db", /badly percent-encoded password at character 11/],
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
