/**
 * HMAC-SHA256 signatures on session ids (Web Crypto, or `node:crypto` under Node's `node`
 * condition: see `_crypto.ts`). The first secret signs; every secret verifies, so secrets can
 * rotate without signing anyone out.
 *
 * @module
 */

import { decodeBase64url, encodeBase64url } from "./_base64url.ts";
import { LruCache } from "./_cache.ts";
import { hmacSha256, verifyHmacSha256 } from "./_crypto.ts";
import { isId } from "./id.ts";

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

// 32 bytes are 43 characters: 42 full ones, and a last one whose 2 low bits are padding.
const MAC_CHARS = 43;

// What to do, in every message about a bad secret.
const MAKE = "e.g. SESSION_SECRET=$(openssl rand -base64 32)";
const FIX = `set it to at least ${MIN_SECRET_LENGTH} random characters, ${MAKE}`;

/**
 * Checks secrets once, up front, saying what was received and how to make a good one.
 *
 * @param secrets The secrets, the signing one first.
 * @throws {TypeError} When `secrets` is not an array or a secret is not a string (an unset
 *   environment variable reads as `undefined`).
 * @throws {RangeError} When the list is empty or a secret is shorter than
 *   {@linkcode MIN_SECRET_LENGTH} characters.
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
  if (!Array.isArray(secrets)) {
    throw new TypeError(
      `Cannot sign cookies: secrets is ${describe(secrets)}, not an array; pass [secret], the signing secret first`,
    );
  }
  if (secrets.length === 0) {
    throw new RangeError(
      `Cannot sign cookies: secrets is an empty array; list at least one secret of ${MIN_SECRET_LENGTH} or more random characters (${MAKE}), or leave secrets out for unsigned cookies`,
    );
  }
  for (const [i, s] of secrets.entries()) {
    if (typeof s !== "string") {
      const unset = s === undefined || s === null ? " (an unset environment variable?)" : "";
      throw new TypeError(`Cannot sign cookies: secrets[${i}] is ${describe(s)}${unset}, not a string; ${FIX}`);
    }
    if (s.length === 0) {
      throw new RangeError(
        `Cannot sign cookies: secrets[${i}] is an empty string (an unset environment variable?); ${FIX}`,
      );
    }
    if (s.length < MIN_SECRET_LENGTH) {
      throw new RangeError(
        `Cannot sign cookies: secrets[${i}] is ${s.length} characters, under ${MIN_SECRET_LENGTH}; ${FIX}`,
      );
    }
  }
}

/** A value's kind for a message, never its content: a secret must not reach a log. */
function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === "string") return `a string of ${value.length} characters`;
  if (typeof value === "object") return `an object`;
  return /^[aeiou]/.test(typeof value) ? `an ${typeof value}` : `a ${typeof value}`;
}

/**
 * Signs an id with HMAC-SHA256.
 *
 * @param id The id, from `generateId()`.
 * @param secret The signing secret (the first of the list).
 * @returns `id.signature`, the signature in canonical base64url without padding (43 characters).
 * @example
 * ```ts
 * import { sign, unsign } from "./_signature.ts";
 * import { generateId } from "./id.ts";
 *
 * const secret = "s".repeat(32);
 * const id = generateId();
 * const value = await sign(id, secret);
 * console.assert(value.length === 87 && (await unsign(value, [secret])) === id);
 * ```
 */
export async function sign(id: string, secret: string): Promise<string> {
  return `${id}.${encodeBase64url(await hmacSha256(secret, id))}`;
}

/**
 * Verifies a signed value in constant time. Only the exact spelling
 * {@linkcode sign} produces verifies: the signature must be 43 base64url characters with a
 * canonical last character, so the standard alphabet (`+`, `/`), padding, whitespace or other
 * spellings of the same bytes are refused before any HMAC runs. Values verified before are
 * remembered (bounded, keyed by the whole value), so a returning client costs no HMAC while the
 * secret that signed it is still listed.
 *
 * @param value The cookie value.
 * @param secrets The secrets that may have signed it.
 * @returns The id, or `null` when the value is malformed or no secret signed it.
 * @example
 * ```ts
 * import { sign, unsign } from "./_signature.ts";
 * import { generateId } from "./id.ts";
 *
 * const [oldSecret, newSecret] = ["o".repeat(32), "n".repeat(32)];
 * const value = await sign(generateId(), oldSecret);
 * console.assert((await unsign(value, [newSecret, oldSecret])) !== null);
 * console.assert((await unsign(value, [newSecret])) === null);
 * console.assert((await unsign(`${value}=`, [oldSecret])) === null);
 * ```
 */
export async function unsign(value: string, secrets: readonly string[]): Promise<string | null> {
  // Keyed by the whole signed value, so only an exact, once-valid value can hit.
  const known = verified.get(value);
  if (known && secrets.includes(known.secret)) return known.id;
  const dot = value.indexOf(".");
  if (dot < 0 || value.length - dot - 1 !== MAC_CHARS) return null;
  const id = value.slice(0, dot);
  const mac = decodeBase64url(value, dot + 1);
  if (!mac || !isId(id)) return null;
  for (const secret of secrets) {
    if (await verifyHmacSha256(secret, id, mac)) {
      verified.set(value, { id, secret });
      return id;
    }
  }
  return null;
}

const verified = new LruCache<string, { id: string; secret: string }>(10_000);
