/**
 * ACL tokens of the Consul fake, in Consul's terms: a request's token
 * (`X-Consul-Token`, `Authorization: Bearer`, or `?token=`) resolves to an
 * authorizer; a token that does not exist is `403 ACL not found`; one that
 * exists but lacks a permission gets Consul's `Permission denied: …` text
 * (acl/errors.go PermissionDeniedError.Error): a 403 on the KV and session
 * endpoints, one error per operation inside a `409` from `/v1/txn`
 * (agent/consul/txn_endpoint.go preCheck → kvsPreApply).
 *
 * Rules are Consul's prefix rules, longest prefix wins: `key_prefix`,
 * `session_prefix`, `node_prefix`, `agent_prefix`, each `read`, `write` or
 * `deny`. Without tokens configured, ACLs are off.
 *
 * @module
 */

import { ConsulError } from "./state.ts";

/** What a rule grants. */
export type Access = "read" | "write" | "deny";
/** The resources the fake checks. */
export type Resource = "key" | "session" | "node" | "agent";

/** One token: its secret, and its rules (or `management` for all). */
export interface TokenSpec {
  readonly secret: string;
  /** Prefix rules per resource; `"management"` allows everything. */
  readonly rules:
    | "management"
    | Partial<Record<Resource, Readonly<Record<string, Access>>>>;
}

/** How ACLs are set up. */
export interface AclOptions {
  readonly tokens: readonly TokenSpec[];
  /** The anonymous token's rules (a request without a token). Default: none. */
  readonly anonymous?: TokenSpec["rules"];
}

const ANONYMOUS_ACCESSOR = "00000000-0000-0000-0000-000000000002";

/** A resolved token: can it do `access` on `resource` `name`? */
export class Authorizer {
  constructor(
    readonly accessor: string,
    private readonly rules: TokenSpec["rules"] | undefined,
  ) {}

  /** Whether the token may `access` the resource `name`. */
  allows(resource: Resource, name: string, access: "read" | "write"): boolean {
    if (this.rules === undefined || this.rules === "management") {
      return this.rules === "management";
    }
    let best: [string, Access] | undefined;
    for (
      const [prefix, granted] of Object.entries(this.rules[resource] ?? {})
    ) {
      if (
        name.startsWith(prefix) && (!best || prefix.length > best[0].length)
      ) {
        best = [prefix, granted];
      }
    }
    const granted = best?.[1];
    return granted === "write" || (granted === "read" && access === "read");
  }

  /** Throws Consul's permission error unless allowed. */
  require(resource: Resource, name: string, access: "read" | "write"): void {
    if (!this.allows(resource, name, access)) {
      throw new ConsulError(403, this.denial(resource, name, access));
    }
  }

  /** acl/errors.go PermissionDeniedError.Error, for a named resource. */
  denial(resource: Resource, name: string, access: "read" | "write"): string {
    const who = this.accessor === ANONYMOUS_ACCESSOR
      ? "anonymous token"
      : `token with AccessorID '${this.accessor}'`;
    const tail = this.accessor === ANONYMOUS_ACCESSOR
      ? ". The anonymous token is used implicitly when a request does not specify a token."
      : "";
    return `Permission denied: ${who} lacks permission '${resource}:${access}' on ${
      JSON.stringify(name)
    }${tail}`;
  }
}

/** The ACL system of one fake datacenter; `undefined` options turn it off. */
export class Acl {
  readonly #tokens = new Map<string, Authorizer>();
  readonly #anonymous: Authorizer;

  constructor(private readonly options: AclOptions | undefined) {
    for (const token of options?.tokens ?? []) {
      this.#tokens.set(
        token.secret,
        new Authorizer(crypto.randomUUID(), token.rules),
      );
    }
    this.#anonymous = new Authorizer(
      ANONYMOUS_ACCESSOR,
      options ? options.anonymous ?? {} : "management",
    );
  }

  /** Whether ACLs are enabled. */
  get enabled(): boolean {
    return this.options !== undefined;
  }

  /** Resolves a request's token; throws `403 ACL not found` for an unknown one. */
  resolve(secret: string): Authorizer {
    if (!this.enabled || secret === "") return this.#anonymous;
    const found = this.#tokens.get(secret);
    if (!found) throw new ConsulError(403, "ACL not found");
    return found;
  }
}

/** The token a request carries, as Consul's HTTP layer finds it. */
export function tokenOf(request: Request, params: URLSearchParams): string {
  const bearer = /^Bearer\s+(.+)$/i.exec(
    request.headers.get("authorization") ?? "",
  );
  return request.headers.get("x-consul-token") ?? bearer?.[1] ??
    params.get("token") ?? "";
}
