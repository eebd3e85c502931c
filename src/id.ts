/**
 * Session ids: what the client holds, and the hash the database keeps.
 *
 * @module
 */

import { encodeBase64url } from "./_base64url.ts";
import { LruCache } from "./_cache.ts";
import { sha256Hex } from "./_crypto.ts";

const ID_BYTES = 32;
// 32 bytes are 43 base64url characters; the last one carries 4 bits, so only 16 letters can end a
// canonical id. Checking that keeps one id from having several spellings.
const ID_SHAPE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/**
 * Makes a new session id: 256 bits from `crypto.getRandomValues`, base64url without padding
 * (43 characters).
 *
 * @returns A fresh id.
 * @example
 * ```ts
 * import { generateId, isId } from "./id.ts";
 *
 * const id = generateId();
 * console.assert(id.length === 43 && isId(id));
 * ```
 */
export function generateId(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(ID_BYTES)));
}

/**
 * Tells whether a value has the exact shape of an id we issue. Anything else is never sent to
 * the database.
 *
 * @param value Any value, typically a cookie value.
 * @returns `true` for a canonical 43-character base64url id.
 * @example
 * ```ts
 * import { isId } from "./id.ts";
 *
 * console.assert(!isId("' OR 1=1 --"));
 * ```
 */
export function isId(value: unknown): value is string {
  return typeof value === "string" && ID_SHAPE.test(value);
}

/**
 * The database key for an id: the lower-case hex SHA-256 of its ASCII text, exactly 64
 * characters. A leaked table therefore holds no usable id.
 *
 * @param id An id from {@linkcode generateId}.
 * @returns 64 lower-case hex characters.
 * @example
 * ```ts
 * import { generateId, handleOf } from "./id.ts";
 *
 * const key = await handleOf(generateId());
 * console.assert(/^[0-9a-f]{64}$/.test(key));
 * ```
 */
export async function handleOf(id: string): Promise<string> {
  let key = keys.get(id);
  if (key === undefined) {
    key = await sha256Hex(id);
    keys.set(id, key);
  }
  return key;
}

// Returning sessions skip the digest: a Web Crypto digest is an asynchronous job (on Node a
// thread-pool round trip, 15-30 µs of main thread), and even node:crypto's hash plus HMAC cost
// 6 µs per request against 0.5 µs for the two lookups. Bounded, so memory stays flat however many
// sessions pass through.
const keys = new LruCache<string, string>(10_000);
