/**
 * The consul backend's KV keys, and values as `/v1/txn` takes them.
 *
 * @module
 */

/**
 * The KV key of a lock: `coolock/` and the name's UTF-8 bytes, `[A-Za-z0-9-]`
 * as they are and every other byte as `_XX`. Consul 1.21.5 rejects keys
 * outside `[a-zA-Z0-9,_./\-?&=]` or with `..`, so neither `%` nor `.`
 * appear; the npm client's `encodeURIComponent` of the whole key is undone
 * by Consul before lookup.
 *
 * @example
 * ```ts
 * import { consulKey } from "./keys.ts";
 * console.log(consulKey("db/backup.v2")); // coolock/db_2Fbackup_2Ev2
 * ```
 */
export function consulKey(name: string): string {
  let out = "coolock/";
  for (const byte of new TextEncoder().encode(name)) {
    const char = String.fromCharCode(byte);
    out += /[A-Za-z0-9-]/.test(char)
      ? char
      : `_${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * Base64 of the UTF-8 text, as `/v1/txn` takes values.
 *
 * @example
 * ```ts
 * import { base64 } from "./keys.ts";
 * console.log(base64("é")); // w6k=
 * ```
 */
export function base64(value: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(value)) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary);
}
