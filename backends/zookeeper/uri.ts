/**
 * ZooKeeper backend URIs:
 * `zookeeper://[user:password@]host[:port][,host...][/chroot][?session_timeout=S]`,
 * also `kazoo://`, checked into what the backend connects with.
 *
 * @module
 */

import { parseBackendUri, secondsParam } from "../../src/uri.ts";

/**
 * A checked ZooKeeper URI.
 *
 * @example
 * ```ts
 * import { parseZooKeeperUri, type ZooKeeperConfig } from "./uri.ts";
 * const config: ZooKeeperConfig = parseZooKeeperUri("zookeeper://zk/apps");
 * console.log(config.root); // /apps/coolock
 * ```
 */
export interface ZooKeeperConfig {
  /** `zookeeper` or `kazoo`. */
  readonly scheme: string;
  /** The URI with its password replaced by `***`. */
  readonly display: string;
  /** `host:port,host:port`, without the chroot. */
  readonly connect: string;
  /** Where the lock parents live: `<chroot>/coolock`. */
  readonly root: string;
  /** `user:password` for digest auth. */
  readonly digest?: string;
  /** The session timeout the URI asks for, if any. */
  readonly sessionTimeoutMs?: number;
}

function checkChroot(path: string, display: string): string {
  const chroot = path.replace(/\/$/, "");
  const bad = (why: string) =>
    new TypeError(
      `ZooKeeper URI '${display}' has a bad chroot '${path}': ${why}`,
    );
  if (chroot === "") return "";
  if (chroot.split("/").slice(1).some((part) => part === "")) {
    throw bad("it has an empty node name");
  }
  if (chroot.split("/").some((part) => part === "." || part === "..")) {
    throw bad("use no '.' or '..'");
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff]/.test(chroot)) {
    throw bad("it contains a character ZooKeeper forbids");
  }
  if (/^\/zookeeper(\/|$)/.test(chroot)) throw bad("'/zookeeper' is reserved");
  return chroot;
}

/**
 * Parses and checks a ZooKeeper URI. Throws `TypeError` naming the problem,
 * with the password redacted.
 *
 * @example
 * ```ts
 * import { parseZooKeeperUri } from "./uri.ts";
 * const config = parseZooKeeperUri("zookeeper://zk1,zk2:2182?session_timeout=6");
 * console.log(config.connect, config.sessionTimeoutMs); // zk1:2181,zk2:2182 6000
 * ```
 */
export function parseZooKeeperUri(text: string): ZooKeeperConfig {
  const uri = parseBackendUri(text, 2181);
  const { display } = uri;
  if (uri.scheme !== "zookeeper" && uri.scheme !== "kazoo") {
    throw new TypeError(
      `ZooKeeper URI '${display}' must start with zookeeper:// or kazoo://`,
    );
  }
  if (uri.hosts.length === 0) {
    throw new TypeError(`ZooKeeper URI '${display}' names no host`);
  }
  const ipv6 = uri.hosts.find((host) => host.host.includes(":"));
  if (ipv6) {
    throw new TypeError(
      `ZooKeeper URI '${display}' names the IPv6 address '${ipv6.host}', which the client can't reach: use a host name`,
    );
  }
  if ((uri.username === "") !== (uri.password === undefined)) {
    throw new TypeError(
      `ZooKeeper URI '${display}' needs both a user name and a password for digest auth`,
    );
  }
  for (const name of uri.params.keys()) {
    if (name !== "session_timeout") {
      throw new TypeError(
        `ZooKeeper URI '${display}' has an unknown option '${name}': use session_timeout`,
      );
    }
  }
  const sessionMs = secondsParam(uri, "session_timeout", 0);
  if (uri.params.has("session_timeout") && sessionMs < 1_000) {
    throw new TypeError(
      `ZooKeeper URI '${display}' has a 'session_timeout' of '${
        uri.params.get("session_timeout")
      }': use at least 1 second`,
    );
  }
  return {
    scheme: uri.scheme,
    display,
    connect: uri.hosts.map(({ host, port }) => `${host}:${port}`).join(","),
    root: `${checkChroot(uri.path, display)}/coolock`,
    digest: uri.password === undefined
      ? undefined
      : `${uri.username}:${uri.password}`,
    sessionTimeoutMs: sessionMs || undefined,
  };
}
