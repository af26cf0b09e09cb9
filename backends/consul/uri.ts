/**
 * Consul backend URIs: `consul://host:8500`, `consul+http://…` or
 * `consul+https://…`, with `token` (else `CONSUL_HTTP_TOKEN`), `dc`,
 * `lock-delay` and, over HTTPS, the files `ca`, `cert` and `key`.
 *
 * @module
 */

import { parseBackendUri, readFileParam, secondsParam } from "../../src/uri.ts";
import { MAX_LOCK_DELAY_MS } from "./sessions.ts";

const OPTIONS = ["token", "dc", "lock-delay", "ca", "cert", "key"];

/**
 * A checked Consul URI: the npm client's options and what the backend needs.
 *
 * @example
 * ```ts
 * import { parseConsulUri } from "./uri.ts";
 * const target = parseConsulUri("consul://agent?lock-delay=2");
 * console.log(target.lockDelayMs); // 2000
 * ```
 */
export interface ConsulTarget {
  /** Options for the npm client's constructor. */
  readonly options: Record<string, unknown>;
  /** The ACL token, if any: a secret. */
  readonly token: string | undefined;
  /** The lock-delay of the backend's sessions. */
  readonly lockDelayMs: number;
  /** The URI with its token replaced by `***`. */
  readonly display: string;
}

function envToken(): string | undefined {
  try {
    return Deno.env.get("CONSUL_HTTP_TOKEN") || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Parses and checks a Consul URI. Throws `TypeError` naming the problem,
 * without the token.
 *
 * @example
 * ```ts
 * import { parseConsulUri } from "./uri.ts";
 * console.log(parseConsulUri("consul://agent?token=s").display); // consul://agent?token=***
 * ```
 */
export function parseConsulUri(text: string): ConsulTarget {
  const uri = parseBackendUri(text, 8500);
  const { display, params } = uri;
  const bad = (why: string) =>
    new TypeError(`Consul backend URI '${display}' ${why}`);
  if (!["consul", "consul+http", "consul+https"].includes(uri.scheme)) {
    throw bad("must start with consul://, consul+http:// or consul+https://");
  }
  if (uri.hosts.length !== 1) throw bad("must name exactly one Consul agent");
  if (uri.username !== "" || uri.password !== undefined) {
    throw bad(
      "takes no user name or password: give an ACL token as ?token= or CONSUL_HTTP_TOKEN",
    );
  }
  if (uri.path !== "" && uri.path !== "/") {
    throw bad(`has a path '${uri.path}': locks live under coolock/`);
  }
  for (const name of params.keys()) {
    if (!OPTIONS.includes(name)) {
      throw bad(`has an unknown option '${name}': use ${OPTIONS.join(", ")}`);
    }
  }
  const secure = uri.scheme === "consul+https";
  const tls: Record<string, string> = {};
  for (const name of ["ca", "cert", "key"]) {
    const file = readFileParam(uri, name);
    if (file !== undefined && !secure) {
      throw bad(`has a '${name}' option, which needs consul+https://`);
    }
    if (file !== undefined) tls[name] = file;
  }
  if (("cert" in tls) !== ("key" in tls)) {
    throw bad("needs both 'cert' and 'key', or neither");
  }
  const lockDelayMs = secondsParam(uri, "lock-delay", 0);
  if (lockDelayMs > MAX_LOCK_DELAY_MS) {
    throw bad(
      `has a 'lock-delay' of '${
        params.get("lock-delay")
      }': Consul allows 0 to 60 seconds`,
    );
  }
  const token = params.get("token") || envToken();
  const { host, port } = uri.hosts[0];
  const hostText = host.includes(":") ? `[${host}]` : host;
  return {
    options: {
      baseUrl: `${secure ? "https" : "http"}://${hostText}:${port}/v1`,
      defaults: { token, dc: params.get("dc") || undefined },
      ...tls,
    },
    token,
    lockDelayMs,
    display,
  };
}
