/**
 * The two digests sessions need, on Web Crypto: SHA-256 of an id (its database key) and
 * HMAC-SHA256 of an id (its cookie signature). Strings are hashed as UTF-8.
 *
 * This is the module every runtime gets, except Node: in the built package `id.js` and
 * `_signature.js` import `#crypto`, which package.json's `imports` resolves to `_crypto_node.ts`
 * under the `node` condition (same bytes from `node:crypto`, synchronously) and to this file
 * everywhere else. Both export the same names with the same types, hence the `T | Promise<T>`
 * results: Node's are plain values, these are always promises.
 *
 * @module
 */

const encoder = new TextEncoder();
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const keys = new Map<string, Promise<CryptoKey>>();

function keyFor(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    // A few secrets per deployment; the bound only stops a misuse from growing without limit.
    if (keys.size > 64) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

/**
 * SHA-256 of a string's UTF-8 bytes.
 *
 * @param text The text to hash.
 * @returns 64 lower-case hex characters.
 * @example
 * ```ts
 * import { sha256Hex } from "./_crypto.ts";
 *
 * console.assert((await sha256Hex("abc")).startsWith("ba7816bf"));
 * ```
 */
export function sha256Hex(text: string): string | Promise<string> {
  return crypto.subtle.digest("SHA-256", encoder.encode(text)).then(toHex);
}

function toHex(digest: ArrayBuffer): string {
  let out = "";
  for (const b of new Uint8Array(digest)) out += HEX[b]!;
  return out;
}

/**
 * HMAC-SHA256 of a string's UTF-8 bytes, keyed by the UTF-8 bytes of `secret`.
 *
 * @param secret The key.
 * @param text The message.
 * @returns The 32-byte MAC.
 * @example
 * ```ts
 * import { hmacSha256 } from "./_crypto.ts";
 *
 * console.assert((await hmacSha256("key", "message")).length === 32);
 * ```
 */
export function hmacSha256(secret: string, text: string): Uint8Array | Promise<Uint8Array> {
  return keyFor(secret).then(async (key) =>
    new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(text)))
  );
}

/**
 * Checks a MAC from {@linkcode hmacSha256} in constant time.
 *
 * @param secret The key.
 * @param text The message.
 * @param mac The MAC to check.
 * @returns Whether `mac` is the HMAC-SHA256 of `text` under `secret`.
 * @example
 * ```ts
 * import { hmacSha256, verifyHmacSha256 } from "./_crypto.ts";
 *
 * const mac = new Uint8Array(await hmacSha256("key", "message"));
 * console.assert(await verifyHmacSha256("key", "message", mac));
 * console.assert(!(await verifyHmacSha256("key", "massage", mac)));
 * ```
 */
export function verifyHmacSha256(
  secret: string,
  text: string,
  mac: Uint8Array<ArrayBuffer>,
): boolean | Promise<boolean> {
  return keyFor(secret).then((key) => crypto.subtle.verify("HMAC", key, mac, encoder.encode(text)));
}
