/**
 * Backend URIs: `scheme://[user[:password]@]host[:port][,host[:port]...][/path][?query]`.
 * WHATWG `URL` rejects the host lists that etcd, ZooKeeper and memcached
 * URIs use, so the authority is split by hand here, by the one parser every
 * backend family calls.
 *
 * Passwords are what this file is careful about. The masker (`redactUri`)
 * and the parser find the user info the same way, to the **last** `@`, so a
 * password with an unencoded `#`, `?`, `/` or `@` is still user info: the
 * masker hides it whole and the parser refuses it by position, instead of
 * both reading a different URI than the user meant (`redis://:pa#ss@h` is
 * not host `:pa` with fragment `#ss@h`). The masker runs on the raw string
 * before anything else, and over-masks what it can't tell apart.
 *
 * @module
 */

/**
 * One host of a backend URI.
 */
export interface HostPort {
  /** A host name or an IP address; IPv6 without brackets. */
  readonly host: string;
  /** The port, or the scheme's default. */
  readonly port: number;
}

/**
 * A parsed backend URI. `password` is the only place a secret is kept.
 */
export interface BackendUri {
  /** The scheme without `:`, lower case, such as `redis` or `etcd+https`. */
  readonly scheme: string;
  /** The user name, percent-decoded, or `""`. */
  readonly username: string;
  /** The password, percent-decoded, or `undefined` when the URI has none. */
  readonly password: string | undefined;
  /** The hosts, in the order given. Empty for `file:` URIs. */
  readonly hosts: readonly HostPort[];
  /** The path, percent-decoded, such as `/0` or `/chroot`; `""` when absent. */
  readonly path: string;
  /** The query parameters. */
  readonly params: URLSearchParams;
  /** The URI with its secrets replaced by `***`, safe for logs. */
  readonly display: string;
}

const SECRET_PARAMS = new Set([
  "password",
  "passwd",
  "pass",
  "token",
  "secret",
  "auth",
  "acl_token",
  "sentinel_password",
]);

/**
 * Whether a query parameter of a backend URI holds a secret.
 */
export function isSecretParam(name: string): boolean {
  const lower = name.toLowerCase();
  return SECRET_PARAMS.has(lower) || lower.endsWith("password") ||
    lower.endsWith("token") || lower.endsWith("secret");
}

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):/;

/**
 * Where the parts of a URI are, found the same way by the masker and the
 * parser, so that they can never disagree about where a password is. The
 * user info runs to the **last** `@` (not to the first `/`, `?` or `#`): a
 * password with an unencoded `/`, `?`, `#` or `@` then still counts as user
 * info, which the masker hides and the parser refuses.
 */
interface Layout {
  /** Where the scheme and `//` end (0 without a scheme). */
  readonly start: number;
  /** Whether the scheme is followed by `//`. */
  readonly slashes: boolean;
  /** The index of the last `@` after `start`, or -1. */
  readonly at: number;
}

function layoutOf(uri: string): Layout {
  const scheme = SCHEME.exec(uri);
  let start = scheme ? scheme[0].length : 0;
  const slashes = scheme !== null && uri.startsWith("//", start);
  if (slashes) start += 2;
  const at = uri.lastIndexOf("@");
  return { start, slashes, at: at >= start ? at : -1 };
}

/**
 * A user name shown in a redacted URI: only characters a URI allows there.
 * Anything else may be a password that lost its ':', and is hidden.
 */
const PLAIN_USER = /^[A-Za-z0-9._~!$&'()*+,;=%-]*$/;

/** `[from, to)` ranges of `uri` that hold a secret, sorted and merged. */
function secretRanges(uri: string): Array<[number, number]> {
  const { start, slashes, at } = layoutOf(uri);
  const ranges: Array<[number, number]> = [];
  let rest = start;
  let queryFrom = -1;
  if (at >= 0) {
    // Without '//', what looks like a scheme may be a user name.
    const from = slashes ? start : 0;
    const colon = uri.indexOf(":", from);
    const user = uri.slice(from, colon >= 0 && colon < at ? colon : at);
    if (!PLAIN_USER.test(user)) ranges.push([from, at]);
    else if (colon >= 0 && colon < at) ranges.push([colon + 1, at]);
    rest = at + 1;
    const question = uri.indexOf("?", from);
    if (question >= 0 && question < at) {
      // A query began before the last '@', which may then sit inside a
      // token: its tail runs on to the next '&'.
      const amp = uri.indexOf("&", rest);
      ranges.push([rest, amp >= 0 ? amp : uri.length]);
      queryFrom = amp >= 0 ? amp + 1 : uri.length;
    }
  } else if (slashes) {
    // No user info: a host "port" that is not a number may be a password
    // whose '@host' was forgotten. Hide it and everything after it.
    const end = authorityEnd(uri, rest);
    let offset = rest;
    for (const item of uri.slice(rest, end).split(",")) {
      const portColon = portColonOf(item);
      if (portColon >= 0 && !/^\d*$/.test(item.slice(portColon + 1))) {
        ranges.push([offset + portColon + 1, uri.length]);
        return ranges;
      }
      offset += item.length + 1;
    }
  }
  if (queryFrom < 0) {
    const question = uri.indexOf("?", rest);
    queryFrom = question >= 0 ? question + 1 : uri.length;
  }
  const hash = uri.indexOf("#", rest);
  const queryEnd = hash >= 0 ? hash : uri.length;
  let offset = queryFrom;
  let afterSecret = false;
  for (
    const pair of uri.slice(queryFrom, Math.max(queryFrom, queryEnd)).split("&")
  ) {
    const equals = pair.indexOf("=");
    if (equals > 0 && isSecretParam(safeDecode(pair.slice(0, equals)))) {
      ranges.push([offset + equals + 1, offset + pair.length]);
      afterSecret = true;
    } else if (equals < 0 && afterSecret) {
      // A '&' in a secret cut it short: what follows has no '='.
      ranges.push([offset, offset + pair.length]);
    } else {
      afterSecret = false;
    }
    offset += pair.length + 1;
  }
  // Backend URIs have no fragment: a '#' is part of a secret cut short.
  if (hash >= 0) ranges.push([hash + 1, uri.length]);
  return merged(ranges);
}

function merged(ranges: Array<[number, number]>): Array<[number, number]> {
  const sorted = ranges.filter(([from, to]) => to > from)
    .sort((a, b) => a[0] - b[0]);
  const result: Array<[number, number]> = [];
  for (const [from, to] of sorted) {
    const last = result[result.length - 1];
    if (last && from <= last[1]) last[1] = Math.max(last[1], to);
    else result.push([from, to]);
  }
  return result;
}

function authorityEnd(uri: string, from: number): number {
  const end = uri.slice(from).search(/[/?#]/);
  return end < 0 ? uri.length : from + end;
}

/** The index of the `:` before a host's port, or -1. */
function portColonOf(item: string): number {
  if (item.startsWith("[")) {
    const close = item.indexOf("]");
    return close >= 0 && item[close + 1] === ":" ? close + 1 : -1;
  }
  return item.lastIndexOf(":");
}

/**
 * Replaces the password and any secret query parameter of a URI with `***`,
 * working on the raw string, whatever its scheme and however malformed:
 * everything between the first `:` after `scheme://` and the **last** `@`
 * (so an unencoded `#`, `?`, `/` or `@` in a password is still hidden), the
 * value of every secret parameter, a non-numeric "port" when there is no
 * `@`, and anything after a `#`. Over-masking a broken URI is the price of
 * never showing part of a secret.
 */
export function redactUri(uri: string): string {
  let shown = "";
  let done = 0;
  for (const [from, to] of secretRanges(uri)) {
    shown += `${uri.slice(done, from)}***`;
    done = to;
  }
  return shown + uri.slice(done);
}

/**
 * The secrets in a URI, as written and percent-decoded, for a last scrub of
 * messages that did not come through {@linkcode redactUri} (such as a
 * server's error that echoes the password).
 */
export function secretsOf(uri: string): string[] {
  const found = new Set<string>();
  for (const [from, to] of secretRanges(uri)) {
    const raw = uri.slice(from, to);
    found.add(raw);
    found.add(safeDecode(raw));
  }
  found.delete("");
  return [...found];
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** What to write instead of a character that must be percent-encoded. */
function encodingOf(char: string): string {
  return [...new TextEncoder().encode(char)].map((byte) =>
    `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
  ).join("");
}

function describeChar(char: string): string {
  // deno-lint-ignore no-control-regex
  return /[\u0000-\u001f\u007f]/.test(char) ? "control character" : `'${char}'`;
}

/**
 * Percent-decodes `text`, which starts at index `offset` of the URI; a bad
 * escape is a `TypeError` that names its position, never the text.
 */
function decodeAt(
  text: string,
  offset: number,
  what: string,
  bad: (why: string) => TypeError,
): string {
  const escape = /%(?![0-9a-fA-F]{2})/.exec(text);
  if (escape) {
    throw bad(
      `has a badly percent-encoded ${what} at character ${
        offset + escape.index + 1
      }: write a '%' itself as %25`,
    );
  }
  try {
    return decodeURIComponent(text);
  } catch {
    throw bad(
      `has a badly percent-encoded ${what} at character ${
        offset + 1
      }: its escapes are not UTF-8`,
    );
  }
}

/** Characters that end or split user info when unencoded, and controls. */
// deno-lint-ignore no-control-regex
const USERINFO_FORBIDDEN = /[#?/@[\]\u0000-\u001f\u007f]/;

/**
 * Parses a backend URI, the one parser every backend family uses. Throws
 * `TypeError` with a message that names what is wrong (and where, by
 * character position) and never repeats the password.
 *
 * The user info runs to the last `@` of the URI. In it, `#`, `?`, `/`,
 * `@`, `[`, `]` and control characters must be percent-encoded (`#` is
 * `%23`), as must an `@` in a path or query; anything else, spaces, quotes
 * and non-ASCII letters included, is taken as written. Query values are
 * percent-decoded; a `+` stays a `+`. A `#` (fragment) is refused anywhere.
 *
 * @param uri the URI as the user wrote it
 * @param defaultPort the port for hosts written without one
 */
export function parseBackendUri(uri: string, defaultPort: number): BackendUri {
  const display = redactUri(uri);
  const bad = (why: string) => new TypeError(`Backend URI '${display}' ${why}`);
  const { start, slashes, at } = layoutOf(uri);
  if (!slashes) {
    throw bad("is not of the form scheme://host[:port]");
  }
  const scheme = uri.slice(0, start - 3);
  let username = "";
  let password: string | undefined;
  if (at >= 0) {
    const userinfo = uri.slice(start, at);
    const colon = userinfo.indexOf(":");
    const forbidden = USERINFO_FORBIDDEN.exec(userinfo);
    if (forbidden) {
      const char = forbidden[0];
      const part = colon >= 0 && forbidden.index > colon
        ? "password"
        : "user name";
      throw bad(
        `has an unencoded ${describeChar(char)} at character ${
          start + forbidden.index + 1
        }, in its ${part}: write it as ${
          encodingOf(char)
        } (and an '@' in a path or query as %40)`,
      );
    }
    username = decodeAt(
      colon >= 0 ? userinfo.slice(0, colon) : userinfo,
      start,
      "user name",
      bad,
    );
    if (colon >= 0) {
      password = decodeAt(
        userinfo.slice(colon + 1),
        start + colon + 1,
        "password",
        bad,
      );
    }
  }
  const hostStart = at >= 0 ? at + 1 : start;
  const hash = uri.indexOf("#", hostStart);
  if (hash >= 0) {
    throw bad(
      `has a '#' at character ${
        hash + 1
      }: backend URIs have no fragment; percent-encode it as %23`,
    );
  }
  const hostEnd = authorityEnd(uri, hostStart);
  const queryStart = uri.indexOf("?", hostEnd);
  const pathEnd = queryStart >= 0 ? queryStart : uri.length;
  const hosts = parseHosts(uri, hostStart, hostEnd, defaultPort, at >= 0, bad);
  const path = decodeAt(uri.slice(hostEnd, pathEnd), hostEnd, "path", bad);
  const params = queryStart >= 0
    ? parseQuery(uri.slice(queryStart + 1), queryStart + 1, bad)
    : new URLSearchParams();
  return {
    scheme: scheme.toLowerCase(),
    username,
    password,
    hosts,
    path,
    params,
    display,
  };
}

/** `name=value&…`, percent-decoded, with `+` kept (URIs are not forms). */
function parseQuery(
  query: string,
  offset: number,
  bad: (why: string) => TypeError,
): URLSearchParams {
  const params = new URLSearchParams();
  for (const pair of query.split("&")) {
    if (pair !== "") {
      const equals = pair.indexOf("=");
      if (equals < 0) {
        // Quoting it could show the tail of a token cut at an '&'.
        throw bad(
          `has a query parameter without '=' at character ${
            offset + 1
          }: write an '&' in a value as %26`,
        );
      }
      const name = pair.slice(0, equals);
      const value = pair.slice(equals + 1);
      params.append(
        decodeAt(name, offset, "query", bad),
        decodeAt(value, offset + name.length + 1, "query", bad),
      );
    }
    offset += pair.length + 1;
  }
  return params;
}

/**
 * The host list. Bad parts are quoted only after an `@`: without user
 * info, a bad "port" may be a password, so only its position is named.
 */
function parseHosts(
  uri: string,
  from: number,
  to: number,
  defaultPort: number,
  quote: boolean,
  bad: (why: string) => TypeError,
): HostPort[] {
  if (from === to) return [];
  const hosts: HostPort[] = [];
  let offset = from;
  for (const part of uri.slice(from, to).split(",")) {
    const where = `at character ${offset + 1}`;
    const shown = quote ? ` '${part}'` : "";
    const portColon = portColonOf(part);
    const bracketed = part.startsWith("[");
    const hostText = portColon >= 0 ? part.slice(0, portColon) : part;
    const host = bracketed
      ? /^\[([0-9a-fA-F:.]+)\]$/.exec(hostText)?.[1] ?? ""
      : hostText;
    // deno-lint-ignore no-control-regex
    if (host === "" || /[\s@[\]\u0000-\u001f\u007f]/.test(host)) {
      throw bad(`has an empty or bad host${shown} ${where}`);
    }
    const portText = portColon >= 0 ? part.slice(portColon + 1) : "";
    if (portText === "") {
      hosts.push({ host, port: defaultPort });
    } else {
      const port = Number(portText);
      if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
        throw bad(
          `has a bad port${quote ? ` '${portText}'` : ""} at character ${
            offset + portColon + 2
          }: use 1 to 65535`,
        );
      }
      hosts.push({ host, port });
    }
    offset += part.length + 1;
  }
  return hosts;
}

/**
 * Reads a query parameter as a number of seconds, returned in milliseconds.
 */
export function secondsParam(
  uri: BackendUri,
  name: string,
  fallbackMs: number,
): number {
  const text = uri.params.get(name);
  if (text === null) return fallbackMs;
  const seconds = Number(text);
  if (text.trim() === "" || !Number.isFinite(seconds) || seconds < 0) {
    throw new TypeError(
      `Backend URI '${uri.display}' has a bad '${name}' value '${text}': use a number of seconds`,
    );
  }
  return seconds * 1000;
}

/**
 * Reads a TLS-related query parameter that names a file (`ca`, `cert`,
 * `key`) and returns the file's text, or `undefined` when absent.
 */
export function readFileParam(
  uri: BackendUri,
  name: string,
): string | undefined {
  const path = uri.params.get(name);
  if (path === null) return undefined;
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new TypeError(
      `Backend URI '${uri.display}' names a '${name}' file '${path}' that can't be read: ${
        (error as Error).message
      }`,
    );
  }
}
