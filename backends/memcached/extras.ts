/**
 * The extras of memcached binary-protocol requests: flags and expiry for
 * SET and ADD, delta and initial value for INCREMENT.
 *
 * @module
 */

const THIRTY_DAYS_S = 30 * 24 * 60 * 60;

/**
 * The memcached expiry for an item that must live at least `ms`. memcached
 * counts whole seconds on a clock that ticks once a second, so an item set
 * for N seconds lives between N − 1 and N seconds: round up and add one.
 * Past 30 days memcached reads the number as a Unix time, so convert.
 *
 * @param ms how long the item must live, at least
 * @param nowMs the current Unix time in milliseconds
 *
 * @example
 * ```ts
 * import { expirySeconds } from "./extras.ts";
 * console.log(expirySeconds(1_200)); // 3
 * ```
 */
export function expirySeconds(ms: number, nowMs: number = Date.now()): number {
  const seconds = Math.ceil(Math.max(0, ms) / 1000) + 1;
  return seconds <= THIRTY_DAYS_S ? seconds : Math.ceil(nowMs / 1000) + seconds;
}

/**
 * The extras of a SET or ADD: no flags, and the expiry.
 *
 * @example
 * ```ts
 * import { storageExtras } from "./extras.ts";
 * console.log(storageExtras(3).length); // 8
 * ```
 */
export function storageExtras(expiry: number): Uint8Array {
  const extras = new Uint8Array(8);
  new DataView(extras.buffer).setUint32(4, expiry);
  return extras;
}

/**
 * The extras of an INCREMENT by one that creates a missing counter at
 * `initial`, never to expire.
 *
 * @example
 * ```ts
 * import { incrementExtras } from "./extras.ts";
 * console.log(incrementExtras(1n).length); // 20
 * ```
 */
export function incrementExtras(initial: bigint): Uint8Array {
  const extras = new Uint8Array(20);
  const view = new DataView(extras.buffer);
  view.setBigUint64(0, 1n);
  view.setBigUint64(8, initial);
  return extras;
}
