/**
 * A throwaway certificate authority and a server certificate it signed, for
 * the TLS tests of any server (PostgreSQL, MariaDB).
 *
 * @module
 */

import { run } from "./server.ts";

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

/** Makes a CA and a server certificate with openssl, in a temp dir. */
export async function testCertificates(): Promise<TestCertificates> {
  const dir = await Deno.makeTempDir({ prefix: "coolock-certs-" });
  await Deno.chmod(dir, 0o755);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
  for (const name of ["ca", "other-ca"]) {
    await run("openssl", [
      "req",
      "-x509",
      ...ec,
      "-nodes",
      "-days",
      "2",
      "-keyout",
      `${dir}/${name}.key`,
      "-out",
      `${dir}/${name}.pem`,
      "-subj",
      `/CN=coolock ${name}`,
    ]);
  }
  await run("openssl", [
    "req",
    ...ec,
    "-nodes",
    "-keyout",
    `${dir}/server.key`,
    "-out",
    `${dir}/server.csr`,
    "-subj",
    "/CN=localhost",
  ]);
  await Deno.writeTextFile(
    `${dir}/ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    `${dir}/server.csr`,
    "-CA",
    `${dir}/ca.pem`,
    "-CAkey",
    `${dir}/ca.key`,
    "-CAcreateserial",
    "-days",
    "2",
    "-out",
    `${dir}/server.pem`,
    "-extfile",
    `${dir}/ext`,
  ]);
  await Deno.chmod(`${dir}/server.key`, 0o644);
  return {
    dir,
    ca: `${dir}/ca.pem`,
    otherCa: `${dir}/other-ca.pem`,
    cert: `${dir}/server.pem`,
    key: `${dir}/server.key`,
  };
}
