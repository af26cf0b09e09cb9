/**
 * Throwaway CAs and the certificates they sign, made with openssl, for the
 * TLS tests of every server (redis, etcd, PostgreSQL, MariaDB).
 *
 * @module
 */

import { run } from "./servers/server.ts";

/** Where each certificate and key goes, by role. */
export interface CertificateFiles {
  readonly ca: readonly [cert: string, key: string];
  readonly server: readonly [cert: string, key: string];
  readonly client: readonly [cert: string, key: string];
}

const RSA = ["-newkey", "rsa:2048", "-nodes"];

/** Makes a self-signed CA certificate and its key in `dir`. */
export async function makeCa(
  dir: string,
  [cert, key]: readonly [cert: string, key: string],
): Promise<void> {
  await run("/usr/bin/openssl", [
    "req",
    "-x509",
    ...RSA,
    "-days",
    "2",
    "-subj",
    `/CN=coolock-test-${cert.replace(/\W/g, "-")}`,
    "-keyout",
    key,
    "-out",
    cert,
  ], { cwd: dir });
}

/**
 * Makes the CA, a server certificate for `serverNames` and a client
 * certificate in `dir`, readable by the server whichever user it runs as.
 */
export async function makeCertificates(
  dir: string,
  files: CertificateFiles,
  serverNames: string,
): Promise<void> {
  const ssl = (...args: string[]) =>
    run("/usr/bin/openssl", args, { cwd: dir });
  const [caCert, caKey] = files.ca;
  await makeCa(dir, files.ca);
  const roles = [
    ["server", `subjectAltName=${serverNames}`],
    ["client", "extendedKeyUsage=clientAuth"],
  ] as const;
  for (const [role, extension] of roles) {
    const [cert, key] = files[role];
    await ssl(
      "req",
      ...RSA,
      "-subj",
      `/CN=coolock-${role}`,
      "-keyout",
      key,
      "-out",
      `${role}.csr`,
    );
    await Deno.writeTextFile(`${dir}/${role}.ext`, `${extension}\n`);
    await ssl(
      "x509",
      "-req",
      "-in",
      `${role}.csr`,
      "-CA",
      caCert,
      "-CAkey",
      caKey,
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      `${role}.ext`,
      "-out",
      cert,
    );
  }
  for (
    const file of [caCert, files.client[0], files.client[1], files.server[1]]
  ) {
    await Deno.chmod(`${dir}/${file}`, 0o644);
  }
}

/** PEM files of a throwaway CA and a server certificate it signed. */
export interface TestCertificates {
  readonly dir: string;
  /** The CA certificate that signed `cert`. */
  readonly ca: string;
  /** A CA certificate that signed nothing here. */
  readonly otherCa: string;
  /** The server certificate, for 127.0.0.1 and localhost. */
  readonly cert: string;
  readonly key: string;
}

/** Makes a CA, a server certificate and an unrelated CA in a temp dir. */
export async function testCertificates(): Promise<TestCertificates> {
  const dir = await Deno.makeTempDir({ prefix: "coolock-certs-" });
  await Deno.chmod(dir, 0o755);
  await makeCertificates(dir, {
    ca: ["ca.pem", "ca.key"],
    server: ["server.pem", "server.key"],
    client: ["client.pem", "client.key"],
  }, "IP:127.0.0.1,DNS:localhost");
  await makeCa(dir, ["other-ca.pem", "other-ca.key"]);
  await Deno.chmod(`${dir}/server.key`, 0o644);
  return {
    dir,
    ca: `${dir}/ca.pem`,
    otherCa: `${dir}/other-ca.pem`,
    cert: `${dir}/server.pem`,
    key: `${dir}/server.key`,
  };
}
