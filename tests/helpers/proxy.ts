/**
 * A TCP proxy on 127.0.0.1 that can partition: while partitioned, it keeps
 * every connection open but forwards nothing, as a network that drops
 * packets would, and new connections hang too; on heal, what was held is
 * delivered, late, as TCP would after a short partition. An optional
 * rewrite changes what the server sends before the client sees it (the
 * fleet's Redis Sentinel proxies rewrite ports with it).
 *
 * @module
 */

/** One proxy. */
export interface Proxy extends AsyncDisposable {
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number;
  /** The port it forwards to. */
  readonly target: number;
  /** Stop forwarding in both directions. */
  partition(): void;
  /** Forward again, delivering what was held. */
  heal(): void;
  close(): Promise<void>;
}

/** Rewrites what the server sends before the client sees it. */
export type Rewrite = (bytes: Uint8Array) => Uint8Array;

/** Starts a proxy on a free 127.0.0.1 port to `targetPort`. */
export function startProxy(targetPort: number, rewrite?: Rewrite): Proxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let partitioned = false;
  let healed = Promise.withResolvers<void>();
  healed.resolve();
  let closed = false;

  const pump = async (from: Deno.Conn, to: Deno.Conn, change?: Rewrite) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const read = await from.read(buffer);
        if (read === null) break;
        while (partitioned) await healed.promise;
        const bytes = change
          ? change(buffer.subarray(0, read))
          : buffer.subarray(0, read);
        for (let done = 0; done < bytes.length;) {
          done += await to.write(bytes.subarray(done));
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
          if (closed) throw new Error("closed");
          server = await Deno.connect({
            hostname: "127.0.0.1",
            port: targetPort,
          });
        } catch {
          try {
            client.close();
          } catch { /* closed */ }
          conns.delete(client);
          return;
        }
        conns.add(server);
        await Promise.all([
          pump(client, server),
          pump(server, client, rewrite),
        ]);
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
    closed = true;
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
    target: targetPort,
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
