/**
 * etcd 3.4, one member, no fsync, fast elections; the v3 JSON gateway on the
 * client port. Variants: auth enabled (user `root`), and TLS with client
 * certificates. `etcdAdmin` calls the gateway out of band, as an operator.
 */

import { prefixEnd } from "../../../backends/etcd/keys.ts";
import { makeCertificates } from "../certs.ts";
import type { ServerRecipe } from "./server.ts";

/** The password of the `root` user on the auth variant. */
export const ETCD_ROOT_PASSWORD = "r00t-pa55";

const b64 = (text: string) =>
  btoa(String.fromCharCode(...new TextEncoder().encode(text)));
const unb64 = (text: string) =>
  new TextDecoder().decode(
    Uint8Array.from(atob(text), (char) => char.charCodeAt(0)),
  );

/** One gateway call against a plain-HTTP etcd, without auth. */
export async function etcdAdmin(
  port: number,
  path: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: "POST",
    body: JSON.stringify(body),
    headers,
    signal: AbortSignal.timeout(5_000),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${path}: ${JSON.stringify(answer)}`);
  return answer;
}

/** One key as the gateway shows it. */
export interface EtcdKey {
  readonly key: string;
  readonly value: string;
  /** Its lease id, decimal; `"0"` for none. */
  readonly lease: string;
  readonly createRevision: bigint;
}

/** The keys (and their values) under a prefix, in create-revision order. */
export async function etcdKeys(
  port: number,
  prefix: string,
): Promise<EtcdKey[]> {
  const end = prefixEnd(prefix);
  const answer = await etcdAdmin(port, "/v3/kv/range", {
    key: b64(prefix),
    range_end: b64(end),
    sort_target: "CREATE",
  });
  const kvs = (answer.kvs ?? []) as Record<string, string>[];
  return kvs.map((kv) => ({
    key: unb64(kv.key),
    value: unb64(kv.value ?? ""),
    lease: kv.lease ?? "0",
    createRevision: BigInt(kv.create_revision ?? 0),
  }));
}

/** Puts a key out of band, with a lease if given. */
export async function etcdPut(
  port: number,
  key: string,
  value: string,
  lease?: string,
): Promise<void> {
  await etcdAdmin(port, "/v3/kv/put", {
    key: b64(key),
    value: b64(value),
    lease,
  });
}

/** Grants a lease out of band; resolves its id. */
export async function etcdGrant(port: number, ttl: number): Promise<string> {
  return String((await etcdAdmin(port, "/v3/lease/grant", { TTL: ttl })).ID);
}

/** Deletes every key under the prefix. */
export async function etcdDeletePrefix(
  port: number,
  prefix: string,
): Promise<void> {
  const end = prefixEnd(prefix);
  await etcdAdmin(port, "/v3/kv/deleterange", {
    key: b64(prefix),
    range_end: b64(end),
  });
}

/** A lease's remaining TTL in seconds (-1 when gone). */
export async function etcdLeaseTtl(port: number, id: string): Promise<number> {
  const answer = await etcdAdmin(port, "/v3/lease/timetolive", { ID: id });
  return Number(answer.TTL ?? -1);
}

function recipe(
  kind: string,
  scheme: "http" | "https",
  extraArgs: (dir: string) => string[],
  prepare?: (dir: string) => Promise<void>,
): ServerRecipe {
  return {
    kind,
    requires: [
      "/usr/bin/etcd",
      ...(scheme === "https" ? ["/usr/bin/openssl"] : []),
    ],
    ports: 2,
    prepare,
    command: (dir, [client, peer]) => ({
      cmd: "/usr/bin/etcd",
      args: [
        "--name",
        "coolock",
        "--data-dir",
        `${dir}/data`,
        "--listen-client-urls",
        `${scheme}://127.0.0.1:${client}`,
        "--advertise-client-urls",
        `${scheme}://127.0.0.1:${client}`,
        "--listen-peer-urls",
        `http://127.0.0.1:${peer}`,
        "--initial-advertise-peer-urls",
        `http://127.0.0.1:${peer}`,
        "--initial-cluster",
        `coolock=http://127.0.0.1:${peer}`,
        "--unsafe-no-fsync",
        "--heartbeat-interval=10",
        "--election-timeout=100",
        ...extraArgs(dir),
      ],
    }),
    ready: (dir, [client]) =>
      scheme === "http" ? httpReady(client) : tlsReady(dir, client),
  };
}

async function httpReady(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/health`, {
      signal: AbortSignal.timeout(1_000),
    });
    return response.ok && (await response.text()).includes("true");
  } catch {
    return false;
  }
}

async function tlsReady(dir: string, port: number): Promise<boolean> {
  const client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(`${dir}/ca.pem`)],
    cert: await Deno.readTextFile(`${dir}/client.pem`),
    key: await Deno.readTextFile(`${dir}/client-key.pem`),
  });
  try {
    const response = await fetch(`https://127.0.0.1:${port}/health`, {
      client,
      signal: AbortSignal.timeout(1_000),
    });
    return response.ok && (await response.text()).includes("true");
  } catch {
    return false;
  } finally {
    client.close();
  }
}

/** A CA, a server certificate for 127.0.0.1 and localhost, and a client one. */
function certificates(dir: string): Promise<void> {
  return makeCertificates(dir, {
    ca: ["ca.pem", "ca-key.pem"],
    server: ["server.pem", "server-key.pem"],
    client: ["client.pem", "client-key.pem"],
  }, "IP:127.0.0.1,DNS:localhost");
}

/** The shared plain-HTTP etcd server of the test run. */
export const etcdServer: ServerRecipe = recipe("etcd", "http", () => []);

/** A server of its own whose auth tokens expire after 1 s idle. */
export const etcdAuthServer: ServerRecipe = recipe(
  "etcd",
  "http",
  () => ["--auth-token", "simple", "--auth-token-ttl", "1"],
);

/** TLS on the client port, with client certificates required. */
export const etcdTlsServer: ServerRecipe = recipe(
  "etcd",
  "https",
  (dir) => [
    "--cert-file",
    `${dir}/server.pem`,
    "--key-file",
    `${dir}/server-key.pem`,
    "--trusted-ca-file",
    `${dir}/ca.pem`,
    "--client-cert-auth",
  ],
  certificates,
);

/** Adds user `root` with a password and turns auth on, via the gateway. */
export async function enableAuth(port: number): Promise<void> {
  await etcdAdmin(port, "/v3/auth/user/add", {
    name: "root",
    password: ETCD_ROOT_PASSWORD,
  });
  await etcdAdmin(port, "/v3/auth/role/add", { name: "root" }).catch(() => {});
  await etcdAdmin(port, "/v3/auth/user/grant", { user: "root", role: "root" });
  await etcdAdmin(port, "/v3/auth/enable", {});
}
