/**
 * The signals coolock forwards to the job: SIGTERM, SIGINT, SIGHUP and
 * SIGQUIT. The first one ends a wait for the lock, or goes to the job's
 * group with SIGKILL to follow after kill-after; a second one SIGKILLs the
 * group at once (run.ts does both).
 *
 * @module
 */

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGTERM: 15,
};

/** Listens for the four signals while a run lasts; `using` removes the listeners. */
export class Signals implements Disposable {
  received: Deno.Signal | undefined;
  /** Aborts on the first signal. */
  readonly first = new AbortController();
  /** Aborts on the second. */
  readonly second = new AbortController();
  /** Called on each signal while the job runs. */
  onSignal: ((signal: Deno.Signal) => void) | undefined;
  readonly #listeners: Array<[Deno.Signal, () => void]> = [];

  constructor() {
    for (const signal of Object.keys(SIGNAL_NUMBERS) as Deno.Signal[]) {
      const listener = () => this.#on(signal);
      try {
        Deno.addSignalListener(signal, listener);
        this.#listeners.push([signal, listener]);
      } catch { /* Windows has only SIGINT and SIGBREAK */ }
    }
  }

  #on(signal: Deno.Signal): void {
    if (this.received) this.second.abort();
    this.received ??= signal;
    this.first.abort(new Error(`Received ${signal}`));
    this.onSignal?.(signal);
  }

  /** `128 + N` for the first signal received. */
  get exitCode(): number {
    return 128 + SIGNAL_NUMBERS[this.received!];
  }

  [Symbol.dispose](): void {
    for (const [signal, listener] of this.#listeners) {
      Deno.removeSignalListener(signal, listener);
    }
  }
}
