/**
 * The parts of memcached's binary protocol that the backend uses: opcodes,
 * statuses, the shape of an answer, and the request extras (flags and
 * expiry for SET and ADD, delta and initial value for INCREMENT, expiry for
 * TOUCH). Pure data; client.ts sends it over memjs's sockets.
 *
 * @module
 */

/** The binary-protocol opcodes the memcached backend uses. */
export const Op = {
  get: 0x00,
  set: 0x01,
  add: 0x02,
  delete: 0x04,
  increment: 0x05,
  version: 0x0b,
  stat: 0x10,
  touch: 0x1c,
} as const;

/** Response statuses the backend tells apart; others are errors. */
export const Status = {
  ok: 0x00,
  notFound: 0x01,
  exists: 0x02,
  notStored: 0x05,
} as const;

/** The first byte of every binary-protocol response. */
export const RESPONSE_MAGIC = 0x81;

/** One answer: the status, the value, and the item's CAS for a later compare-and-swap. */
export interface Reply {
  /** The response status, such as {@linkcode Status.exists}. */
  readonly status: number;
  /** The value, empty for most writes. */
  readonly value: Uint8Array;
  /** The item's CAS, 8 bytes. */
  readonly cas: Uint8Array;
}

/** What one request carries besides its opcode and key. */
export interface RequestBody {
  /** The extras: flags and expiry, or the increment's fields. */
  readonly extras?: Uint8Array;
  /** The value to store. */
  readonly value?: string;
  /** Only act when the item's CAS is still this one. */
  readonly cas?: Uint8Array;
}

const THIRTY_DAYS_S = 30 * 24 * 60 * 60;

/**
 * The memcached expiry for an item that must live at least `ms`. memcached
 * counts whole seconds on a clock that ticks once a second, so an item set
 * for N seconds lives between N − 1 and N seconds: round up and add one.
 * Past 30 days memcached reads the number as a Unix time, so convert.
 */
export function expirySeconds(ms: number, nowMs: number = Date.now()): number {
  const seconds = Math.ceil(Math.max(0, ms) / 1000) + 1;
  return seconds <= THIRTY_DAYS_S ? seconds : Math.ceil(nowMs / 1000) + seconds;
}

/** The extras of a SET or ADD: no flags, and the expiry (0: never). */
export function storageExtras(expiry: number): Uint8Array {
  const extras = new Uint8Array(8);
  new DataView(extras.buffer).setUint32(4, expiry);
  return extras;
}

/** The extras of a TOUCH: the new expiry. */
export function touchExtras(expiry: number): Uint8Array {
  const extras = new Uint8Array(4);
  new DataView(extras.buffer).setUint32(0, expiry);
  return extras;
}

/**
 * The extras of an INCREMENT by one that creates a missing counter at
 * `initial`, never to expire.
 */
export function incrementExtras(initial: bigint): Uint8Array {
  const extras = new Uint8Array(20);
  const view = new DataView(extras.buffer);
  view.setBigUint64(0, 1n);
  view.setBigUint64(8, initial);
  return extras;
}

/** The counter value of an INCREMENT's answer. */
export function counterOf(reply: Reply): bigint {
  return new DataView(reply.value.buffer, reply.value.byteOffset, 8)
    .getBigUint64(0);
}

/** A value as text. */
export const text = (bytes: Uint8Array): string =>
  new TextDecoder().decode(bytes);
