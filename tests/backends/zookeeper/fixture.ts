/**
 * The zookeeper backend's test setup: one shared ZooKeeper 3.8 for the test
 * process, an out-of-band client authenticated as the server's super user
 * (`admin`), the contract fixture, and the small helpers the
 * zookeeper-specific tests share.
 *
 * `dropSession` ends a holder's session from outside, as a server that
 * expires it, an operator or a long partition would: ZooKeeper lets any
 * client take over a session with its id and password and then close it.
 * The id is the holder entry's `ephemeralOwner`; the password is no secret
 * from whoever knows the id: the server derives it as
 * `new java.util.Random(id ^ 0xB3415C00L).nextBytes(16)`
 * (`ZooKeeperServer.generatePasswd`), which `sessionPassword` redoes.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  loadZooKeeper,
  type ZkClient,
} from "../../../backends/zookeeper/client.ts";
import {
  decodeRecord,
  entriesOf,
  parentOf,
  recordPath,
  storedLimit,
} from "../../../backends/zookeeper/keys.ts";
import { zookeeper } from "../../../backends/zookeeper/mod.ts";
import type { LockRequest } from "../../../src/backend.ts";
import type { ContractFixture } from "../../contract/fixture.ts";
import {
  freePort,
  sharedServer,
  type TestServer,
} from "../../helpers/servers/server.ts";
import {
  ZOOKEEPER_SUPER,
  zookeeperServer,
} from "../../helpers/servers/zookeeper.ts";

export { sleep } from "../../contract/common.ts";

const startedAt = performance.now();
/** The shared ZooKeeper of the test process, if ZooKeeper runs here. */
export const server: TestServer | undefined = await sharedServer(
  zookeeperServer,
);
if (server) {
  console.log(
    `zookeeper: server ready after ${
      (performance.now() - startedAt).toFixed(0)
    } ms`,
  );
}

/** Skips a test when ZooKeeper can't run here. */
export const withServer = {
  ignore: !server,
  sanitizeOps: false,
  sanitizeResources: false,
};

/** A URI of the shared server (or another port on 127.0.0.1). */
export const uriAt = (port = server?.port ?? 1, query = ""): string =>
  `zookeeper://127.0.0.1:${port}${query}`;

/** The lock's parent node under the default root. */
export const parentPath = (lock: string): string => parentOf("/coolock", lock);

/** Node calls of the out-of-band client. */
export interface Admin {
  readonly client: ZkClient;
  children(path: string): Promise<string[]>;
  exists(path: string): Promise<boolean>;
  getData(path: string): Promise<{ data: Buffer; stat: ZkStatLike }>;
  setData(path: string, data: Uint8Array): Promise<void>;
  /** Creates a node open to everyone; resolves its path. */
  create(path: string, data: Uint8Array, mode: number): Promise<string>;
  remove(path: string): Promise<void>;
}

/** The stat fields the tests read. */
export interface ZkStatLike {
  readonly ephemeralOwner: Buffer;
  readonly czxid: Buffer;
  readonly mtime: Buffer;
  readonly version: number;
}

function connected(client: ZkClient): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no session")), 10_000);
    client.once("connected", () => {
      clearTimeout(timer);
      resolve();
    });
    client.connect();
  });
}

function closed(client: ZkClient): Promise<void> {
  const gone = new Promise<void>((resolve) =>
    client.once("disconnected", resolve)
  );
  client.close();
  return Promise.race([
    gone,
    new Promise<void>((resolve) => setTimeout(resolve, 2_000)),
  ]);
}

/** Runs `work` on a raw client of its own, authenticated as super. */
export async function admin<T>(work: (admin: Admin) => Promise<T>): Promise<T> {
  const zk = await loadZooKeeper();
  const client = zk.createClient(`127.0.0.1:${server!.port}`, {
    sessionTimeout: 5_000,
  });
  client.addAuthInfo("digest", Buffer.from(ZOOKEEPER_SUPER));
  await connected(client);
  const call = <R>(start: (done: (e: unknown, r: R) => void) => void) =>
    new Promise<R>((resolve, reject) =>
      start((error, result) => error ? reject(error) : resolve(result))
    );
  try {
    return await work({
      client,
      children: (path) => call((done) => client.getChildren(path, done)),
      exists: async (path) =>
        (await call((done) => client.exists(path, done))) !== null,
      getData: (path) =>
        call((done) =>
          client.getData(path, (e, data, stat) => done(e, { data, stat }))
        ),
      setData: (path, data) =>
        call((done) =>
          client.setData(path, Buffer.from(data), -1, (e) => done(e, undefined))
        ),
      create: (path, data, mode) =>
        call((done) =>
          client.create(
            path,
            Buffer.from(data),
            [new zk.ACL(zk.Permission.ALL, new zk.Id("world", "anyone"))],
            mode,
            done,
          )
        ),
      remove: (path) =>
        call((done) => client.remove(path, -1, (e) => done(e, undefined))),
    });
  } finally {
    await closed(client);
  }
}

/** The entries (`lock-…`) of a lock on the shared server, oldest first. */
export function queueOf(lock: string): Promise<string[]> {
  return admin((a) => a.children(parentPath(lock)).catch(() => [])).then(
    entriesOf,
  );
}

/**
 * The entries that hold the lock, with the node holding each one's record:
 * those a slot record names, or a mutex's first entry.
 */
export async function holdersOf(
  lock: string,
): Promise<{ entry: string; record: string }[]> {
  return await admin(async (a) => {
    const parent = parentPath(lock);
    const children = await a.children(parent).catch(() => [] as string[]);
    const entries = entriesOf(children);
    if (entries.length === 0) return [];
    const limit = storedLimit((await a.getData(parent)).data);
    const holders = [];
    for (let slot = 0; slot < limit; slot++) {
      const path = recordPath(parent, limit, slot);
      const data = await a.getData(path).then((n) => n.data, () => undefined);
      const entry = data && decodeRecord(data)?.entry;
      if (entry && entries.includes(entry)) {
        holders.push({ entry, record: path });
      }
    }
    if (holders.length === 0 && limit === 1) {
      holders.push({ entry: entries[0], record: parent });
    }
    return holders;
  });
}

/** The password ZooKeeper gives session `id` (`ZooKeeperServer.generatePasswd`). */
export function sessionPassword(id: bigint): Uint8Array {
  // java.util.Random: a 48-bit linear congruential generator.
  const mask = (1n << 48n) - 1n;
  let seed = ((id ^ 0xB3415C00n) ^ 0x5DEECE66Dn) & mask;
  const nextInt = () => {
    seed = (seed * 0x5DEECE66Dn + 0xBn) & mask;
    return Number(BigInt.asIntN(32, seed >> 16n));
  };
  const bytes = new Uint8Array(16);
  for (let i = 0; i < bytes.length;) {
    let random = nextInt();
    for (let n = Math.min(bytes.length - i, 4); n-- > 0; random >>= 8) {
      bytes[i++] = random & 0xff;
    }
  }
  return bytes;
}

/**
 * Takes session `id` over and asks to close it, in one write; resolves
 * whether the server handed it over (its ConnectResponse grants a timeout).
 */
async function takeOverAndClose(id: bigint): Promise<boolean> {
  // ConnectRequest: protocol version, last zxid seen, timeout, session id,
  // password (length-prefixed), read-only flag; then a CloseSession
  // request header (xid, type −11). Each framed by its length.
  const connect = new DataView(new ArrayBuffer(4 + 45));
  connect.setInt32(0, 45);
  connect.setInt32(16, 5_000);
  connect.setBigUint64(20, id);
  connect.setInt32(28, 16);
  new Uint8Array(connect.buffer).set(sessionPassword(id), 32);
  const close = new DataView(new ArrayBuffer(12));
  close.setInt32(0, 8);
  close.setInt32(4, 1);
  close.setInt32(8, -11);
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server!.port,
  });
  let reply = new Uint8Array();
  try {
    const request = new Uint8Array(connect.byteLength + close.byteLength);
    request.set(new Uint8Array(connect.buffer));
    request.set(new Uint8Array(close.buffer), connect.byteLength);
    await conn.write(request);
    const buffer = new Uint8Array(256);
    const deadline = AbortSignal.timeout(5_000);
    while (!deadline.aborted) {
      const read = await conn.read(buffer);
      if (read === null) break;
      reply = new Uint8Array([...reply, ...buffer.subarray(0, read)]);
    }
  } catch {
    /* the server cut the connection: see what came */
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
  // ConnectResponse: length, protocol version, timeout (0: refused), …
  return reply.length >= 12 && new DataView(reply.buffer).getInt32(8) > 0;
}

/**
 * Closes the session that owns the node at `path` from outside: takes the
 * session over with its id and password and asks to close it, in one
 * write. The server then deletes every ephemeral node of the session at
 * once. The holder's client, cut off by the takeover, reconnects at once
 * and may win the session back before the close is read (a flapping
 * network does the same): then it tries again.
 */
export async function closeSessionOf(path: string): Promise<void> {
  const owner = await admin((a) => a.getData(path)).then(
    ({ stat }) => Buffer.from(stat.ephemeralOwner),
  );
  const id = BigInt.asUintN(64, owner.readBigInt64BE(0));
  for (let attempt = 1;; attempt++) {
    const handed = await takeOverAndClose(id);
    const deadline = performance.now() + 1_000;
    while (await admin((a) => a.exists(path))) {
      if (performance.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (!(await admin((a) => a.exists(path)))) return;
    if (attempt === 5) {
      throw new Error(
        `${path} outlived ${attempt} closes of its session ${
          id.toString(16)
        } (last handed over: ${handed})`,
      );
    }
  }
}

let unique = 0;
/** A fresh lock name for one test. */
export function lockName(tag: string): string {
  return `zk-${tag}-${Date.now().toString(36)}-${unique++}`;
}

/** One direct backend request, with overrides. */
export function request(
  name: string,
  overrides: Partial<LockRequest> = {},
): LockRequest {
  return {
    name,
    owner: `test:${Deno.pid}:${crypto.randomUUID().slice(0, 8)}`,
    node: "test",
    limit: 1,
    expiresInMs: 3_000,
    guardMs: 0,
    wait: false,
    signal: AbortSignal.timeout(20_000),
    ...overrides,
  };
}

/** The contract fixture on the shared server, or undefined without one. */
export function zookeeperFixture(): ContractFixture | undefined {
  if (!server) return undefined;
  const ttl = 3;
  return {
    name: "zookeeper",
    uri: uriAt(),
    uriAt: (port) => uriAt(port),
    uriWithSecret: (secret) =>
      `zookeeper://coolock:${
        encodeURIComponent(secret)
      }@127.0.0.1:${server.port}?session_timeout=3`,
    unreachableUri: uriAt(freePort()),
    open: (uri = uriAt()) => zookeeper(uri),
    entry: { module: "backends/zookeeper/mod.ts", factory: "zookeeper" },
    ttl,
    // A dead holder's entry goes when its session expires (the TTL, checked
    // every tickTime, 0.5 s here); its record runs out a TTL after its last
    // renewal.
    freeWithinMs: ttl * 1000 + 1_000,
    server,
    // Sessions and nodes live in the data dir: a standalone server restarted
    // on it keeps the sessions that reconnect within their timeout.
    faults: {
      pause: true,
      partition: true,
      restart: "keeps",
      async dropSession(lock) {
        const [holder] = await holdersOf(lock);
        if (!holder) throw new Error(`nobody holds '${lock}'`);
        await closeSessionOf(`${parentPath(lock)}/${holder.entry}`);
      },
    },
    // Out of band, as an operator's tool would: the holder's entry and its
    // record, so that another owner can take the lock at once.
    remove: (lock) =>
      admin(async (a) => {
        for (const { entry, record } of await holdersOf(lock)) {
          await a.setData(record, new Uint8Array()).catch(() => {});
          await a.remove(`${parentPath(lock)}/${entry}`).catch(() => {});
        }
      }),
  };
}
