/**
 * The Redis backend's keys and Lua scripts: `SET NX PX` with the owner as the
 * value, a counter that never expires for the fencing token, and
 * compare-and-set renewal and release, which publishes on the lock's channel.
 *
 * @module
 */

/**
 * Takes the lock and counts a token: KEYS lock, fence; ARGV owner, ms.
 * The counter never expires: tokens keep increasing after the lock expires.
 */
export const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return tostring(redis.call('INCR', KEYS[2]))
end
return false`;

/** Extends the lock while it holds the owner: KEYS lock; ARGV owner, ms. */
export const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

/**
 * Gives the lock back while it holds the owner: KEYS lock; ARGV owner, hold
 * ms, channel. Guard time keeps the key, only shortened to what is left.
 */
export const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1`;

/**
 * The keys of one lock: the lock, its fencing counter and its release
 * channel. Names are Redis key bytes as they are.
 *
 * @example
 * ```ts
 * import { keysOf } from "./scripts.ts";
 * console.log(keysOf("report").lock); // coolock:lock:report
 * ```
 */
export function keysOf(
  name: string,
): { lock: string; fence: string; channel: string } {
  return {
    lock: `coolock:lock:${name}`,
    fence: `coolock:fence:${name}`,
    channel: `coolock:released:${name}`,
  };
}

/**
 * Milliseconds as the whole, positive number a PX or PEXPIRE takes.
 *
 * @example
 * ```ts
 * import { wholeMs } from "./scripts.ts";
 * console.log(wholeMs(0.2)); // 1
 * ```
 */
export function wholeMs(ms: number): string {
  return String(Math.max(1, Math.ceil(ms)));
}
