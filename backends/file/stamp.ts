/**
 * The crash-safe stamp: what a lock file says beyond its `flock(2)`, and how
 * it is written so that a SIGKILL (or a power cut) at any moment never loses
 * the fencing counter or a guard.
 *
 * A stamped file holds two fixed-size records, at offset 0 and at offset
 * {@linkcode RECORD_SIZE}. Each record carries a sequence number and a
 * CRC-32 of its content; the valid record with the highest sequence number is
 * the file's state. A write never touches that record: it goes, in one
 * `write(2)` of exactly one record, to the other place, with the next
 * sequence number. A torn write damages only the record being written, so a
 * reader falls back to the previous state, which carries the same fencing
 * token and the acquisition's guard end. Nothing is ever truncated.
 *
 * The lock files of earlier releases held one line of JSON (`{owner,
 * guardUntil, fence}`); such a file is read as a released stamp, and the
 * first record written into it goes to the second place, so the old content
 * stays readable until a record is complete.
 *
 * A file of records that holds no valid one (disk corruption, or a foreign
 * writer: only the directory's owner can write there) is `corrupt`: nobody
 * may take that slot until an operator forces a release, since it may hide a
 * guard. An empty file was never held.
 *
 * @module
 */

import type { GroupRecord } from "./group.ts";

/** The size of one record; two of them make a stamped file. */
export const RECORD_SIZE = 4096;

const MAGIC = "coolock-record 1";

/** What a file's records say, before its meaning is read. */
export type Contents =
  | { readonly kind: "empty" }
  | { readonly kind: "legacy"; readonly value: Record<string, unknown> }
  | { readonly kind: "corrupt"; readonly why: string }
  | {
    readonly kind: "record";
    readonly seq: number;
    readonly at: 0 | 1;
    readonly value: Record<string, unknown>;
  };

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function checksum(seq: number, json: Uint8Array): string {
  const bytes = new Uint8Array([...encoder.encode(`${seq}:`), ...json]);
  return crc32(bytes).toString(16).padStart(8, "0");
}

/** One record's bytes: a header line, the JSON, space padding. */
export function encodeRecord(seq: number, value: unknown): Uint8Array {
  const json = encoder.encode(JSON.stringify(value));
  const head = encoder.encode(
    `${MAGIC} seq=${seq} crc=${checksum(seq, json)} len=${json.length}\n`,
  );
  if (head.length + json.length + 2 > RECORD_SIZE) {
    throw new RangeError(`A lock record of ${json.length} bytes is too long`);
  }
  const record = new Uint8Array(RECORD_SIZE).fill(0x20);
  record.set(head);
  record.set(json, head.length);
  record[head.length + json.length] = 0x0a;
  record[RECORD_SIZE - 1] = 0x0a;
  return record;
}

function decodeRecord(
  bytes: Uint8Array,
): { seq: number; value: Record<string, unknown> } | undefined {
  const newline = bytes.indexOf(0x0a);
  if (newline < 0) return undefined;
  let head: string;
  try {
    head = decoder.decode(bytes.subarray(0, newline));
  } catch {
    return undefined;
  }
  const match =
    /^coolock-record 1 seq=(\d{1,15}) crc=([0-9a-f]{8}) len=(\d{1,4})$/
      .exec(head);
  if (!match) return undefined;
  const seq = Number(match[1]);
  const length = Number(match[3]);
  const json = bytes.subarray(newline + 1, newline + 1 + length);
  if (json.length !== length || checksum(seq, json) !== match[2]) {
    return undefined;
  }
  try {
    const value = JSON.parse(decoder.decode(json));
    return value && typeof value === "object" && !Array.isArray(value)
      ? { seq, value }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Reads a file's whole content from its start. */
function readAll(file: Deno.FsFile): Uint8Array {
  const { size } = file.statSync();
  const bytes = new Uint8Array(Math.min(size, 2 * RECORD_SIZE));
  file.seekSync(0, Deno.SeekMode.Start);
  let done = 0;
  while (done < bytes.length) {
    const read = file.readSync(bytes.subarray(done));
    if (read === null) break;
    done += read;
  }
  return bytes.subarray(0, done);
}

/** What the file's records say. */
export function readContents(file: Deno.FsFile): Contents {
  return contentsOf(readAll(file));
}

/** What a file's bytes say (also for tests that tear a record on purpose). */
export function contentsOf(bytes: Uint8Array): Contents {
  if (bytes.length === 0) return { kind: "empty" };
  let best: Contents | undefined;
  for (const at of [0, 1] as const) {
    const record = decodeRecord(
      bytes.subarray(at * RECORD_SIZE, (at + 1) * RECORD_SIZE),
    );
    if (record && (best?.kind !== "record" || record.seq > best.seq)) {
      best = { kind: "record", at, ...record };
    }
  }
  if (best) return best;
  if (bytes[0] === 0x7b /* { */) {
    try {
      const text = decoder.decode(bytes.subarray(0, RECORD_SIZE)).trim();
      const value = JSON.parse(text);
      if (value && typeof value === "object") return { kind: "legacy", value };
    } catch { /* not the old JSON either */ }
  }
  return { kind: "corrupt", why: "it holds no readable record" };
}

/**
 * Writes `value` as the file's next state: into the place that does not
 * hold the current one, in one write of one whole record. Resolves the new
 * contents.
 */
export function writeNext(
  file: Deno.FsFile,
  previous: Contents,
  value: Record<string, unknown>,
): Contents {
  const seq = previous.kind === "record" ? previous.seq + 1 : 1;
  // An old JSON line (or a damaged record) may sit at 0: write after it.
  const at: 0 | 1 = previous.kind === "record"
    ? (previous.at === 0 ? 1 : 0)
    : 1;
  const bytes = encodeRecord(seq, value);
  file.seekSync(at * RECORD_SIZE, Deno.SeekMode.Start);
  for (let done = 0; done < bytes.length;) {
    done += file.writeSync(bytes.subarray(done));
  }
  return { kind: "record", seq, at, value };
}

/** What a slot file says about its slot. */
export interface SlotStamp {
  /** The last fencing token handed out in this slot; 0 if never. */
  readonly fence: bigint;
  /** The owner of the last acquisition. */
  readonly owner?: string;
  /** The node of the last acquisition. */
  readonly node?: string;
  /** When it was acquired, in ms since the epoch (this host's clock). */
  readonly since?: number;
  /**
   * Until when a holder that died before recording its job's group keeps
   * the lock (renewed with the lease), in ms since the epoch.
   */
  readonly leaseUntil?: number;
  /** Until when nobody else may take the slot, in ms since the epoch. */
  readonly guardUntil: number;
  /** The job's process group, while it holds the slot. */
  readonly group?: GroupRecord;
  /** Given back by its holder (or freed by force): no holder to judge. */
  readonly released: boolean;
  /** Freed by `forceRelease`. */
  readonly forced?: boolean;
}

/** A fresh slot: never held. */
export const FRESH: SlotStamp = { fence: 0n, guardUntil: 0, released: true };

const isTime = (value: unknown) =>
  value === undefined || (typeof value === "number" && Number.isFinite(value));
const isText = (value: unknown) =>
  value === undefined || typeof value === "string";

function groupOf(value: unknown): GroupRecord | undefined | false {
  if (value === undefined) return undefined;
  if (!value || typeof value !== "object") return false;
  const { pgid, start, boot } = value as Record<string, unknown>;
  if (!Number.isSafeInteger(pgid) || (pgid as number) <= 1) return false;
  if (!isText(start) || !isText(boot)) return false;
  return { pgid: pgid as number, start: start as string, boot: boot as string };
}

/**
 * The slot stamp in `contents`, or a reason why it can't be trusted. An
 * old release's JSON counts as released: its flock was its only liveness.
 */
export function slotStampOf(contents: Contents): SlotStamp | string {
  if (contents.kind === "empty") return FRESH;
  if (contents.kind === "corrupt") return contents.why;
  const v = contents.value;
  if (typeof v.fence !== "string" || !/^\d{1,30}$/.test(v.fence)) {
    return "its fencing token is not a whole number";
  }
  const guardUntil = v.guardUntil ?? 0;
  if (!isTime(guardUntil) || !isTime(v.since) || !isTime(v.leaseUntil)) {
    return "its times are not numbers";
  }
  if (!isText(v.owner) || !isText(v.node)) return "its owner is not text";
  if (contents.kind === "legacy") {
    return {
      fence: BigInt(v.fence),
      owner: v.owner as string | undefined,
      guardUntil: guardUntil as number,
      released: true,
    };
  }
  const group = groupOf(v.group);
  if (group === false) return "its process group is malformed";
  if (typeof v.released !== "boolean") return "its state is malformed";
  return {
    fence: BigInt(v.fence),
    owner: v.owner as string | undefined,
    node: v.node as string | undefined,
    since: v.since as number | undefined,
    leaseUntil: v.leaseUntil as number | undefined,
    guardUntil: guardUntil as number,
    group,
    released: v.released,
    forced: v.forced === true ? true : undefined,
  };
}

/** A slot stamp as a record's JSON value. */
export function slotRecord(stamp: SlotStamp): Record<string, unknown> {
  return { ...stamp, fence: String(stamp.fence) };
}

/** What a slot's stamp means now, for someone who got its flock (or asks). */
export type Verdict =
  | { readonly free: true }
  | {
    readonly free: false;
    /** `held`: the job (or a lease) holds it; `guard`: guard time. */
    readonly state: "held" | "guard";
    /** When it ends by the clock, if it ends by the clock (ms since epoch). */
    readonly until?: number;
    /** The group whose end frees it, if a group holds it. */
    readonly group?: GroupRecord;
  };

/**
 * Reads a stamp's meaning, at `now`, as a contender that holds the slot's
 * flock (so the stamp's writer is gone): a guard keeps it; a holder that was
 * not released keeps it while its job's process group lives, or, if it died
 * before recording one, until its lease end.
 */
export async function judge(
  stamp: SlotStamp,
  now: number,
  groupAlive: (group: GroupRecord) => Promise<boolean>,
): Promise<Verdict> {
  if (!stamp.released) {
    if (stamp.group) {
      if (await groupAlive(stamp.group)) {
        return { free: false, state: "held", group: stamp.group };
      }
    } else if ((stamp.leaseUntil ?? 0) > now) {
      return { free: false, state: "held", until: stamp.leaseUntil };
    }
  }
  if (stamp.guardUntil > now) {
    return { free: false, state: "guard", until: stamp.guardUntil };
  }
  return { free: true };
}
