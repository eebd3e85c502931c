/**
 * The session snapshot: a session's stored bytes and lifetimes, sealed with AES-256-GCM into a
 * cookie value that the same client sends back, so a read within a few seconds needs no database.
 * Pure: Web Crypto and nothing else; no clock but the one passed in.
 *
 * A snapshot is refused (`null`) when it is older than `maxAge` seconds, so `maxAge` is the
 * revocation bound: a destroy, regenerate or revoke made elsewhere reaches a client holding a
 * snapshot at most `maxAge` seconds later (plus the difference between the clocks of the machine
 * that sealed it and the one that opens it; milliseconds under NTP). The seal time is taken before
 * the row is read, so the bound errs on the short side. {@linkcode checkSnapshotMaxAge} caps
 * `maxAge` at {@linkcode MAX_SNAPSHOT_AGE} seconds.
 *
 * Lifetimes travel as durations (milliseconds left at seal time), never as instants: the expiry
 * and the deadline are instants on the database clock, the seal time is on the edge's clock, and
 * only differences taken on one clock are compared.
 *
 * The value is base64url (no padding) of:
 *
 * | bytes | field |
 * |---|---|
 * | 1 | format version, {@linkcode SNAPSHOT_VERSION} |
 * | 4 | key id: HKDF-SHA256 of the secret (its own `info`), so one key is tried, not every key |
 * | 6 | seal time, unsigned big-endian milliseconds since the epoch (edge clock) |
 * | 12 | random IV |
 * | n + 16 | AES-256-GCM ciphertext and tag |
 *
 * The first 11 bytes (the header) and the session id are the associated data: a snapshot
 * opens only with the id it was sealed for, and a changed version, key id or seal time fails
 * authentication. The plaintext: 1 byte of flags (touch due, deadline, user, label present), 6
 * bytes of milliseconds until the stored expiry, 6 until the deadline (0 when none), then the user
 * and the label (2-byte length and UTF-8, each only when present), then the stored bytes.
 *
 * Keys: HKDF-SHA256 of each secret, with a fixed salt and an `info` naming pgsession, the format
 * version and the UTC day of the seal time; derived on first use and kept, so a request derives
 * nothing. A key per day keeps each key under the 2^32 random IVs NIST SP 800-38D allows.
 *
 * @module
 */

import { decodeBase64url, encodeBase64url } from "./_base64url.ts";

/** The format version this module seals and the only one it opens. */
export const SNAPSHOT_VERSION = 1;

/**
 * The longest `maxAge` {@linkcode checkSnapshotMaxAge} accepts, in seconds. `maxAge` is how long a
 * session ended elsewhere (destroy, regenerate, revoke) stays readable on a client that holds a
 * snapshot; a minute is the most we are willing to state as a revocation bound.
 */
export const MAX_SNAPSHOT_AGE = 60;

/**
 * The longest sealed value, in characters (ASCII, so bytes). With a cookie name such as
 * `__Host-session.s` (16 characters) the cookie's name and value stay under 3.1 KB, well within
 * the 4096 bytes browsers keep (RFC 6265bis; ASVS 3.3.5) and, beside the session cookie and an
 * application's own, within an 8 KB header line (nginx's default) and the 16 KB per header of
 * Vercel and Node's default total. It leaves room for about 2.2 KB of stored bytes, user and label.
 */
export const MAX_SNAPSHOT_BYTES = 3072;

/** How far in the future a seal time may be (clocks of two edge machines differ slightly). */
export const SNAPSHOT_SKEW_MS = 1000;

/** What a snapshot carries; every lifetime as a duration from the moment it was read. */
export interface SnapshotContent {
  /** The `session_data` column as read (8-byte header and CBOR payload); opaque here. */
  readonly data: Uint8Array;
  /** Milliseconds left until the stored expiry (database clock), positive. */
  readonly expiresInMs: number;
  /** Milliseconds left until the absolute deadline (database clock), or `null` for none. */
  readonly deadlineInMs: number | null;
  /** When read, the stored expiry lagged enough that a request should move it forward. */
  readonly touchDue: boolean;
  /** The user the session belongs to, or `null`. */
  readonly user: string | null;
  /** The session's label, or `null`. */
  readonly label: string | null;
}

/** An opened snapshot: its content with lifetimes counted down to `now`, and its age. */
export interface OpenedSnapshot extends SnapshotContent {
  /** Milliseconds since the snapshot was sealed, by the clocks of the two requests (at least 0). */
  readonly ageMs: number;
}

/** Options of {@linkcode sealSnapshot}. */
export interface SealOptions {
  /** The session id the snapshot belongs to (the bare id, not the signed cookie value). */
  id: string;
  /** The secrets; the first one seals. */
  secrets: readonly string[];
  /**
   * The edge clock in milliseconds since the epoch when the content was true: take it before the
   * statement that read the row, so age and lifetimes err on the short side.
   * @default {Date.now()}
   */
  now?: number;
}

/** Options of {@linkcode openSnapshot}. */
export interface OpenOptions {
  /** The session id from the verified session cookie. */
  id: string;
  /** The secrets; any of them opens what it sealed. */
  secrets: readonly string[];
  /** Seconds a snapshot stays usable, from {@linkcode checkSnapshotMaxAge}. */
  maxAge: number;
  /**
   * The edge clock in milliseconds since the epoch.
   * @default {Date.now()}
   */
  now?: number;
}

const HEADER_BYTES = 11;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const FIXED_PLAIN_BYTES = 13;
const OVERHEAD_BYTES = HEADER_BYTES + IV_BYTES + TAG_BYTES;
const MAX_UINT48 = 2 ** 48 - 1;
const TOUCH_DUE = 1;
const HAS_DEADLINE = 2;
const HAS_USER = 4;
const HAS_LABEL = 8;
const KNOWN_FLAGS = TOUCH_DUE | HAS_DEADLINE | HAS_USER | HAS_LABEL;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const SALT = encoder.encode("pgsession snapshot");
const KEY_INFO = encoder.encode(`pgsession snapshot v${SNAPSHOT_VERSION} AES-256-GCM key for UTC day `);
const ID_INFO = encoder.encode(`pgsession snapshot v${SNAPSHOT_VERSION} key id`);
const DAY_MS = 86_400_000;

/** What one secret yields: its key id, and the base its day keys are derived from. */
interface SecretKeys {
  readonly id: number;
  readonly base: CryptoKey;
  /** AES-256-GCM keys by UTC day of the seal time. */
  readonly days: Map<number, Promise<CryptoKey>>;
}

const keys = new Map<string, Promise<SecretKeys>>();

/** The key id and HKDF base of a secret, derived once and kept. */
function keysFor(secret: string): Promise<SecretKeys> {
  let entry = keys.get(secret);
  if (!entry) {
    entry = deriveSecret(secret);
    // A few secrets per deployment; the bound only stops a misuse from growing without limit.
    if (keys.size > 64) keys.clear();
    keys.set(secret, entry);
    entry.catch(() => keys.delete(secret));
  }
  return entry;
}

async function deriveSecret(secret: string): Promise<SecretKeys> {
  const base = await crypto.subtle.importKey("raw", encoder.encode(secret), "HKDF", false, ["deriveKey", "deriveBits"]);
  // The id comes from its own HKDF output, so it tells nothing about the keys.
  const id = new DataView(await crypto.subtle.deriveBits(hkdf(ID_INFO), base, 32)).getUint32(0);
  return { id, base, days: new Map() };
}

/**
 * The AES key of a secret for the UTC day of a seal time, derived once per day and kept. A key
 * per day gives each day its own 2^32 random IVs (NIST SP 800-38D's bound for one key), about
 * 50,000 seals a second, however long a secret stays in use.
 */
function keyFor(entry: SecretKeys, sealedAt: number): Promise<CryptoKey> {
  const day = Math.floor(sealedAt / DAY_MS);
  let key = entry.days.get(day);
  if (!key) {
    const info = new Uint8Array(KEY_INFO.byteLength + 4);
    info.set(KEY_INFO);
    new DataView(info.buffer).setUint32(KEY_INFO.byteLength, day);
    key = crypto.subtle.deriveKey(hkdf(info), entry.base, { name: "AES-GCM", length: 256 }, false, [
      "encrypt",
      "decrypt",
    ]);
    // Opening refuses seal times more than a minute from now, so at most two days are in use.
    if (entry.days.size >= 3) entry.days.delete(entry.days.keys().next().value!);
    entry.days.set(day, key);
    key.catch(() => entry.days.delete(day));
  }
  return key;
}

function hkdf(info: Uint8Array<ArrayBuffer>): HkdfParams {
  return { name: "HKDF", hash: "SHA-256", salt: SALT, info };
}

/**
 * Checks `maxAge` once, when the options are read.
 *
 * @param maxAge Seconds a snapshot stays usable: also how long a session ended elsewhere (destroy,
 *   regenerate, revoke) can still be read by a client holding a snapshot of it.
 * @returns `maxAge`.
 * @throws {RangeError} Unless `maxAge` is a whole number from 1 to {@linkcode MAX_SNAPSHOT_AGE}.
 * @example
 * ```ts
 * import { checkSnapshotMaxAge } from "./_snapshot.ts";
 *
 * console.assert(checkSnapshotMaxAge(5) === 5);
 * try {
 *   checkSnapshotMaxAge(300);
 *   throw new Error("unreachable");
 * } catch (error) {
 *   console.assert(error instanceof RangeError);
 * }
 * ```
 */
export function checkSnapshotMaxAge(maxAge: number): number {
  if (!Number.isInteger(maxAge) || maxAge < 1 || maxAge > MAX_SNAPSHOT_AGE) {
    throw new RangeError(
      `Cannot use snapshot maxAge ${maxAge}: expected a whole number of seconds from 1 to ${MAX_SNAPSHOT_AGE}`,
    );
  }
  return maxAge;
}

/**
 * Tells whether content fits in a snapshot of at most {@linkcode MAX_SNAPSHOT_BYTES} characters;
 * a session that does not simply gets no snapshot.
 *
 * @param content The stored bytes, user and label (the lifetimes do not change the size).
 * @returns `true` when {@linkcode sealSnapshot} will seal it (if it has not expired).
 * @example
 * ```ts
 * import { fitsSnapshot } from "./_snapshot.ts";
 *
 * console.assert(fitsSnapshot({ data: new Uint8Array(100), user: null, label: null }));
 * console.assert(!fitsSnapshot({ data: new Uint8Array(4000), user: null, label: null }));
 * ```
 */
export function fitsSnapshot(content: Pick<SnapshotContent, "data" | "user" | "label">): boolean {
  return sealedLength(plainLength(content.data, utf8(content.user), utf8(content.label))) <= MAX_SNAPSHOT_BYTES;
}

/**
 * Seals a session into a snapshot cookie value.
 *
 * @param content The stored bytes, lifetimes left, touch flag, user and label.
 * @param options The id it belongs to, the secrets (the first seals) and the clock.
 * @returns The value (base64url, at most {@linkcode MAX_SNAPSHOT_BYTES} characters), or `null`
 *   when the content does not fit ({@linkcode fitsSnapshot}) or has already expired.
 * @throws {RangeError} When `secrets` is empty or a lifetime or `now` is not a finite number.
 * @throws {TypeError} When `data` is not a `Uint8Array` or user or label is neither a string nor `null`.
 * @example
 * ```ts
 * import { openSnapshot, sealSnapshot } from "./_snapshot.ts";
 * import { generateId } from "./id.ts";
 *
 * const id = generateId();
 * const secrets = ["a secret of at least 32 characters!"];
 * const content = {
 *   data: new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0xa0]),
 *   expiresInMs: 3_600_000,
 *   deadlineInMs: null,
 *   touchDue: false,
 *   user: "ada",
 *   label: null,
 * };
 * const value = await sealSnapshot(content, { id, secrets, now: 1_000_000 });
 * const opened = await openSnapshot(value!, { id, secrets, maxAge: 5, now: 1_002_000 });
 * console.assert(opened?.user === "ada" && opened.expiresInMs === 3_598_000 && opened.ageMs === 2000);
 * console.assert((await openSnapshot(value!, { id, secrets, maxAge: 5, now: 1_006_000 })) === null);
 * ```
 */
export async function sealSnapshot(content: SnapshotContent, options: SealOptions): Promise<string | null> {
  const { data, touchDue } = content;
  if (!(data instanceof Uint8Array)) throw new TypeError("Cannot seal a snapshot: data is not a Uint8Array");
  const expiresIn = duration("expiresInMs", content.expiresInMs);
  const deadlineIn = content.deadlineInMs === null ? null : duration("deadlineInMs", content.deadlineInMs);
  const now = options.now ?? Date.now();
  if (!Number.isFinite(now) || now < 0) throw new RangeError(`Cannot seal a snapshot: now is ${now}`);
  const secret = options.secrets[0];
  if (typeof secret !== "string") throw new RangeError("Cannot seal a snapshot: secrets is empty");
  const user = utf8(content.user, "user");
  const label = utf8(content.label, "label");
  const plainBytes = plainLength(data, user, label);
  if (sealedLength(plainBytes) > MAX_SNAPSHOT_BYTES || expiresIn < 1 || (deadlineIn !== null && deadlineIn < 1)) {
    return null;
  }

  const plain = new Uint8Array(plainBytes);
  const view = new DataView(plain.buffer);
  plain[0] = (touchDue ? TOUCH_DUE : 0) | (deadlineIn !== null ? HAS_DEADLINE : 0) | (user ? HAS_USER : 0) |
    (label ? HAS_LABEL : 0);
  setUint48(view, 1, expiresIn);
  setUint48(view, 7, deadlineIn ?? 0);
  let at = FIXED_PLAIN_BYTES;
  for (const text of [user, label]) {
    if (!text) continue;
    view.setUint16(at, text.byteLength);
    plain.set(text, at + 2);
    at += 2 + text.byteLength;
  }
  plain.set(data, at);

  const sealedAt = Math.min(Math.floor(now), MAX_UINT48);
  const entry = await keysFor(secret);
  const key = await keyFor(entry, sealedAt);
  const out = new Uint8Array(OVERHEAD_BYTES + plainBytes);
  const head = new DataView(out.buffer);
  out[0] = SNAPSHOT_VERSION;
  head.setUint32(1, entry.id);
  setUint48(head, 5, sealedAt);
  const iv = crypto.getRandomValues(out.subarray(HEADER_BYTES, HEADER_BYTES + IV_BYTES));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: associatedData(out.subarray(0, HEADER_BYTES), options.id) },
    key,
    plain,
  );
  out.set(new Uint8Array(sealed), HEADER_BYTES + IV_BYTES);
  return encodeBase64url(out);
}

/**
 * Opens a snapshot cookie value. Anything wrong yields `null`, never an exception: a value that
 * is malformed, tampered with, truncated, sealed for another id, by a secret no longer listed
 * or in another format version; one older than `maxAge` seconds or sealed more than
 * {@linkcode SNAPSHOT_SKEW_MS} in the future; one whose session has expired or passed its
 * deadline since it was sealed. A value sealed by a secret no longer listed costs no decryption.
 *
 * @param value The snapshot cookie's value.
 * @param options The id from the verified session cookie, the secrets, `maxAge` and the clock.
 * @returns The content with `expiresInMs` and `deadlineInMs` counted down by its age, or `null`.
 * @throws {RangeError} Only for a `maxAge` that {@linkcode checkSnapshotMaxAge} refuses.
 * @example
 * ```ts
 * import { openSnapshot, sealSnapshot } from "./_snapshot.ts";
 * import { generateId } from "./id.ts";
 *
 * const [id, other] = [generateId(), generateId()];
 * const secrets = ["a secret of at least 32 characters!"];
 * const content = { data: new Uint8Array(9), expiresInMs: 60_000, deadlineInMs: 1_000, touchDue: false, user: null, label: null };
 * const value = (await sealSnapshot(content, { id, secrets, now: 0 }))!;
 * console.assert((await openSnapshot(value, { id: other, secrets, maxAge: 5, now: 0 })) === null);
 * console.assert((await openSnapshot(value, { id, secrets, maxAge: 5, now: 1_000 })) === null); // past the deadline
 * console.assert((await openSnapshot("garbage", { id, secrets, maxAge: 5 })) === null);
 * ```
 */
export async function openSnapshot(value: string, options: OpenOptions): Promise<OpenedSnapshot | null> {
  const maxAgeMs = checkSnapshotMaxAge(options.maxAge) * 1000;
  const now = options.now ?? Date.now();
  if (
    typeof value !== "string" || value.length > MAX_SNAPSHOT_BYTES || value.length < sealedLength(FIXED_PLAIN_BYTES)
  ) return null;
  const bytes = decodeBase64url(value);
  if (!bytes || bytes[0] !== SNAPSHOT_VERSION) return null;
  const head = new DataView(bytes.buffer);
  // The seal time is checked before decrypting (a stale value costs nothing) and trusted only
  // because decryption below authenticates it.
  const sealedAt = getUint48(head, 5);
  const elapsed = now - sealedAt;
  if (!(elapsed <= maxAgeMs && elapsed >= -SNAPSHOT_SKEW_MS)) return null;
  const id = head.getUint32(1);
  const iv = bytes.subarray(HEADER_BYTES, HEADER_BYTES + IV_BYTES);
  const sealed = bytes.subarray(HEADER_BYTES + IV_BYTES);
  let additionalData: Uint8Array<ArrayBuffer> | undefined;
  let plain: Uint8Array | null = null;
  try {
    for (const secret of options.secrets) {
      const entry = await keysFor(secret);
      // Ids are 32 bits: two listed secrets share one about once in 4 billion, so keep looking.
      if (entry.id !== id) continue;
      const key = await keyFor(entry, sealedAt);
      additionalData ??= associatedData(bytes.subarray(0, HEADER_BYTES), options.id);
      try {
        plain = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData }, key, sealed));
        break;
      } catch {
        // Not this key, or tampered: try a colliding id, if any.
      }
    }
  } catch {
    return null;
  }
  return plain && parse(plain, Math.max(0, elapsed));
}

/** The plaintext's fields, counted down by `elapsed` ms; `null` when expired or malformed. */
function parse(plain: Uint8Array, elapsed: number): OpenedSnapshot | null {
  if (plain.byteLength < FIXED_PLAIN_BYTES) return null;
  const view = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
  const flags = plain[0]!;
  if (flags & ~KNOWN_FLAGS) return null;
  const expiresInMs = getUint48(view, 1) - elapsed;
  const deadlineInMs = flags & HAS_DEADLINE ? getUint48(view, 7) - elapsed : null;
  if (expiresInMs <= 0 || (deadlineInMs !== null && deadlineInMs <= 0)) return null;
  let at = FIXED_PLAIN_BYTES;
  const texts: (string | null)[] = [];
  for (const flag of [HAS_USER, HAS_LABEL]) {
    if (!(flags & flag)) {
      texts.push(null);
      continue;
    }
    if (at + 2 > plain.byteLength) return null;
    const end = at + 2 + view.getUint16(at);
    if (end > plain.byteLength) return null;
    try {
      texts.push(decoder.decode(plain.subarray(at + 2, end)));
    } catch {
      return null;
    }
    at = end;
  }
  return {
    // A copy of its own: it becomes the compare-and-set's expected value, a driver parameter.
    data: plain.slice(at),
    expiresInMs,
    deadlineInMs,
    touchDue: (flags & TOUCH_DUE) !== 0,
    user: texts[0]!,
    label: texts[1]!,
    ageMs: elapsed,
  };
}

/** The header, then the id: the ciphertext is bound to both. */
function associatedData(header: Uint8Array, id: string): Uint8Array<ArrayBuffer> {
  const tokenBytes = encoder.encode(typeof id === "string" ? id : "");
  const out = new Uint8Array(header.byteLength + tokenBytes.byteLength);
  out.set(header);
  out.set(tokenBytes, header.byteLength);
  return out;
}

function duration(name: string, ms: number): number {
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    throw new RangeError(`Cannot seal a snapshot: ${name} is ${ms}`);
  }
  // Rounded down and capped: a lifetime may only come out shorter.
  return Math.min(Math.max(Math.floor(ms), 0), MAX_UINT48);
}

function utf8(text: string | null, name = "text"): Uint8Array | null {
  if (text === null) return null;
  if (typeof text !== "string") throw new TypeError(`Cannot seal a snapshot: ${name} is ${typeof text}`);
  return encoder.encode(text);
}

function plainLength(data: Uint8Array, user: Uint8Array | null, label: Uint8Array | null): number {
  return FIXED_PLAIN_BYTES + (user ? 2 + user.byteLength : 0) + (label ? 2 + label.byteLength : 0) + data.byteLength;
}

/** Characters of the base64url value for a plaintext of `plainBytes`. */
function sealedLength(plainBytes: number): number {
  return Math.ceil(((OVERHEAD_BYTES + plainBytes) * 4) / 3);
}

function setUint48(view: DataView, at: number, n: number): void {
  view.setUint16(at, Math.floor(n / 2 ** 32));
  view.setUint32(at + 2, n >>> 0);
}

function getUint48(view: DataView, at: number): number {
  return view.getUint16(at) * 2 ** 32 + view.getUint32(at + 2);
}
