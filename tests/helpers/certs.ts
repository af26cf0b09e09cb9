/**
 * A throwaway CA with a server and a client certificate it signed, made with
 * openssl in a server's data dir, for TLS servers that require client
 * certificates (redis, etcd).
 *
 * @module
 */

import { run } from "../servers/server.ts";

/** Where each certificate and key goes, by role. */
export interface CertificateFiles {
  readonly ca: readonly [cert: string, key: string];
  readonly server: readonly [cert: string, key: string];
  readonly client: readonly [cert: string, key: string];
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
  const rsa = ["-newkey", "rsa:2048", "-nodes"];
  const [caCert, caKey] = files.ca;
  await ssl(
    "req",
    "-x509",
    ...rsa,
    "-days",
    "2",
    "-subj",
    "/CN=coolock-test-ca",
    "-keyout",
    caKey,
    "-out",
    caCert,
  );
  const roles = [
    ["server", `subjectAltName=${serverNames}`],
    ["client", "extendedKeyUsage=clientAuth"],
  ] as const;
  for (const [role, extension] of roles) {
    const [cert, key] = files[role];
    await ssl(
      "req",
      ...rsa,
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
