/**
 * A TCP proxy on 127.0.0.1 that can partition: while partitioned, it keeps
 * every connection open but forwards nothing, as a network that drops
 * packets would. New connections hang too.
 */

export interface Proxy extends AsyncDisposable {
  readonly port: number;
  /** Stop forwarding in both directions. */
  partition(): void;
  /** Forward again. */
  heal(): void;
  close(): Promise<void>;
}

export function startProxy(targetPort: number): Proxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let partitioned = false;
  let healed: { promise: Promise<void>; resolve: () => void } = Promise
    .withResolvers<void>();
  healed.resolve();

  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const read = await from.read(buffer);
        if (read === null) break;
        while (partitioned) await healed.promise;
        for (let done = 0; done < read;) {
          done += await to.write(buffer.subarray(done, read));
        }
      }
    } catch { /* a side closed */ }
    try {
      await to.closeWrite();
    } catch { /* closed */ }
  };

  const accepting = (async () => {
    for await (const client of listener) {
      conns.add(client);
      void (async () => {
        while (partitioned) await healed.promise;
        let server: Deno.Conn;
        try {
          server = await Deno.connect({
            hostname: "127.0.0.1",
            port: targetPort,
          });
        } catch {
          client.close();
          conns.delete(client);
          return;
        }
        conns.add(server);
        await Promise.all([pump(client, server), pump(server, client)]);
        for (const conn of [client, server]) {
          try {
            conn.close();
          } catch { /* closed */ }
          conns.delete(conn);
        }
      })();
    }
  })().catch(() => {});

  const close = async () => {
    partitioned = false;
    healed.resolve();
    listener.close();
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    conns.clear();
    await accepting;
  };
  return {
    port: (listener.addr as Deno.NetAddr).port,
    partition() {
      if (partitioned) return;
      partitioned = true;
      healed = Promise.withResolvers<void>();
    },
    heal() {
      partitioned = false;
      healed.resolve();
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
