/**
 * A scripted in-memory `Backend`, for driving the lock lifecycle
 * (src/lease.ts) through renew failures, slow renewals, late claims and
 * deadlines in milliseconds, without servers. Slots, tokens, expiry and
 * guard time behave as a real backend's do; `script` says what goes wrong.
 *
 * @module
 */

import type {
  Backend,
  BackendCapabilities,
  Claim,
  LockRequest,
} from "../../src/backend.ts";
import { LockLostError } from "../../src/errors.ts";
import { Holdings } from "../../src/holdings.ts";

interface Slot {
  owner: string;
  until: number;
  claim?: MemoryClaim;
}

/** What goes wrong, and when. Every field is read at the moment of the call. */
export interface Script {
  /** Milliseconds each `tryAcquire` takes. */
  acquireMs?: number;
  /** Milliseconds each `renew` takes (it still honours its signal). */
  renewMs?: number;
  /** Each `renew` waits for this promise before it answers. */
  renewGate?: Promise<void>;
  /** The next N renewals reject with a plain (retryable) error. */
  failRenewals?: number;
  /** The next renewal rejects with `LockLostError`. */
  refuseRenewal?: boolean;
  /** `tryAcquire` rejects with this error. */
  acquireError?: Error;
}

/** One call the backend saw, for assertions. */
export interface Call {
  readonly op: "acquire" | "renew" | "release" | "wait";
  readonly at: number;
  readonly name: string;
  readonly ms?: number;
}

class MemoryClaim implements Claim {
  readonly #lost = new AbortController();
  readonly lost: AbortSignal = this.#lost.signal;
  #released = false;

  constructor(
    readonly token: bigint,
    readonly slot: number,
    private readonly request: LockRequest,
    private readonly backend: MemoryBackend,
  ) {}

  /** Aborts `lost`, as a watch that saw the key go would. */
  lose(why: string): void {
    this.#lost.abort(new LockLostError(this.request.name, why));
  }

  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    const { script } = this.backend;
    this.backend.calls.push({
      op: "renew",
      at: performance.now(),
      name: this.request.name,
      ms: expiresInMs,
    });
    if (script.renewMs) await delay(script.renewMs, signal);
    if (script.renewGate) await script.renewGate;
    if (script.failRenewals) {
      script.failRenewals--;
      throw new Error("the test server hiccuped");
    }
    const held = this.backend.slotOf(this.request.name, this.slot);
    if (script.refuseRenewal || held?.owner !== this.request.owner) {
      script.refuseRenewal = false;
      throw new LockLostError(this.request.name, "the test backend refused it");
    }
    held.until = performance.now() + expiresInMs;
  }

  release(holdMs: number): Promise<void> {
    if (this.#released) return Promise.resolve();
    this.#released = true;
    this.backend.calls.push({
      op: "release",
      at: performance.now(),
      name: this.request.name,
      ms: holdMs,
    });
    const held = this.backend.slotOf(this.request.name, this.slot);
    if (held?.owner === this.request.owner) {
      held.until = performance.now() + holdMs;
      held.claim = undefined;
      this.backend.changed();
    }
    return Promise.resolve();
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

/** The scripted backend. */
export class MemoryBackend implements Backend {
  readonly scheme = "memory";
  readonly displayUri = "memory://test";
  readonly capabilities: BackendCapabilities = {
    notifiesWaiters: true,
    fairQueue: false,
    minTtlMs: 1,
    maxTtlMs: 366 * 86_400_000,
    clock: "local",
    listsLocks: false,
    storesLimit: false,
  };
  /** What goes wrong; change it at any time. */
  script: Script = {};
  /** Every call, in order. */
  readonly calls: Call[] = [];
  readonly #slots = new Map<string, Map<number, Slot>>();
  readonly #fences = new Map<string, bigint>();
  readonly #holdings = new Holdings();
  #wakers = new Set<() => void>();

  /** The slot's current record, if any. */
  slotOf(name: string, slot: number): Slot | undefined {
    return this.#slots.get(name)?.get(slot);
  }

  /** Wakes every waiter. */
  changed(): void {
    for (const wake of this.#wakers) wake();
    this.#wakers = new Set();
  }

  /** The live claim on `name`'s slot, to make it lose. */
  claimOf(name: string, slot = 0): MemoryClaim | undefined {
    return this.slotOf(name, slot)?.claim;
  }

  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    this.calls.push({
      op: "acquire",
      at: performance.now(),
      name: request.name,
    });
    if (this.script.acquireMs) await delay(this.script.acquireMs);
    if (this.script.acquireError) throw this.script.acquireError;
    const slots = this.#slots.get(request.name) ?? new Map<number, Slot>();
    this.#slots.set(request.name, slots);
    const now = performance.now();
    for (let slot = 0; slot < request.limit; slot++) {
      const held = slots.get(slot);
      if (held && held.until > now) continue;
      const token = (this.#fences.get(request.name) ?? 0n) + 1n;
      this.#fences.set(request.name, token);
      const claim = new MemoryClaim(token, slot, request, this);
      slots.set(slot, {
        owner: request.owner,
        until: now + request.expiresInMs,
        claim,
      });
      return this.#holdings.track(claim, request);
    }
    return undefined;
  }

  waitForChange(_request: LockRequest, signal: AbortSignal): Promise<void> {
    this.calls.push({ op: "wait", at: performance.now(), name: "" });
    return new Promise((resolve, reject) => {
      this.#wakers.add(resolve);
      signal.addEventListener("abort", () => reject(signal.reason), {
        once: true,
      });
    });
  }

  async close(): Promise<void> {
    await this.#holdings.releaseAll();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
