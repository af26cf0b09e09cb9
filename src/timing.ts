/**
 * Timers that end early when a signal aborts, so that nothing outlives the
 * operation that needed it.
 *
 * @module
 */

/**
 * Resolves after `ms`, or rejects with the signal's reason when it aborts.
 *
 * @example
 * ```ts
 * import { abortableDelay } from "./timing.ts";
 * await abortableDelay(10, AbortSignal.timeout(1_000));
 * ```
 */
export function abortableDelay(
  ms: number,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Settles like `promise`, but rejects with a `TimeoutError` after `ms`, or
 * with the signal's reason when it aborts first.
 *
 * @example
 * ```ts
 * import { withTimeout } from "./timing.ts";
 * console.log(await withTimeout(Promise.resolve(1), 1_000)); // 1
 * ```
 */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  signal?: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(new DOMException(`No answer within ${ms} ms`, "TimeoutError"))
        ),
      ms,
    );
    const onAbort = () => finish(() => reject(signal?.reason));
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      settle();
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => finish(() => resolve(value)),
      (error) => finish(() => reject(error)),
    );
  });
}
