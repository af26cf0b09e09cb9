/**
 * The MySQL backend against a real MariaDB 10.11 (Debian ships no MySQL
 * server): the generic contract suite, then the shared SQL suite
 * (tests/sql_suite.ts) with what is particular to `GET_LOCK` and the
 * `coolock_locks` row.
 */

import assert from "node:assert/strict";
import mysql2 from "npm:mysql2@3.24.6/promise";
import { mysql } from "../../../backends/sql/mysql/mod.ts";
import { lockKey } from "../../../backends/sql/mysql/uri.ts";
import { contract } from "../../contract/suite.ts";
import type { ContractFixture } from "../../contract/fixture.ts";
import {
  MARIADB_DATABASE,
  MARIADB_PASSWORD,
  MARIADB_TLS_USER,
  MARIADB_USER,
  mariadbServer,
  mariadbTlsServer,
} from "../../helpers/servers/mariadb.ts";
import { freePort, sharedServer } from "../../helpers/servers/server.ts";
import { sqlSuite } from "./suite.ts";

const server = await sharedServer(mariadbServer);

const uriAt = (port: number, password = MARIADB_PASSWORD) =>
  `mysql://${MARIADB_USER}:${
    encodeURIComponent(password)
  }@127.0.0.1:${port}/${MARIADB_DATABASE}`;

/** Runs one statement on a connection of its own, out of band. */
async function admin(
  sql: string,
  params: unknown[] = [],
): Promise<Record<string, unknown>[]> {
  const conn = await mysql2.createConnection({
    host: "127.0.0.1",
    port: server!.port,
    user: MARIADB_USER,
    password: MARIADB_PASSWORD,
    database: MARIADB_DATABASE,
  });
  conn.on("error", () => {});
  try {
    const [rows] = await conn.query(sql, params);
    return rows as Record<string, unknown>[];
  } finally {
    await conn.end();
  }
}

/** Kills the connection that holds `lock`, as an operator would. */
async function killHolder(lock: string): Promise<number> {
  const [{ id }] = await admin("SELECT IS_USED_LOCK(?) AS id", [
    await lockKey(lock),
  ]);
  if (id === null) return 0;
  await admin("KILL ?", [Number(id)]);
  return 1;
}

const count = async (sql: string, params: unknown[] = []) =>
  Number((await admin(sql, params))[0].n);

const fixture: ContractFixture | undefined = server && {
  name: "mysql",
  uri: uriAt(server.port),
  uriAt: (port) => uriAt(port),
  uriWithSecret: (secret) => uriAt(server.port, secret),
  unreachableUri: uriAt(freePort()),
  open: (uri) => mysql(uri ?? uriAt(server.port)),
  // mysql2 takes ~120 ms to load (ten times that with 20 processes on 2
  // cores), and the first deadline counts from before the load.
  ttl: 3,
  freeWithinMs: 5_000,
  entry: { module: "backends/sql/mysql/mod.ts", factory: "mysql" },
  faults: { pause: true, partition: true },
  server,
  remove: async (lock) => {
    await killHolder(lock);
  },
};

contract(fixture);

sqlSuite({
  name: "mysql",
  module: new URL("../../../backends/sql/mysql/mod.ts", import.meta.url),
  open: mysql,
  noun: "connection",
  offlineUri: "mysql://u@db.invalid/x",
  badUris: [
    ["mysql://u:s3cret@db/x?ssl-mode=sometimes", /'ssl-mode'.*'sometimes'/],
    ["mysql://u:s3cret@db/x?ssl-mode=PREFERRED", /'ssl-mode'.*'PREFERRED'/],
    ["mysql://u:s3cret@db/x?color=red", /unknown.*'color'/],
    ["mysql://u:s3cret@db", /one database/],
    ["mysql://u:s3cret@a,b/x", /exactly one host/],
    ["mysql://:s3cret@db/x", /no user/],
    ["mysql://u:s3cret@db:0/x", /bad port '0'/],
    ["mysql://u:s3cret@db/x?ssl-ca=/nonexistent/ca.pem", /'ssl-ca' file/],
    ["mysql://u:s3cret@db/x?cert=/etc/hostname", /both 'ssl-cert'/],
    ["mysql://u:s3cret@db/x?connect_timeout=-1", /'connect_timeout'/],
    ["postgres://u:s3cret@db/x", /not a mysql/],
  ],
  fixture,
  killHolder,
  stealRow: async (lock) => {
    await admin("UPDATE coolock_locks SET owner = 'intruder' WHERE name = ?", [
      lock,
    ]);
  },
  rows: (names) =>
    count("SELECT COUNT(*) AS n FROM coolock_locks WHERE name IN (?)", [
      names,
    ]),
  tables: () =>
    count(`SELECT COUNT(*) AS n FROM information_schema.TABLES
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'coolock_locks'`),
  sessions: () =>
    count(
      `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
        WHERE USER = ? AND ID <> CONNECTION_ID()`,
      [MARIADB_USER],
    ),
  tls: {
    server: mariadbTlsServer,
    // This user may log in over TLS only.
    uriAt: (port) =>
      uriAt(port).replace(`//${MARIADB_USER}:`, `//${MARIADB_TLS_USER}:`),
    accepted: (certs) => [
      `ssl-ca=${certs.ca}`,
      `ca=${certs.ca}&ssl-mode=VERIFY_CA`,
      "ssl-mode=REQUIRED",
    ],
    refused: (base, certs) => [
      `${base}?ssl-ca=${certs.otherCa}`,
      `${base}?ssl-mode=DISABLED`,
      `${fixture!.uri}?ssl-mode=REQUIRED`,
    ],
  },
});

Deno.test("mysql URIs keep their scheme and hide the password", () => {
  const good = mysql("mysql://app:s3cret@db.example:3307/locks");
  assert.equal(good.scheme, "mysql");
  assert.equal(good.displayUri, "mysql://app:***@db.example:3307/locks");
});

Deno.test("mysql lock keys fit 64 characters and keep names apart", async () => {
  const names = [
    "job",
    "Job",
    "JOB",
    "x".repeat(200),
    "x".repeat(199) + "y",
    "ünïcødé 🔒",
    "ünïcødé 🔓",
    "a b",
    "a_b",
  ];
  const keys = await Promise.all(names.map(lockKey));
  assert.equal(
    new Set(keys.map((key) => key.toLowerCase())).size,
    names.length,
  );
  for (const key of keys) {
    assert.ok(key.length <= 64, key);
    assert.match(key, /^[\x21-\x7e]+$/);
  }
  assert.ok(keys[0].startsWith("coolock:job:"));
});
