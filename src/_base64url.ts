/**
 * Base64url without padding (RFC 4648 §5), the one spelling ids and signatures have: encoded
 * here, and decoded only when it is that exact spelling.
 *
 * @module
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
// Code unit -> 6-bit value, -1 outside the alphabet (so `=`, spaces and the other alphabet's two fail).
const DECODE = table(ALPHABET);
const DECODE_STANDARD = table("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");

function table(alphabet: string): Int8Array {
  const decode = new Int8Array(128).fill(-1);
  for (let i = 0; i < 64; i++) decode[alphabet.charCodeAt(i)] = i;
  return decode;
}

/**
 * Encodes bytes as base64url without padding.
 *
 * @param bytes Any bytes.
 * @returns `ceil(4n / 3)` characters of `A–Z a–z 0–9 - _`.
 * @example
 * ```ts
 * import { encodeBase64url } from "./_base64url.ts";
 *
 * console.assert(encodeBase64url(new Uint8Array([0xfb, 0xff])) === "-_8");
 * ```
 */
export function encodeBase64url(bytes: Uint8Array): string {
  let out = "";
  const whole = bytes.length - (bytes.length % 3);
  for (let i = 0; i < whole; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  if (bytes.length - whole === 1) {
    const n = bytes[whole]!;
    out += ALPHABET[n >> 2]! + ALPHABET[(n << 4) & 63]!;
  } else if (bytes.length - whole === 2) {
    const n = (bytes[whole]! << 8) | bytes[whole + 1]!;
    out += ALPHABET[n >> 10]! + ALPHABET[(n >> 4) & 63]! + ALPHABET[(n << 2) & 63]!;
  }
  return out;
}

/**
 * Decodes `text` from `start` to its end, or answers `null` unless it is the one canonical
 * spelling {@linkcode encodeBase64url} writes: base64url characters only, no padding, and the
 * unused low bits of the last character zero (a lenient decoder reads 4 spellings of 32 bytes).
 *
 * @param text The text holding the encoding.
 * @param start Where the encoding starts.
 * @returns The bytes, or `null`.
 * @example
 * ```ts
 * import { decodeBase64url } from "./_base64url.ts";
 *
 * console.assert(decodeBase64url("-_8")?.join() === "251,255");
 * console.assert(decodeBase64url("-_9") === null); // same bytes, a second spelling
 * console.assert(decodeBase64url("+/8=") === null);
 * ```
 */
export function decodeBase64url(text: string, start = 0): Uint8Array<ArrayBuffer> | null {
  return decodeWith(DECODE, text, start);
}

/**
 * The same for the standard alphabet (`+` and `/`), still without padding: how cookie-signature
 * (express-session) writes its HMACs.
 *
 * @param text The text holding the encoding.
 * @param start Where the encoding starts.
 * @returns The bytes, or `null` unless it is the one canonical spelling.
 */
export function decodeBase64(text: string, start = 0): Uint8Array<ArrayBuffer> | null {
  return decodeWith(DECODE_STANDARD, text, start);
}

function decodeWith(decode: Int8Array, text: string, start: number): Uint8Array<ArrayBuffer> | null {
  const chars = text.length - start;
  if (chars % 4 === 1) return null;
  const out = new Uint8Array((chars * 6) >> 3);
  let bits = 0;
  let buffer = 0;
  let j = 0;
  for (let i = start; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const sextet = code < 128 ? decode[code]! : -1;
    if (sextet < 0) return null;
    buffer = ((buffer << 6) | sextet) & 0xffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (buffer >> bits) & 0xff;
    }
  }
  // The 2 or 4 bits left over are padding, which a canonical encoding leaves at zero.
  return (buffer & ((1 << bits) - 1)) === 0 ? out : null;
}
