/**
 * Errors of etcd's v3 JSON gateway: gRPC status codes in JSON answers, and
 * fetch failures described without the URL.
 *
 * @module
 */

/** A JSON object as the gateway sends it. */
export type Json = Record<string, unknown>;

/**
 * An error answer from etcd, with its gRPC status code.
 *
 * @example
 * ```ts
 * import { GatewayError } from "./errors.ts";
 * const error = new GatewayError(5, "etcdserver: requested lease not found");
 * console.log(error.code); // 5
 * ```
 */
export class GatewayError extends Error {
  /**
   * Wraps one error answer.
   *
   * @param code the gRPC status code (5 not found, 14 unavailable, 16 bad token)
   * @param message etcd's message
   */
  constructor(
    /** The gRPC status code. */
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "GatewayError";
  }
}

/** The gRPC status code of an unavailable server. */
export const UNAVAILABLE = 14;

/**
 * The error in a gateway answer, as a {@linkcode GatewayError}.
 *
 * @example
 * ```ts
 * import { asError } from "./errors.ts";
 * console.log(asError({ code: 5, message: "lease not found" }).code); // 5
 * ```
 */
export function asError(error: Json): GatewayError {
  const nested = typeof error.error === "object" ? error.error as Json : error;
  const code = Number(nested.grpc_code ?? nested.code ?? UNAVAILABLE);
  const message = String(nested.message ?? nested.error ?? "unknown error");
  return new GatewayError(code, message);
}

/**
 * What helps in a fetch failure's message, without the URL Deno repeats.
 *
 * @example
 * ```ts
 * import { describe } from "./errors.ts";
 * console.log(describe(new Error("connection refused"))); // connection refused
 * ```
 */
export function describe(error: unknown): string {
  const cause = (error as Error)?.cause as Error | undefined;
  const message = cause?.message ?? (error as Error)?.message ?? String(error);
  // Deno's fetch message repeats the URL; what follows it is what helps.
  return message.replace(/^error sending request for url \([^)]*\): /, "");
}
