/**
 * HMAC-SHA256 signatures on session tokens, with Web Crypto. The first secret signs; every
 * secret verifies, so secrets can rotate without signing anyone out.
 *
 * @module
 */

import { LruCache } from "./_cache.ts";
import { isToken } from "./token.ts";

/**
 * Secrets shorter than this are refused: the signature is only as strong as the secret.
 *
 * @example
 * ```ts
 * import { MIN_SECRET_LENGTH } from "./_signature.ts";
 *
 * const secret = "x".repeat(MIN_SECRET_LENGTH); // use a random one, e.g. 32 bytes in base64
 * console.assert(secret.length === 32);
 * ```
 */
export const MIN_SECRET_LENGTH = 32;

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
// Code unit -> 6-bit value, -1 outside the base64url alphabet (so `+`, `/`, `=` and spaces fail).
const DECODE = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) DECODE[ALPHABET.charCodeAt(i)] = i;
const MAC_BYTES = 32;
// 32 bytes are 43 characters: 42 full ones, and a last one whose 2 low bits are padding.
const MAC_CHARS = 43;

const keys = new Map<string, Promise<CryptoKey>>();

function keyFor(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
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
 * Checks secrets once, up front.
 *
 * @param secrets The secrets, the signing one first.
 * @throws {RangeError} When a secret is shorter than {@linkcode MIN_SECRET_LENGTH} characters or
 *   the list is empty.
 * @example
 * ```ts
 * import { checkSecrets } from "./_signature.ts";
 *
 * checkSecrets(["a-new-secret-of-at-least-32-chars!", "the-old-secret-still-verifying-ok"]);
 * try {
 *   checkSecrets(["short"]);
 *   throw new Error("unreachable");
 * } catch (error) {
 *   console.assert(error instanceof RangeError);
 * }
 * ```
 */
export function checkSecrets(secrets: readonly string[]): void {
  if (secrets.length === 0) throw new RangeError("Cannot sign cookies: secrets is empty");
  for (const [i, s] of secrets.entries()) {
    if (typeof s !== "string" || s.length < MIN_SECRET_LENGTH) {
      throw new RangeError(
        `Cannot sign cookies: secrets[${i}] is ${
          typeof s === "string" ? s.length : typeof s
        } characters, under ${MIN_SECRET_LENGTH}`,
      );
    }
  }
}

/**
 * Signs a token with HMAC-SHA256.
 *
 * @param token The token, from `generateToken()`.
 * @param secret The signing secret (the first of the list).
 * @returns `token.signature`, the signature in canonical base64url without padding (43 characters).
 * @example
 * ```ts
 * import { sign, unsign } from "./_signature.ts";
 * import { generateToken } from "./token.ts";
 *
 * const secret = "s".repeat(32);
 * const token = generateToken();
 * const value = await sign(token, secret);
 * console.assert(value.length === 87 && (await unsign(value, [secret])) === token);
 * ```
 */
export async function sign(token: string, secret: string): Promise<string> {
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await keyFor(secret), new TextEncoder().encode(token)));
  let out = "";
  for (let i = 0; i < 30; i += 3) {
    const n = (mac[i]! << 16) | (mac[i + 1]! << 8) | mac[i + 2]!;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const n = (mac[30]! << 8) | mac[31]!;
  return `${token}.${out}${ALPHABET[n >> 10]!}${ALPHABET[(n >> 4) & 63]!}${ALPHABET[(n << 2) & 63]!}`;
}

/**
 * Verifies a signed value in constant time (Web Crypto's `verify`). Only the exact spelling
 * {@linkcode sign} produces verifies: the signature must be 43 base64url characters with a
 * canonical last character, so the standard alphabet (`+`, `/`), padding, whitespace or other
 * spellings of the same bytes are refused before any HMAC runs. Values verified before are
 * remembered (bounded, keyed by the whole value), so a returning client costs no HMAC while the
 * secret that signed it is still listed.
 *
 * @param value The cookie value.
 * @param secrets The secrets that may have signed it.
 * @returns The token, or `null` when the value is malformed or no secret signed it.
 * @example
 * ```ts
 * import { sign, unsign } from "./_signature.ts";
 * import { generateToken } from "./token.ts";
 *
 * const [oldSecret, newSecret] = ["o".repeat(32), "n".repeat(32)];
 * const value = await sign(generateToken(), oldSecret);
 * console.assert((await unsign(value, [newSecret, oldSecret])) !== null);
 * console.assert((await unsign(value, [newSecret])) === null);
 * console.assert((await unsign(`${value}=`, [oldSecret])) === null);
 * ```
 */
export async function unsign(value: string, secrets: readonly string[]): Promise<string | null> {
  // The cache is keyed by the whole signed value, so only an exact, once-valid value can hit it.
  const known = verified.get(value);
  if (known && secrets.includes(known.secret)) return known.token;
  const dot = value.indexOf(".");
  if (dot < 0) return null;
  const token = value.slice(0, dot);
  const mac = decodeMac(value, dot + 1);
  if (!mac || !isToken(token)) return null;
  const data = new TextEncoder().encode(token);
  for (const secret of secrets) {
    if (await crypto.subtle.verify("HMAC", await keyFor(secret), mac, data)) {
      verified.set(value, { token, secret });
      return token;
    }
  }
  return null;
}

const verified = new LruCache<string, { token: string; secret: string }>(10_000);

/**
 * The 32 bytes of a signature that runs from `start` to the end of `text`, or `null` unless it is
 * the one canonical spelling: exactly 43 base64url characters, the last one's 2 padding bits zero.
 */
function decodeMac(text: string, start: number): Uint8Array<ArrayBuffer> | null {
  if (text.length - start !== MAC_CHARS) return null;
  const mac = new Uint8Array(MAC_BYTES);
  let bits = 0;
  let buffer = 0;
  let j = 0;
  for (let i = start; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const sextet = code < 128 ? DECODE[code]! : -1;
    if (sextet < 0) return null;
    buffer = ((buffer << 6) | sextet) & 0xffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      mac[j++] = (buffer >> bits) & 0xff;
    }
  }
  // 43 × 6 = 258 bits: 2 left over, which a canonical encoding leaves at zero.
  return (buffer & ((1 << bits) - 1)) === 0 ? mac : null;
}
