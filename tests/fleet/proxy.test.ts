/** The fleet's proxies (scripts/fleet/proxy.ts): partition, heal, and the Sentinel port rewrite. */

import { assert, assertEquals } from "../helpers/assert.ts";
import {
  NodeNetwork,
  portRewrite,
  startProxy,
} from "../../scripts/fleet/proxy.ts";

/** An echo server that prefixes what it sends back. */
function echo(prefix: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      void (async () => {
        const buffer = new Uint8Array(1024);
        try {
          while (true) {
            const read = await conn.read(buffer);
            if (read === null) break;
            await conn.write(
              new TextEncoder().encode(
                prefix + new TextDecoder().decode(buffer.subarray(0, read)),
              ),
            );
          }
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await serving;
    },
  };
}

/** Reads what arrives within `ms`, or null; a read that times out stays pending for the next call. */
const pending = new WeakMap<Deno.Conn, Promise<string>>();
async function readWithin(conn: Deno.Conn, ms: number): Promise<string | null> {
  let read = pending.get(conn);
  if (!read) {
    const buffer = new Uint8Array(1024);
    read = conn.read(buffer).then((n) =>
      new TextDecoder().decode(buffer.subarray(0, n ?? 0))
    );
    pending.set(conn, read);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([
    read,
    new Promise<null>((resolve) => timer = setTimeout(resolve, ms, null)),
  ]);
  clearTimeout(timer);
  if (result !== null) pending.delete(conn);
  return result;
}

Deno.test("a partitioned proxy holds every byte until healed, then delivers it", async () => {
  const server = echo(">");
  const network = new NodeNetwork();
  const proxy = network.add(server.port);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  try {
    await conn.write(new TextEncoder().encode("a"));
    assertEquals(await readWithin(conn, 2_000), ">a");
    network.partition();
    await conn.write(new TextEncoder().encode("b"));
    assertEquals(await readWithin(conn, 300), null);
    network.heal();
    assertEquals(await readWithin(conn, 2_000), ">b");
  } finally {
    conn.close();
    await network.close();
    await server.close();
  }
});

Deno.test("the rewrite swaps whole known ports of the same length, and nothing else", () => {
  const map = new Map([[41234, 52345], [26379, 31000], [5432, 65000]]);
  const rewrite = portRewrite(map);
  const text = (s: string) =>
    new TextDecoder().decode(rewrite(new TextEncoder().encode(s)));
  // get-master-addr-by-name's reply keeps its RESP lengths.
  assertEquals(
    text("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n41234\r\n"),
    "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n52345\r\n",
  );
  // +switch-master names old and new addresses inside one bulk string.
  assertEquals(
    text("mymaster 127.0.0.1 26379 127.0.0.1 41234"),
    "mymaster 127.0.0.1 31000 127.0.0.1 52345",
  );
  // Part of a longer number, an unknown port, or a length change: untouched.
  assertEquals(text("1412345 412340 41235 5432"), "1412345 412340 41235 5432");
  // Bytes that are not UTF-8 survive.
  const binary = new Uint8Array([
    0xff,
    0x00,
    0x34,
    0x31,
    0x32,
    0x33,
    0x34,
    0xfe,
  ]);
  const out = rewrite(binary);
  assertEquals([...out], [0xff, 0x00, 0x35, 0x32, 0x33, 0x34, 0x35, 0xfe]);
});

Deno.test("a proxy with a rewrite changes what the server sends, not what the client sends", async () => {
  const server = echo("port ");
  const map = new Map<number, number>();
  const proxy = startProxy(server.port, portRewrite(map));
  map.set(40001, 50002); // filled after the proxy exists, as for Sentinels
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  try {
    await conn.write(new TextEncoder().encode("40001"));
    const answer = await readWithin(conn, 2_000);
    assert(answer !== null);
    assertEquals(answer, "port 50002");
  } finally {
    conn.close();
    await proxy.close();
    await server.close();
  }
});
