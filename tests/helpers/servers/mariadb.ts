/**
 * MariaDB 10.11 from Debian (Debian ships no MySQL server). One
 * mariadb-install-db per test run makes a template data dir; each server gets
 * a copy and creates the test user and database from an init file, so a start
 * costs well under a second.
 *
 * @module
 */

import { run, type ServerRecipe } from "./server.ts";
import { dataTemplate } from "./template.ts";

/** The test user: all privileges on {@linkcode MARIADB_DATABASE} only. */
export const MARIADB_USER = "coolock";
/** The test user's password. */
export const MARIADB_PASSWORD = "coolock-test-pw";
/** A user who may log in only over TLS (same password). */
export const MARIADB_TLS_USER = "coolock_tls";
/** The test database. */
export const MARIADB_DATABASE = "coolock";
/** A second database of the test user's, for tables made by hand. */
export const MARIADB_OTHER_DATABASE = "coolock_other";
/** A user who may only read the test database (same password). */
export const MARIADB_POWERLESS_USER = "coolock_ro";

const SMALL = [
  "--innodb-log-file-size=4M",
  "--innodb-data-file-path=ibdata1:4M:autoextend",
];

const copyTemplate = dataTemplate("coolock-mariadb-template-", async (root) => {
  await run("/usr/bin/mariadb-install-db", [
    "--no-defaults",
    `--datadir=${root}/data`,
    "--auth-root-authentication-method=normal",
    "--skip-test-db",
    "--user=root",
    ...SMALL,
  ]);
  return `${root}/data`;
});

export const mariadbServer: ServerRecipe = {
  kind: "mariadb",
  requires: [
    "/usr/sbin/mariadbd",
    "/usr/bin/mariadb-install-db",
    "/usr/bin/mariadb",
  ],
  async prepare(dir) {
    await copyTemplate(dir);
    await Deno.writeTextFile(
      `${dir}/init.sql`,
      `CREATE USER IF NOT EXISTS '${MARIADB_USER}'@'%' IDENTIFIED BY '${MARIADB_PASSWORD}';\n` +
        `CREATE DATABASE IF NOT EXISTS ${MARIADB_DATABASE};\n` +
        `GRANT ALL PRIVILEGES ON ${MARIADB_DATABASE}.* TO '${MARIADB_USER}'@'%';\n` +
        `CREATE USER IF NOT EXISTS '${MARIADB_TLS_USER}'@'%' IDENTIFIED BY '${MARIADB_PASSWORD}' REQUIRE SSL;\n` +
        `GRANT ALL PRIVILEGES ON ${MARIADB_DATABASE}.* TO '${MARIADB_TLS_USER}'@'%';\n` +
        `CREATE DATABASE IF NOT EXISTS ${MARIADB_OTHER_DATABASE};\n` +
        `GRANT ALL PRIVILEGES ON ${MARIADB_OTHER_DATABASE}.* TO '${MARIADB_USER}'@'%';\n` +
        `CREATE USER IF NOT EXISTS '${MARIADB_POWERLESS_USER}'@'%' IDENTIFIED BY '${MARIADB_PASSWORD}';\n` +
        `GRANT SELECT ON ${MARIADB_DATABASE}.* TO '${MARIADB_POWERLESS_USER}'@'%';\n`,
    );
  },
  command: (dir, [port]) => ({
    cmd: "/usr/sbin/mariadbd",
    args: [
      "--no-defaults",
      `--datadir=${dir}/data`,
      `--port=${port}`,
      "--bind-address=127.0.0.1",
      `--socket=${dir}/sock`,
      `--pid-file=${dir}/mariadbd.pid`,
      "--user=root",
      `--init-file=${dir}/init.sql`,
      "--skip-name-resolve",
      "--skip-log-bin",
      "--innodb-buffer-pool-size=16M",
      "--max-connections=500",
      ...SMALL,
    ],
  }),
  ready: async (_dir, [port]) => {
    const probe = await new Deno.Command("/usr/bin/mariadb", {
      args: [
        "--no-defaults",
        "-h127.0.0.1",
        `-P${port}`,
        `-u${MARIADB_USER}`,
        `-p${MARIADB_PASSWORD}`,
        "--connect-timeout=1",
        "-e",
        "SELECT 1",
        MARIADB_DATABASE,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    return probe.success;
  },
};

/** The same server with TLS on, serving the given certificate and key. */
export function mariadbTlsServer(
  certs: { readonly cert: string; readonly key: string },
): ServerRecipe {
  return {
    ...mariadbServer,
    command(dir, ports) {
      const plain = mariadbServer.command(dir, ports);
      return {
        ...plain,
        args: [
          ...plain.args,
          `--ssl-cert=${certs.cert}`,
          `--ssl-key=${certs.key}`,
        ],
      };
    },
  };
}
