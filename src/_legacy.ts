/**
 * Lazy migration from express-session + connect-pg-simple: a request that brings a valid
 * express-session cookie and no pgsession cookie has its old session moved into a new pgsession
 * session, in one statement that deletes the old row and inserts the new one.
 *
 * The request lifecycle calls three functions: {@linkcode compileLegacy} once (validates the
 * options, builds the SQL), {@linkcode readLegacyId} per request (verifies the old cookie's
 * signature; no SQL), and {@linkcode adoptLegacy} when that found one (the SQL, through the
 * functions it is given).
 *
 * The new session's id is derived from the old session id: HMAC-SHA256 under the legacy
 * secret that verified the cookie, 256 bits, of a domain-separated message. So every request
 * that brings the same old cookie arrives at the same new session: two concurrent requests of one
 * browser make one session (the one whose statement runs second finds the old row gone and opens
 * the session the first one made), and a request that failed after the move (its response never
 * carried the new cookie) is recovered by the next one. The derived id is as secret as the
 * express-session cookie it replaces (the old id plus the old secret), and dies with the session
 * or its first `regenerate()`.
 *
 * @module
 */

import type { Row } from "./client.ts";
import { encodeData } from "./_codec.ts";
import { decodeBase64, encodeBase64url } from "./_base64url.ts";
import { readCookies } from "./cookie.ts";
import type { Logger } from "./errors.ts";
import type { SessionsOptions } from "./sessions.ts";
import { legacyStatements, quoteTable } from "./_sql.ts";

/** The `legacy` option of `createSessions`: where express-session + connect-pg-simple kept their sessions. */
export type LegacyOptions = NonNullable<SessionsOptions["legacy"]>;

/** The legacy options, validated, with their SQL; made by {@linkcode compileLegacy}. */
export interface CompiledLegacy {
  /** The old cookie's name. */
  readonly name: string;
  /** The old cookie's `Path`. */
  readonly path: string;
  /** The old cookie's `Domain`, or `undefined`. */
  readonly domain: string | undefined;
  /** The Max-Age of the new session's cookie: the store's first lifetime. */
  readonly maxAge: number;
  /** The most payload bytes the store accepts. */
  readonly maxDataBytes: number;
  /** `$1` sid → `sess` (as text) of a live old session. */
  readonly readSql: string;
  /**
   * `$1` sid, `$2` sess as read (compare-and-set), `$3` the new session's key, `$4` its CBOR
   * payload (NULL: only delete) → `deleted`, `inserted` (0 or 1 each).
   */
  readonly adoptSql: string;
  /** The secrets' HMAC keys, imported on first use. */
  keys(): Promise<CryptoKey[]>;
}

/** A verified old cookie: the express-session id and the pgsession id derived from it. */
export interface LegacyId {
  /** The express-session session id (a credential: never logged). */
  readonly sid: string;
  /** The pgsession id of the session it moves (or moved) to. */
  readonly id: string;
}

/** What the request lifecycle gives {@linkcode adoptLegacy}: the store's statements and checks. */
export interface LegacyIo {
  /** Runs one statement on the store's connection (the store's table); failures are `SessionError`s. */
  run(what: string, text: string, params: unknown[]): Promise<Row[]>;
  /** The database key of an id (`handleOf`). */
  hash(id: string): Promise<string>;
  /** Whether a live pgsession session has this id (`store.exists`). */
  exists(id: string): Promise<boolean>;
  /** Where a skipped migration is reported. */
  logger: Logger;
}

/** What a request with a verified old cookie gets. */
export interface Adoption {
  /** The live pgsession session to open (its cookie must be set), or `null` for a fresh one. */
  id: string | null;
  /** Clear the old cookie: its session was moved, or is gone. */
  clear: boolean;
}

const NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// deno-lint-ignore no-control-regex
const ATTRIBUTE = /^[^\x00-\x1f\x7f;,]*$/;
// express-session's ids are 32 base64url characters; a custom `genid` may make others. Control
// characters (NUL is an SQL error in a text parameter) and long values are never sent.
// deno-lint-ignore no-control-regex
const SID = /^[^\x00-\x1f\x7f]{1,256}$/;
const MAX_ATTEMPTS = 3;
// pgsession's own flash messages live under this key; Session.set() refuses it.
const FLASH_KEY = "__flash";
// Separates the derived id from the signatures the same secret makes.
const DERIVE_PREFIX = "pgsession: id of express-session session\0";

/**
 * Validates the legacy options once and builds their SQL.
 *
 * @param options The old cookie, secrets and table.
 * @param target The store's resolved options : pgsession's table and lifetimes.
 * @returns The compiled options.
 * @throws {TypeError} For a bad cookie name, path, domain or table name, no secrets, an empty
 *   secret, or the old table being pgsession's own.
 * @example
 * ```ts
 * import { compileLegacy } from "./_legacy.ts";
 *
 * const target = { table: "pgsession", ttl: 604_800, absoluteTtl: 2_592_000, maxDataBytes: 65_536 };
 * const legacy = compileLegacy({ secrets: ["keyboard cat"] }, target);
 * console.assert(legacy.name === "connect.sid" && legacy.path === "/");
 * ```
 */
export function compileLegacy(
  options: LegacyOptions,
  target: { table: string; ttl: number; absoluteTtl: number | null; maxDataBytes: number },
): CompiledLegacy {
  if (!options || typeof options !== "object") {
    throw new TypeError("Cannot migrate from express-session: legacy must be an object");
  }
  const name = options.cookie ?? "connect.sid";
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new TypeError(`Cannot migrate from express-session: cookie ${JSON.stringify(name)} is not a cookie name`);
  }
  const path = options.path ?? "/";
  if (typeof path !== "string" || !path.startsWith("/") || !ATTRIBUTE.test(path)) {
    throw new TypeError(`Cannot migrate from express-session: path ${JSON.stringify(path)} must start with /`);
  }
  const domain = options.domain || undefined;
  if (domain !== undefined && (typeof domain !== "string" || !ATTRIBUTE.test(domain))) {
    throw new TypeError(`Cannot migrate from express-session: domain ${JSON.stringify(domain)} is not a domain`);
  }
  const secrets = Array.isArray(options.secrets) ? [...options.secrets] : [];
  if (secrets.length === 0) {
    throw new TypeError(
      "Cannot migrate from express-session: legacy.secrets is empty; give express-session's secret option",
    );
  }
  for (const [i, secret] of secrets.entries()) {
    if (typeof secret !== "string" || secret.length === 0) {
      throw new TypeError(
        `Cannot migrate from express-session: legacy.secrets[${i}] is ${
          typeof secret === "string" ? "empty" : `a ${typeof secret}`
        }, expected express-session's secret`,
      );
    }
  }
  const table = options.table ?? "session";
  const old = quoteTable(table);
  const own = quoteTable(target.table);
  if (old.replace(/^"public"\./, "") === own.replace(/^"public"\./, "")) {
    throw new TypeError(
      `Cannot migrate from express-session: table ${
        JSON.stringify(table)
      } is also pgsession's table; give pgsession another one, e.g. store: { table: "pgsession" }`,
    );
  }
  const statements = legacyStatements(table, target);
  let keys: Promise<CryptoKey[]> | null = null;
  return Object.freeze({
    name,
    path,
    domain,
    maxAge: Math.min(target.ttl, target.absoluteTtl ?? Infinity),
    maxDataBytes: target.maxDataBytes,
    ...statements,
    keys(): Promise<CryptoKey[]> {
      keys ??= Promise.all(
        secrets.map((secret) =>
          crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
            "sign",
            "verify",
          ])
        ),
      );
      return keys;
    },
  });
}

/**
 * The express-session id of the request's old cookie, when a legacy secret signed it. No SQL.
 * The value is read as express-session reads it (URL-decoded, `s:` then `<sid>.<signature>`,
 * the signature cookie-signature's base64 HMAC-SHA256 without padding) and verified with Web
 * Crypto, which compares in constant time; only the canonical spelling of a signature verifies.
 * Of several cookies with the name, the first four are tried in order.
 *
 * @param request The request.
 * @param legacy From {@linkcode compileLegacy}.
 * @returns The old id and the derived pgsession id, or `null` (no, unsigned, malformed or
 *   forged cookie).
 * @example
 * ```ts
 * import { compileLegacy, readLegacyId } from "./_legacy.ts";
 *
 * const target = { table: "pgsession", ttl: 3600, absoluteTtl: null, maxDataBytes: 65_536 };
 * const legacy = compileLegacy({ secrets: ["keyboard cat"] }, target);
 * const forged = new Request("http://localhost/", { headers: { cookie: "connect.sid=s%3Aabc.AAAA" } });
 * console.assert((await readLegacyId(forged, legacy)) === null);
 * ```
 */
export async function readLegacyId(request: Request, legacy: CompiledLegacy): Promise<LegacyId | null> {
  const values = readCookies(request.headers.get("cookie"), legacy.name, 4);
  for (const raw of values) {
    const value = decodeValue(raw);
    if (!value.startsWith("s:")) continue; // express-session ignores unsigned values too
    const dot = value.lastIndexOf(".");
    const sid = value.slice(2, dot);
    if (dot < 3 || !SID.test(sid)) continue;
    const mac = decodeMac(value, dot + 1);
    if (!mac) continue;
    const data = new TextEncoder().encode(sid);
    for (const key of await legacy.keys()) {
      if (await crypto.subtle.verify("HMAC", key, mac, data)) return { sid, id: await deriveId(key, sid) };
    }
  }
  return null;
}

/**
 * Moves the old session into pgsession's table, or finds where it went. Sends a `SELECT` of the
 * old row; then, when it is live, one statement that deletes it (only as read: a concurrent change
 * makes it read again, at most 3 times) and inserts its data, minus express-session's `cookie`,
 * as a new session under the derived id. When the old row is gone (moved by a concurrent or
 * earlier request, expired, destroyed), a `SELECT` tells whether the derived session lives. Old
 * data that is empty once `cookie` is dropped is deleted and not moved; data that does not fit
 * `maxDataBytes` stays where it is (logged), with the old cookie.
 *
 * @param id From {@linkcode readLegacyId}.
 * @param legacy From {@linkcode compileLegacy}.
 * @param io The store's statements.
 * @returns The session to open and whether to clear the old cookie.
 * @throws {SessionError} When the database fails (from `io.run`); nothing was changed then.
 */
export async function adoptLegacy(found: LegacyId, legacy: CompiledLegacy, io: LegacyIo): Promise<Adoption> {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const [row] = await io.run("read the express-session session", legacy.readSql, [found.sid]);
    if (!row) return { id: (await io.exists(found.id)) ? found.id : null, clear: true };
    const text = String(row.sess);
    const data = legacyData(text, io.logger);
    let payload: Uint8Array | null = null;
    if (data.size > 0) {
      try {
        payload = encodeData(data);
      } catch (error) {
        io.logger.warn("express-session session was not moved: its data cannot be encoded", {
          reason: (error as Error).message,
        });
        return { id: null, clear: false };
      }
      if (payload.byteLength > legacy.maxDataBytes) {
        io.logger.warn("express-session session was not moved: its data is over maxDataBytes", {
          bytes: payload.byteLength,
          maxDataBytes: legacy.maxDataBytes,
        });
        return { id: null, clear: false };
      }
    }
    const [result] = await io.run("move the express-session session", legacy.adoptSql, [
      found.sid,
      text,
      await io.hash(found.id),
      payload,
    ]);
    if (Number(result?.deleted) !== 1) continue; // changed or gone since the read: read again
    if (payload === null) return { id: null, clear: true };
    if (Number(result?.inserted) === 1) return { id: found.id, clear: true };
    // The derived key was taken: this old session was moved before and its row came back (an
    // express-session instance still running saved it again). The moved session wins.
    return { id: (await io.exists(found.id)) ? found.id : null, clear: true };
  }
  io.logger.warn(`express-session session kept changing while it was moved; left in place after ${MAX_ATTEMPTS} tries`);
  return { id: null, clear: false };
}

/**
 * The `Set-Cookie` value that clears the old cookie (same name, `Path` and `Domain`).
 *
 * @param legacy From {@linkcode compileLegacy}.
 * @param secure The request came over HTTPS: add `Secure`, as a secure old cookie needs.
 * @returns The header value.
 */
export function legacyClearCookie(legacy: CompiledLegacy, secure: boolean): string {
  return `${legacy.name}=; Max-Age=0; Path=${legacy.path}${legacy.domain ? `; Domain=${legacy.domain}` : ""}; HttpOnly${
    secure ? "; Secure" : ""
  }; SameSite=Lax`;
}

/**
 * express-session's stored JSON as session data: the root object's keys minus `cookie` (its
 * cookie settings), with no `__proto__` key at any depth and without pgsession's reserved flash
 * key. Anything but a JSON object reads as empty (logged).
 */
function legacyData(text: string, logger: Logger): Map<string, unknown> {
  const data = new Map<string, unknown>();
  let root: unknown;
  try {
    root = JSON.parse(text, (key, value) => (key === "__proto__" ? undefined : value));
  } catch {
    root = undefined;
  }
  if (root === null || typeof root !== "object" || Array.isArray(root)) {
    logger.warn("express-session data is not a JSON object and was read as empty");
    return data;
  }
  for (const [key, value] of Object.entries(root)) {
    if (key !== "cookie" && key !== FLASH_KEY) data.set(key, value);
  }
  return data;
}

/** URL-decodes a cookie value as express-session's `cookie` module does: the raw value when it fails. */
function decodeValue(raw: string): string {
  if (!raw.includes("%")) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/**
 * The 32 bytes of a cookie-signature signature running from `start` to the end of `text`, or
 * `null` unless it is the one spelling cookie-signature makes: 43 standard base64 characters, no
 * padding, the last one's 2 spare bits zero.
 */
function decodeMac(text: string, start: number): Uint8Array<ArrayBuffer> | null {
  return text.length - start === 43 ? decodeBase64(text, start) : null;
}

/** The pgsession id for an old session: HMAC-SHA256 of the id, base64url (a canonical id). */
async function deriveId(key: CryptoKey, sid: string): Promise<string> {
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(DERIVE_PREFIX + sid)),
  );
  return encodeBase64url(mac);
}
