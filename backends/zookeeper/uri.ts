/**
 * ZooKeeper backend URIs:
 * `zookeeper://[user:password@]host[:port][,host...][/chroot][?session_timeout=S]`,
 * also `kazoo://`, checked into the target the backend connects to. Every
 * message names the URI by its redacted form (`display`), never the raw
 * text.
 *
 * @module
 */

import { type HostPort, parseBackendUri, secondsParam } from "../../src/uri.ts";

/** The longest session timeout the protocol can carry (a 32-bit int of ms). */
const MAX_SESSION_MS = 2 ** 31 - 1;

/** A checked ZooKeeper URI. */
export interface ZooKeeperTarget {
  /** `zookeeper` or `kazoo`. */
  readonly scheme: string;
  /** The URI with its password replaced by `***`. */
  readonly display: string;
  /** The servers, in the order given. */
  readonly hosts: readonly HostPort[];
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
 */
export function parseZooKeeperUri(text: string): ZooKeeperTarget {
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
  if (uri.username.includes(":")) {
    throw new TypeError(
      `ZooKeeper URI '${display}' has a ':' in its user name, which digest auth can't tell from the password's start`,
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
    hosts: uri.hosts,
    connect: uri.hosts.map(({ host, port }) => `${host}:${port}`).join(","),
    root: `${checkChroot(uri.path, display)}/coolock`,
    digest: uri.password === undefined
      ? undefined
      : `${uri.username}:${uri.password}`,
    // The server bounds the timeout anyway (to 2–20 × its tickTime by
    // default): a longer ask only has to fit the protocol.
    sessionTimeoutMs: sessionMs
      ? Math.min(sessionMs, MAX_SESSION_MS)
      : undefined,
  };
}
