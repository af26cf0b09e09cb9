/**
 * Timers that end early when a signal aborts, so that nothing outlives the
 * operation that needed it.
 *
 * @module
 */

/** setTimeout's longest delay; longer ones fire at once, with a warning. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * Calls `fn` after `ms`, however long: delays past setTimeout's 24.8 days
 * are chained. Resolves a function that cancels it.
 */
export function later(fn: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout>;
  const due = performance.now() + Math.max(0, ms);
  const arm = () => {
    const left = due - performance.now();
    timer = left > MAX_DELAY_MS
      ? setTimeout(arm, MAX_DELAY_MS)
      : setTimeout(fn, Math.max(0, left));
  };
  arm();
  return () => clearTimeout(timer);
}

/**
 * Resolves after `ms`, or rejects with the signal's reason when it aborts.
 */
export function abortableDelay(
  ms: number,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      cancel();
      reject(signal?.reason);
    };
    const cancel = later(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Settles like `promise`, but rejects with a `TimeoutError` after `ms`, or
 * with the signal's reason when it aborts first.
 */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  signal?: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const cancel = later(
      () =>
        finish(() =>
          reject(new DOMException(`No answer within ${ms} ms`, "TimeoutError"))
        ),
      ms,
    );
    const onAbort = () => finish(() => reject(signal?.reason));
    const finish = (settle: () => void) => {
      cancel();
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

/**
 * Resolves after `ms`, or at once when `signal` aborts: a wait that a caller
 * may cut short without treating it as a failure.
 */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
