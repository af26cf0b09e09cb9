/**
 * The value a key-value backend (Redis, memcached) stores for a slot's
 * holder: small JSON that `status` reads (node, since, token, guard), while
 * compare-and-set still compares the exact stored string. A value of the
 * previous release is the owner alone.
 *
 * @module
 */

/** What a slot's value says; a value of the previous release is only an owner. */
export interface StoredHolder {
  readonly owner: string;
  readonly node?: string;
  readonly limit?: number;
  readonly guardMs?: number;
  /** Server time of acquisition, Unix ms. */
  readonly since?: number;
  readonly token?: bigint;
  /** Estimated server time when the value runs out, Unix ms (memcached). */
  readonly until?: number;
  /** Server time of a guarded release, Unix ms. */
  readonly released?: number;
}

/** The value of a slot. */
export function holderValue(holder: StoredHolder): string {
  return JSON.stringify({
    owner: holder.owner,
    node: holder.node,
    limit: holder.limit,
    guard: holder.guardMs,
    since: holder.since,
    token: holder.token === undefined ? undefined : String(holder.token),
    until: holder.until,
    released: holder.released,
  });
}

/** Reads a slot's value. */
export function parseHolder(value: string): StoredHolder {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(value);
  } catch {
    return { owner: value };
  }
  if (parsed === null || typeof parsed !== "object") return { owner: value };
  const text = (v: unknown) => typeof v === "string" ? v : undefined;
  const num = (v: unknown) => typeof v === "number" ? v : undefined;
  const token = text(parsed.token);
  return {
    owner: text(parsed.owner) ?? value,
    node: text(parsed.node),
    limit: num(parsed.limit),
    guardMs: num(parsed.guard),
    since: num(parsed.since),
    token: token !== undefined && /^\d+$/.test(token)
      ? BigInt(token)
      : undefined,
    until: num(parsed.until),
    released: num(parsed.released),
  };
}
