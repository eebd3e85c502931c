/**
 * HMAC-SHA256 signatures on session tokens, with Web Crypto. The first secret signs; every
 * secret verifies, so secrets can rotate without signing anyone out.
 *
 * @module
 */

import { LruCache } from "./_cache.ts";
import { isToken } from "./token.ts";

/** Secrets shorter than this are refused: the signature is only as strong as the secret. */
export const MIN_SECRET_LENGTH = 32;
const SIGNATURE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const keys = new Map<string, Promise<CryptoKey>>();

function keyFor(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    // A few secrets per deployment; the bound only stops a misuse from growing without limit.
    if (keys.size > 64) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

/**
 * Checks secrets once, up front.
 *
 * @throws {RangeError} When a secret is shorter than 32 characters or the list is empty.
 */
export function checkSecrets(secrets: readonly string[]): void {
  if (secrets.length === 0) throw new RangeError("Cannot sign cookies: secrets is empty");
  for (const [i, s] of secrets.entries()) {
    if (typeof s !== "string" || s.length < MIN_SECRET_LENGTH) {
      throw new RangeError(`Cannot sign cookies: secrets[${i}] is ${typeof s === "string" ? s.length : typeof s} characters, under ${MIN_SECRET_LENGTH}`);
    }
  }
}

/**
 * @returns `token.signature`, the signature base64url like the token.
 */
export async function sign(token: string, secret: string): Promise<string> {
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await keyFor(secret), new TextEncoder().encode(token)));
  let binary = "";
  for (const b of mac) binary += String.fromCharCode(b);
  return `${token}.${btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

/**
 * Verifies a signed value in constant time (Web Crypto's `verify`).
 *
 * @returns The token, or `null` when the value is malformed or no secret signed it.
 */
export async function unsign(value: string, secrets: readonly string[]): Promise<string | null> {
  // A value verified before, by a secret still in the list, needs no second HMAC. The cache is
  // keyed by the whole signed value, so only an exact, once-valid value can hit it.
  const known = verified.get(value);
  if (known && secrets.includes(known.secret)) return known.token;
  const dot = value.indexOf(".");
  const token = value.slice(0, dot);
  const signature = value.slice(dot + 1);
  if (dot < 0 || !isToken(token) || !SIGNATURE.test(signature)) return null;
  const mac = Uint8Array.from(atob(signature.replace(/-/g, "+").replace(/_/g, "/") + "="), (c) => c.charCodeAt(0));
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
