/**
 * The TCP proxies between each fleet node and each server it talks to, so
 * that the nemesis can cut one node off: while partitioned, a proxy keeps
 * its connections open and forwards nothing (new ones hang too), as a
 * network that drops packets would; on heal, what was held is delivered,
 * late, as TCP would after a short partition (`tests/helpers/proxy.ts`).
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

import {
  type Proxy,
  type Rewrite,
  startProxy,
} from "../../tests/helpers/proxy.ts";

export {
  type Proxy,
  type Rewrite,
  startProxy,
} from "../../tests/helpers/proxy.ts";

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
