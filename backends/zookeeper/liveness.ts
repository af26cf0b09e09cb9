/**
 * The liveness of a ZooKeeper session. The client queues requests forever
 * while disconnected and never notices a hung server (its pings expect no
 * answer), so every call is bounded here, and the session counts as lost
 * once no call was answered for the session timeout minus a margin.
 *
 * @module
 */

import { BackendUnavailableError } from "../../src/backend.ts";
import { withTimeout } from "../../src/timing.ts";
import {
  codeOf,
  NO_AUTH,
  SESSION_EXPIRED,
  type ZkClient,
  ZkCode,
  ZkLink,
  type ZkModule,
} from "./client.ts";

const HANDLED = new Set<number>(Object.values(ZkCode));
/** Codes that say nothing reached the server. */
const NO_ANSWER = new Set([-4, -7, -112, -115]);
const CALL_TIMEOUT_MS = 5_000;

/**
 * Bounded calls on a client, and `lost` aborting once no answer was
 * confirmed for the session timeout minus a margin (the server may then
 * have expired it), or the server said it expired.
 */
export class ZkLiveness {
  readonly #lost = new AbortController();
  readonly #link: ZkLink;
  #confirmedAt = -Infinity;
  #beatTimer?: ReturnType<typeof setTimeout>;
  #deadlineTimer?: ReturnType<typeof setTimeout>;
  #beating = false;
  #closed?: Promise<void>;
  #lostWhy = "";

  /**
   * Watches the client's state; nothing runs until `start()`.
   *
   * @param zk the client module
   * @param client the client, before `connect()`
   * @param display the redacted URI, for messages
   */
  constructor(
    /** The client module, for its constants. */
    readonly zk: ZkModule,
    /** The client. */
    protected readonly client: ZkClient,
    /** The redacted URI, for messages. */
    readonly display: string,
  ) {
    this.#link = new ZkLink(client);
    client.on("state", (state) => {
      if (state.code === zk.State.EXPIRED.code) {
        this.lose("the server expired the session");
      } else if (state.code === zk.State.AUTH_FAILED.code) {
        this.lose("the server refused the credentials");
      }
    });
  }

  /** Aborts when the session is known or feared gone. */
  get lost(): AbortSignal {
    return this.#lost.signal;
  }

  /** Why a socket failed last, for a connect error. */
  get lastSocketError(): string {
    return this.#link.lastSocketError;
  }

  /** The timeout the server granted, in milliseconds. */
  get timeoutMs(): number {
    return this.client.getSessionTimeout();
  }

  /** Starts the heartbeat and the lost-session deadline. */
  start(confirmedAt: number): void {
    this.#confirm(confirmedAt);
    this.#beat();
    this.#armDeadline();
  }

  #confirm(sentAt: number): void {
    this.#confirmedAt = Math.max(this.#confirmedAt, sentAt);
  }

  get #marginMs(): number {
    return Math.max(250, this.timeoutMs / 10);
  }

  #beat(): void {
    this.#beatTimer = setTimeout(() => {
      if (!this.#beating) {
        this.#beating = true;
        this.call((done) => this.client.exists("/", done))
          .catch(() => {}).finally(() => this.#beating = false);
      }
      this.#beat();
    }, this.timeoutMs / 5);
  }

  #armDeadline(): void {
    const due = this.#confirmedAt + this.timeoutMs - this.#marginMs -
      performance.now();
    if (due <= 0) {
      this.lose(
        `no answer from ZooKeeper for ${
          (this.timeoutMs - this.#marginMs) / 1000
        } s, so the session may have expired`,
      );
      return;
    }
    this.#deadlineTimer = setTimeout(() => this.#armDeadline(), due);
  }

  /** Declares the session gone and ends it, so its nodes go too. */
  lose(why: string): void {
    if (this.#lost.signal.aborted) return;
    this.#lostWhy = `the ZooKeeper session is gone: ${why}`;
    this.#lost.abort(new Error(`The ZooKeeper session is gone: ${why}`));
    void this.close();
  }

  /**
   * One client call, bounded in time and by `signal`. Rejects with the
   * client's exception for the codes in `ZkCode`, and with
   * `BackendUnavailableError` for everything else.
   */
  protected call<T>(
    start: (done: (error: unknown, value?: T) => void) => void,
    signal?: AbortSignal,
  ): Promise<T> {
    if (this.#lost.signal.aborted) {
      return Promise.reject(this.#unavailable());
    }
    const sentAt = performance.now();
    const pending = new Promise<T>((resolve, reject) =>
      start((error, value) => {
        // A late answer still proves the server heard us at sentAt or later.
        const code = codeOf(error);
        if (!error || (code !== undefined && !NO_ANSWER.has(code))) {
          this.#confirm(sentAt);
        }
        // A call on a session that a takeover closed (the connection stays
        // up) gets this: the session is gone, whatever the pings say.
        if (code === SESSION_EXPIRED) {
          this.lose("the server says it expired or was closed");
        }
        if (error) reject(error);
        else resolve(value as T);
      })
    );
    const stop = signal
      ? AbortSignal.any([signal, this.#lost.signal])
      : this.#lost.signal;
    return withTimeout(pending, CALL_TIMEOUT_MS, stop).catch((error) => {
      if (signal?.aborted) throw signal.reason;
      const code = codeOf(error);
      if (code !== undefined && HANDLED.has(code)) throw error;
      if (this.#lost.signal.aborted) throw this.#unavailable();
      const why = error instanceof DOMException
        ? `no answer within ${CALL_TIMEOUT_MS / 1000} s`
        : code === NO_AUTH
        ? "ZooKeeper refused access by the node's ACL (NO_AUTH): coolock's nodes there belong to another digest identity"
        : `ZooKeeper answered ${String(error)}`;
      throw new BackendUnavailableError(this.display, why, { cause: error });
    });
  }

  #unavailable(): BackendUnavailableError {
    return new BackendUnavailableError(this.display, this.#lostWhy);
  }

  /** Ends the session and every timer and socket of it. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      if (!this.#lost.signal.aborted) {
        this.#lostWhy = "the backend was closed";
        this.#lost.abort(new Error("The ZooKeeper backend was closed"));
      }
      clearTimeout(this.#beatTimer);
      clearTimeout(this.#deadlineTimer);
      await this.#link.end();
    })();
    return this.#closed;
  }
}
