/**
 * The digests of `_crypto.ts` from `node:crypto`: the same bytes, computed synchronously on the
 * calling thread. Only Node loads this file (package.json `imports`, condition `node`); the
 * web-standard core never imports it.
 *
 * @module
 */

import * as nodeCrypto from "node:crypto";
import type * as Web from "./_crypto.ts";

const { createHash, createHmac, timingSafeEqual } = nodeCrypto;
// One-shot `crypto.hash` (Node 20.12+) costs half of a Hash object; older Node 20 lacks it.
const digestHex: (text: string) => string = typeof nodeCrypto.hash === "function"
  ? (text) => nodeCrypto.hash("sha256", text, "hex")
  : (text) => createHash("sha256").update(text).digest("hex");

/** SHA-256 of a string's UTF-8 bytes, as 64 lower-case hex characters. */
export const sha256Hex: typeof Web.sha256Hex = digestHex;

/** HMAC-SHA256 of a string's UTF-8 bytes, keyed by the UTF-8 bytes of `secret`. */
export const hmacSha256: typeof Web.hmacSha256 = (secret, text) => createHmac("sha256", secret).update(text).digest();

/** Checks a MAC from {@linkcode hmacSha256} in constant time. */
export const verifyHmacSha256: typeof Web.verifyHmacSha256 = (secret, text, mac) => {
  const expected = createHmac("sha256", secret).update(text).digest();
  return mac.length === expected.length && timingSafeEqual(expected, mac);
};
