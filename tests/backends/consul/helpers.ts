/**
 * What the consul backend's own tests share: requests, an in-process fake
 * with a backend on it, and plain HTTP calls to the fake, as an operator or
 * another Consul client would make them.
 *
 * @module
 */

import { consul } from "../../../backends/consul/mod.ts";
import type { Backend, Claim, LockRequest } from "../../../src/backend.ts";
import { assert } from "../../helpers/assert.ts";
import {
  type ConsulFake,
  type ConsulFakeOptions,
  startConsulFake,
} from "./fake/mod.ts";

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** The in-process fakes' session minimum: short, as `session_ttl_min` allows. */
export const FAST_TTL_MIN_MS = 1_000;

/** A one-attempt request with a fresh owner. */
export function request(
  name: string,
  overrides: Partial<LockRequest> = {},
): LockRequest {
  return {
    name,
    owner: `test:${crypto.randomUUID()}`,
    node: "test",
    limit: 1,
    expiresInMs: 2_000,
    guardMs: 0,
    wait: false,
    signal: AbortSignal.timeout(10_000),
    ...overrides,
  };
}

/** The URI of a fake's agent `i`, with the fake's session minimum. */
export function uriOf(fake: ConsulFake, i = 0, query = ""): string {
  const min = fake.cluster.ttlMinMs / 1000;
  return `consul://127.0.0.1:${fake.ports[i]}?session-ttl-min=${min}${query}`;
}

/**
 * Runs `fn` with an in-process fake (short sessions unless the options say
 * otherwise) and a backend on its first agent, closing both.
 */
export async function withBackend(
  options: ConsulFakeOptions & { query?: string },
  fn: (backend: Backend, fake: ConsulFake) => Promise<void>,
): Promise<void> {
  await using fake = startConsulFake({
    sessionTtlMinMs: FAST_TTL_MIN_MS,
    ...options,
  });
  const uri = options.tls
    ? uriOf(fake, 0, options.query).replace("consul:", "consul+https:")
    : uriOf(fake, 0, options.query);
  await using backend = consul(uri);
  await fn(backend, fake);
}

/** Acquires `name` or fails the test. */
export async function claimOf(
  backend: Backend,
  name: string,
  overrides: Partial<LockRequest> = {},
): Promise<Claim> {
  const claim = await backend.tryAcquire(request(name, overrides));
  assert(claim, `'${name}' is acquired`);
  return claim;
}

/** A call to an agent's HTTP API; resolves the status and the parsed body. */
export async function api(
  port: number,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown; text: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch { /* text */ }
  return { status: response.status, json, text };
}

/** The sessions a fake holds now, by ID. */
export function sessionsOf(fake: ConsulFake) {
  return new Map(fake.cluster.listSessions().map((s) => [s.ID, s]));
}

/** Marks `node`'s serfHealth critical, as Consul's leader does for a failed agent. */
export function failSerfHealth(port: number, node: string) {
  return api(port, "PUT", "/v1/catalog/register", {
    Node: node,
    Check: { CheckID: "serfHealth", Status: "critical" },
  });
}
