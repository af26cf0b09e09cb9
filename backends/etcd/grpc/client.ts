/**
 * The one place that names the gRPC client, `npm:etcd3@1.1.2`, and loads
 * it, lazily, on the first use of an `etcd3` backend: its options, a
 * per-host fault policy instead of the library's circuit breakers, the
 * login, and one-line messages for its errors. The types other files need
 * are re-exported from here, so that no other file names the specifier.
 *
 * @module
 */

import type { Etcd3, IOptions } from "npm:etcd3@1.1.2";
import type { AuthState } from "../ops.ts";
import type { EtcdTarget } from "../uri.ts";

export type { Etcd3, IKeyValue, Watcher } from "npm:etcd3@1.1.2";

import { importNpm } from "../../../src/npm.ts";

const SPECIFIER = "npm:etcd3@1.1.2";

/**
 * Per-host fault handling instead of the library's circuit breakers, which
 * keep a recovered server out for 5 s: a host that just failed is skipped
 * while another one has not, so that streams (keepalive, watch) fail over too.
 */
function hostPolicies(
  hosts: readonly string[],
  recoverable: (error: Error) => boolean,
) {
  const failedAt = new Map<string, number>();
  const failing = (host: string) =>
    performance.now() - (failedAt.get(host) ?? -Infinity) < SKIP_FAILED_MS;
  return (host: string) => ({
    async execute<T>(fn: (context: unknown) => T | Promise<T>): Promise<T> {
      if (failing(host) && hosts.some((other) => !failing(other))) {
        throw new Error(`${host} failed a moment ago`);
      }
      try {
        const result = await fn({ signal: new AbortController().signal });
        failedAt.delete(host);
        return result;
      } catch (error) {
        if (recoverable(error as Error)) failedAt.set(host, performance.now());
        throw error;
      }
    },
  });
}

const SKIP_FAILED_MS = 2_000;

const NETWORK_ERRORS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host not found",
};

/**
 * One line for an error of grpc-js or the library, in the user's terms:
 * no status-code prefix, no `Resolution note:` tail, no newlines.
 */
export function grpcMessage(error: unknown, timeoutMs: number): string {
  let text = String((error as Error)?.message ?? error);
  text = text.replace(/\s*Resolution note:[\s\S]*$/, "")
    .replace(/\s+/g, " ").trim();
  if (/DEADLINE_EXCEEDED|Deadline exceeded/.test(text)) {
    return `no answer within ${timeoutMs / 1000} s`;
  }
  text = text.replace(/^\d+ [A-Z_]+: /, "").replace(/(^|: )Error: /g, "$1");
  const unresolved = /Name resolution failed for target (?:dns:)?(\S+)/.exec(
    text,
  );
  if (unresolved) return `${unresolved[1]} can't be reached: host not found`;
  const network = /(?:connect|getaddrinfo) ([A-Z_]+) (\S+?)\.?$/.exec(text);
  if (network && NETWORK_ERRORS[network[1]]) {
    return `${network[2]} can't be reached: ${NETWORK_ERRORS[network[1]]}`;
  }
  return text.replace(/\.$/, "") || "unknown gRPC error";
}

/** An error of the library, as one clean line; the original is its cause. */
export function cleanError(error: unknown, timeoutMs: number): Error {
  const clean = new Error(grpcMessage(error, timeoutMs), { cause: error });
  clean.name = (error as Error)?.name ?? "Error";
  return clean;
}

/** A connected client, and what the recipe's transport needs beside it. */
export interface Connection {
  /** The client; authenticated when the URI has a user and the server has auth on. */
  readonly client: Etcd3;
  /** Encodes text as the client's bytes (a `Buffer`). */
  readonly bytes: (text: string) => Uint8Array;
  /** Whether an error is a network or server fault worth failing over. */
  readonly recoverable: (error: Error) => boolean;
  /** How the URI's credentials fare, asked afresh. */
  auth(signal: AbortSignal): Promise<AuthState>;
  /** An HTTP client with the URI's TLS files, for `GET /version`. */
  readonly http: Deno.HttpClient;
  /** Closes the client(s). */
  close(): void;
}

/** Rejects when `signal` aborts; the call itself ends by its deadline. */
export function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal,
): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
}

/**
 * Loads the library and makes the client. With a user name in the URI it
 * first logs in once on a client without credentials: a server with auth
 * off answers "not enabled", and then the client goes without credentials
 * too (the library would fail every call); wrong ones reject here.
 */
export async function connect(
  target: EtcdTarget,
  signal: AbortSignal,
): Promise<Connection> {
  const { Etcd3, castGrpcError, isRecoverableError } = await importNpm<
    typeof import("npm:etcd3@1.1.2")
  >(SPECIFIER);
  const { Buffer } = await import("node:buffer");
  const { uri, timeoutMs, endpoints, pem } = target;
  const bytes = (text: string) => Buffer.from(text);
  const recoverable = (error: Error) =>
    isRecoverableError(castGrpcError(error));
  const make = (withAuth: boolean) => {
    const options: IOptions = {
      hosts: [...endpoints],
      auth: withAuth
        ? { username: uri.username, password: uri.password ?? "" }
        : undefined,
      // Without a CA file, grpc-js trusts the system's roots (the library
      // types the CA as required, but passes it on as optional).
      credentials: pem.ca || pem.cert
        ? {
          rootCertificate:
            (pem.ca === undefined ? undefined : bytes(pem.ca)) as ReturnType<
              typeof bytes
            >,
          certChain: pem.cert === undefined ? undefined : bytes(pem.cert),
          privateKey: pem.key === undefined ? undefined : bytes(pem.key),
        }
        : undefined,
      defaultCallOptions: (context) =>
        context.isStream ? {} : { deadline: Date.now() + timeoutMs },
      faultHandling: {
        host: hostPolicies(endpoints, isRecoverableError) as never,
      },
    };
    return new Etcd3(options);
  };
  const bare = make(false);
  const login = async (probe: AbortSignal): Promise<AuthState> => {
    try {
      await abortable(
        bare.auth.authenticate({
          name: uri.username,
          password: uri.password ?? "",
        }, { deadline: Date.now() + timeoutMs }),
        probe,
      );
      return "authenticated";
    } catch (error) {
      probe.throwIfAborted();
      const message = (error as Error)?.message ?? "";
      if (/authentication is not enabled/.test(message)) return "disabled";
      if (uri.username === "" && /authentication failed/.test(message)) {
        return "required";
      }
      throw cleanError(error, timeoutMs);
    }
  };
  let client = bare;
  if (uri.username !== "") {
    try {
      if (await login(signal) === "authenticated") client = make(true);
    } catch (error) {
      // Refused credentials leave a client whose calls fail with that very
      // message (and `check` can still report the rest); an unreachable
      // server fails the connect, which the backend tries again later.
      if (!/authentication failed/.test((error as Error).message)) {
        bare.close();
        throw error;
      }
      client = make(true);
    }
  }
  const http = Deno.createHttpClient({
    caCerts: pem.ca === undefined ? undefined : [pem.ca],
    cert: pem.cert,
    key: pem.key,
    http2: false,
  });
  return {
    client,
    bytes,
    recoverable,
    auth: login,
    http,
    close() {
      if (client !== bare) client.close();
      bare.close();
      http.close();
    },
  };
}
