/**
 * The TCP proxies between each fleet node and each server it talks to, so
 * that the nemesis can cut one node off: while partitioned, a proxy keeps
 * its connections open and forwards nothing (new ones hang too), as a
 * network that drops packets would; on heal, what was held is delivered,
 * late, as TCP would after a short partition. (tests/helpers/proxy.ts is the
 * tests' one; this one adds the rewrite below.)
 *
 * **Sentinel replies.** A Redis client asks a Sentinel where the primary is
 * and then connects there itself: to the real port, past the node's proxy.
 * So a node's proxies in front of Sentinels rewrite every server and
 * Sentinel port in what the Sentinel sends (`get-master-addr-by-name`,
 * `SENTINEL sentinels`, `+switch-master`) into the node's own proxy port for
 * it. Ports are ephemeral, five digits each, so a RESP bulk string keeps its
 * length; a proxy port of another length is refused at setup. A port split
 * across two reads would pass unchanged; Sentinel writes each reply at once.
 *
 * @module
 */

/** One proxy. */
export interface Proxy {
  readonly port: number;
  readonly target: number;
  partition(): void;
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
    async close() {
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
    },
  };
}

/**
 * A rewrite that replaces each whole port number of `ports` (real → the
 * node's proxy) in the bytes, keeping every length. The map may be filled
 * after the proxies that use it exist.
 */
export function portRewrite(ports: ReadonlyMap<number, number>): Rewrite {
  return (bytes) => {
    // Latin-1 maps bytes to chars one to one, so binary payloads survive.
    let text = "";
    for (let i = 0; i < bytes.length; i += 8192) {
      text += String.fromCharCode(...bytes.subarray(i, i + 8192));
    }
    let changed = false;
    const out = text.replace(/(?<!\d)\d{4,5}(?!\d)/g, (digits) => {
      const to = ports.get(Number(digits));
      if (to === undefined) return digits;
      const replacement = String(to);
      if (replacement.length !== digits.length) return digits;
      changed = true;
      return replacement;
    });
    if (!changed) return bytes;
    return Uint8Array.from(out, (char) => char.charCodeAt(0));
  };
}

/**
 * The proxies of one node to a set of servers: partitioned and healed
 * together, as that node's network.
 */
export class NodeNetwork {
  readonly #proxies = new Map<number, Proxy>();

  /** A proxy to `target` for this node (one per target). */
  add(target: number, rewrite?: Rewrite): Proxy {
    let proxy = this.#proxies.get(target);
    if (!proxy) {
      proxy = startProxy(target, rewrite);
      this.#proxies.set(target, proxy);
    }
    return proxy;
  }

  /** The node's port for `target`. */
  port(target: number): number {
    return this.proxy(target).port;
  }

  /** The node's proxy to `target`. */
  proxy(target: number): Proxy {
    const proxy = this.#proxies.get(target);
    if (!proxy) throw new RangeError(`No proxy to port ${target}`);
    return proxy;
  }

  /** The server ports this node has proxies to. */
  targets(): number[] {
    return [...this.#proxies.keys()];
  }

  partition(): void {
    for (const proxy of this.#proxies.values()) proxy.partition();
  }

  heal(): void {
    for (const proxy of this.#proxies.values()) proxy.heal();
  }

  async close(): Promise<void> {
    await Promise.all([...this.#proxies.values()].map((p) => p.close()));
    this.#proxies.clear();
  }
}
