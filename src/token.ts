/**
 * Session tokens: what the client holds, and the hash the database keeps.
 *
 * @module
 */

import { encodeBase64url } from "./_base64url.ts";
import { LruCache } from "./_cache.ts";
import { sha256Hex } from "./_crypto.ts";

const TOKEN_BYTES = 32;
// 32 bytes are 43 base64url characters; the last one carries 4 bits, so only 16 letters can end a
// canonical token. Checking that keeps one token from having several spellings.
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/**
 * Makes a new session token: 256 bits from `crypto.getRandomValues`, base64url without padding
 * (43 characters).
 *
 * @returns A fresh token.
 * @example
 * ```ts
 * import { generateToken, isToken } from "./token.ts";
 *
 * const token = generateToken();
 * console.assert(token.length === 43 && isToken(token));
 * ```
 */
export function generateToken(): string {
  return encodeBase64url(crypto.getRandomValues(new Uint8Array(TOKEN_BYTES)));
}

/**
 * Tells whether a value has the exact shape of a token we issue. Anything else is never sent to
 * the database.
 *
 * @param value Any value, typically a cookie value.
 * @returns `true` for a canonical 43-character base64url token.
 * @example
 * ```ts
 * import { isToken } from "./token.ts";
 *
 * console.assert(!isToken("' OR 1=1 --"));
 * ```
 */
export function isToken(value: unknown): value is string {
  return typeof value === "string" && TOKEN_SHAPE.test(value);
}

/**
 * The database key for a token: the lower-case hex SHA-256 of its ASCII text, exactly 64
 * characters. A leaked table therefore holds no usable token.
 *
 * @param token A token from {@linkcode generateToken}.
 * @returns 64 lower-case hex characters.
 * @example
 * ```ts
 * import { generateToken, hashToken } from "./token.ts";
 *
 * const key = await hashToken(generateToken());
 * console.assert(/^[0-9a-f]{64}$/.test(key));
 * ```
 */
export async function hashToken(token: string): Promise<string> {
  let key = keys.get(token);
  if (key === undefined) {
    key = await sha256Hex(token);
    keys.set(token, key);
  }
  return key;
}

// Returning sessions skip the digest: a Web Crypto digest is an asynchronous job (on Node a
// thread-pool round trip, 15-30 µs of main thread), and even node:crypto's hash plus HMAC cost
// 6 µs per request against 0.5 µs for the two lookups. Bounded, so memory stays flat however many
// sessions pass through.
const keys = new LruCache<string, string>(10_000);
