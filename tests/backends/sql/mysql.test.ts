/**
 * The MySQL backend against a real MariaDB 10.11 (Debian ships no MySQL
 * server), beyond the contract suite (tests/contract/mysql.test.ts): the
 * shared SQL tests, with what is particular to `GET_LOCK` and its names.
 */

import { mysql } from "../../../backends/sql/mysql/mod.ts";
import { loadMysql } from "../../../backends/sql/mysql/client.ts";
import { assert, assertEquals, assertMatch } from "../../helpers/assert.ts";
import {
  MARIADB_DATABASE,
  MARIADB_OTHER_DATABASE,
  MARIADB_PASSWORD,
  MARIADB_POWERLESS_USER,
  MARIADB_TLS_USER,
  MARIADB_USER,
  mariadbTlsServer,
} from "../../helpers/servers/mariadb.ts";
import type { PreviousRelease } from "./adapter.ts";
import { mysqlFixture, mysqlKey } from "./fixture.ts";
import { sqlSuite } from "./suite.ts";

const fixture = await mysqlFixture();
const port = fixture?.server.port ?? 0;
const { default: mysql2 } = await loadMysql();

const uriAt = (
  at: number,
  { user = MARIADB_USER, database = MARIADB_DATABASE } = {},
) =>
  `mysql://${user}:${
    encodeURIComponent(MARIADB_PASSWORD)
  }@127.0.0.1:${at}/${database}`;

const connect = (database = MARIADB_DATABASE) =>
  mysql2.createConnection({
    host: "127.0.0.1",
    port,
    user: MARIADB_USER,
    password: MARIADB_PASSWORD,
    database,
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
  });

/** Runs one statement on a connection of its own, out of band. */
async function admin(
  sql: string,
  params: unknown[] = [],
  database = MARIADB_DATABASE,
): Promise<Record<string, unknown>[]> {
  const conn = await connect(database);
  conn.on("error", () => {});
  try {
    const [rows] = await conn.query(sql, params);
    return rows as Record<string, unknown>[];
  } finally {
    await conn.end();
  }
}

const count = async (sql: string, params: unknown[] = []) =>
  Number((await admin(sql, params))[0].n);

/** The previous release's statements (coolock 0.1.0), verbatim. */
async function previous(database: string): Promise<PreviousRelease> {
  const conn = await connect(database);
  conn.on("error", () => {});
  const run = async (sql: string, params: unknown[]) =>
    (await conn.execute(sql, params as string[]))[0] as unknown as
      & Record<string, unknown>[]
      & { affectedRows?: number; insertId?: number };
  return {
    async take(name, guardMs = 0) {
      const key = await mysqlKey(name);
      const [{ got }] = await run("SELECT GET_LOCK(?, 0) AS got", [key]);
      if (Number(got) !== 1) return undefined;
      const micros = Math.ceil(guardMs * 1000);
      const stamped = await run(
        `UPDATE coolock_locks SET fence = LAST_INSERT_ID(fence + 1),
          held_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, owner = ?
          WHERE name = ? AND held_until <= UTC_TIMESTAMP(6)
            AND IS_USED_LOCK(?) = CONNECTION_ID()`,
        [micros, "previous:1:x", name, key],
      );
      if (stamped.affectedRows === 1) return BigInt(stamped.insertId ?? 0);
      const first = await run(
        `INSERT IGNORE INTO coolock_locks (name, fence, held_until, owner)
          SELECT ?, 1, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, ? FROM DUAL
          WHERE IS_USED_LOCK(?) = CONNECTION_ID()`,
        [name, micros, "previous:1:x", key],
      );
      if (first.affectedRows === 1) return 1n;
      await run("SELECT RELEASE_LOCK(?)", [key]);
      return undefined;
    },
    close: () => conn.end(),
  };
}

sqlSuite({
  name: "mysql",
  open: mysql,
  noun: "connection",
  badUris: [
    ["mysql://u:s3cret@db/x?ssl-mode=sometimes", /'ssl-mode'.*'sometimes'/],
    ["mysql://u:s3cret@db/x?ssl-mode=PREFERRED", /'ssl-mode'.*'PREFERRED'/],
    ["mysql://u:s3cret@db/x?color=red", /unknown.*'color'/],
    ["mysql://u:s3cret@db", /one database/],
    ["mysql://u:s3cret@a,b/x", /exactly one host/],
    ["mysql://:s3cret@db/x", /no user/],
    ["mysql://u:s3cret@db:0/x", /port/],
    ["mysql://u:s3cr/et@db/x", /'\/'|encode|%2F/i],
    ["mysql://u:s3cret@db/x?ssl-ca=/nonexistent/ca.pem", /'ssl-ca' file/],
    ["mysql://u:s3cret@db/x?cert=/etc/hostname", /both 'ssl-cert'/],
    ["mysql://u:s3cret@db/x?connect_timeout=-1", /'connect_timeout'/],
    ["postgres://u:s3cret@db/x", /not a mysql/],
  ],
  fixture,
  leftMs: async (lock, slot = 0) => {
    const [row] = await admin(
      slot === 0
        ? `SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), held_until) AS us
            FROM coolock_locks WHERE name = ?`
        : `SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), held_until) AS us
            FROM coolock_slots WHERE name = ? AND slot = ?`,
      [lock, slot],
    );
    return row === undefined ? undefined : Number(row.us) / 1000;
  },
  row: async (lock) =>
    (await admin("SELECT * FROM coolock_locks WHERE name = ?", [lock]))[0],
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
  previous: (database = "main") =>
    previous(database === "main" ? MARIADB_DATABASE : MARIADB_OTHER_DATABASE),
  other: {
    uri: uriAt(port, { database: MARIADB_OTHER_DATABASE }),
    async makeOldTable(lock, fence) {
      const other = (sql: string, params: unknown[] = []) =>
        admin(sql, params, MARIADB_OTHER_DATABASE);
      await other("DROP TABLE IF EXISTS coolock_slots, coolock_locks");
      // The previous release's table, as it created it.
      await other(`CREATE TABLE IF NOT EXISTS coolock_locks (
        name VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY,
        fence BIGINT UNSIGNED NOT NULL, held_until DATETIME(6) NOT NULL,
        owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL)`);
      await other(
        "INSERT INTO coolock_locks VALUES (?, ?, UTC_TIMESTAMP(6), 'previous:1:x')",
        [lock, fence],
      );
    },
    columns: async () =>
      (await admin(
        `SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'coolock_locks'`,
        [],
        MARIADB_OTHER_DATABASE,
      )).map((row) => String(row.c)),
  },
  powerlessUri: uriAt(port, { user: MARIADB_POWERLESS_USER }),
  tls: {
    server: mariadbTlsServer,
    // This user may log in over TLS only.
    uriAt: (at) => uriAt(at, { user: MARIADB_TLS_USER }),
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
  assertEquals(good.scheme, "mysql");
  assertEquals(good.displayUri, "mysql://app:***@db.example:3307/locks");
});

Deno.test("mysql lock keys fit 64 characters and keep names and slots apart", async () => {
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
  const keys = [
    ...await Promise.all(names.map((name) => mysqlKey(name))),
    ...await Promise.all(names.map((name) => mysqlKey(name, 1))),
  ];
  assertEquals(
    new Set(keys.map((key) => key.toLowerCase())).size,
    names.length * 2,
  );
  for (const key of keys) {
    assert(key.length <= 64, key);
    assertMatch(key, /^[\x21-\x7e]+$/);
  }
  assert(keys[0].startsWith("coolock:job:"));
});
