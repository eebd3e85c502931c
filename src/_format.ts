/**
 * The stored format of `session_data`, written and read only here (the SQL twins below use the
 * same sizes): an 8-byte header, then the CBOR payload; and what a row means — live or not, its
 * absolute deadline, whether a touch is due.
 *
 * The header is the session's creation instant (database clock) as big-endian signed
 * microseconds since the Unix epoch, clamped to 1970..9999 when read. The payload's first byte
 * carries the format version: version 0 (this one) is an untagged CBOR map; a later version wraps
 * its payload in a CBOR tag. {@linkcode readStored} reads that byte and refuses a version it does
 * not know, so the data reads as corrupt (empty, logged) instead of being misread.
 *
 * @module
 */

/** The size of the header that precedes the CBOR payload. */
export const HEADER_BYTES = 8;

/** The format version this module writes: the payload is an untagged CBOR map. */
export const FORMAT_VERSION = 0;

/** The version a payload's first byte says: a CBOR map (major type 5) is version 0, anything else newer. */
function versionOf(payload: Uint8Array): number {
  const major = (payload[0] ?? 0) >> 5;
  return major === 5 ? FORMAT_VERSION : major === 6 ? FORMAT_VERSION + 1 : -1;
}

/** The latest creation instant a header may claim, 9999-12-31, in microseconds. */
const MAX_MICROS = 253_402_300_799_000_000n;

/** SQL for a new header: the database's `now()` as microseconds, big-endian. */
export const NEW_HEADER_SQL = "int8send((extract(epoch FROM now()) * 1000000)::int8)";

/**
 * SQL reading the creation instant of a stored column, as a `timestamp` (UTC wall time), or NULL
 * for data too short to hold a header. Clamped to 1970..9999 so a corrupt header can never be an
 * SQL error. Used only where the row was not read first (regenerate by id, count).
 */
export function createdSql(column: string): string {
  const micros = `('x' || encode(${headerSql(column)}, 'hex'))::bit(64)::int8`;
  return `(CASE WHEN octet_length(${column}) >= ${HEADER_BYTES} THEN timestamp 'epoch' + least(greatest(${micros}, 0), ${MAX_MICROS}) * interval '1 microsecond' END)`;
}

/** SQL for the header bytes of a stored column. */
export function headerSql(column: string): string {
  return `substr(${column}, 1, ${HEADER_BYTES})`;
}

/** SQL for a stored column's payload under a new header (the creation instant is now). */
export function restartedSql(column: string): string {
  return `${NEW_HEADER_SQL} || substr(${column}, ${HEADER_BYTES + 1})`;
}

/** A stored column split into its parts. */
export interface StoredParts {
  /** Creation instant in milliseconds since the epoch (database clock), clamped to 1970..9999. */
  createdMs: number;
  /** The 8 header bytes as stored. */
  header: Uint8Array;
  /** The CBOR payload. */
  payload: Uint8Array;
}

/**
 * Splits stored bytes into creation instant and payload.
 *
 * @throws {RangeError} When the data is shorter than the header, or of a newer format version.
 */
export function readStored(stored: Uint8Array): StoredParts {
  if (stored.byteLength < HEADER_BYTES) {
    throw new RangeError(`Session data is ${stored.byteLength} bytes, shorter than its header`);
  }
  const micros = clampMicros(new DataView(stored.buffer, stored.byteOffset, HEADER_BYTES).getBigInt64(0));
  const payload = stored.subarray(HEADER_BYTES);
  const version = versionOf(payload);
  if (version !== FORMAT_VERSION) {
    throw new RangeError(`Session data has format version ${version < 0 ? "unknown" : version}, not ${FORMAT_VERSION}`);
  }
  return { createdMs: Number(micros) / 1000, header: stored.subarray(0, HEADER_BYTES), payload };
}

/**
 * A header for a creation instant; for data whose stored header was corrupt, made from the
 * database `now()` its read returned.
 *
 * @param createdMs Milliseconds since the epoch, from the database clock.
 */
export function headerFor(createdMs: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  new DataView(out.buffer).setBigInt64(0, BigInt(Math.round(createdMs)) * 1000n);
  return out;
}

/**
 * The stored bytes for a payload under a header (an update keeps the header it read).
 *
 * @param header The 8 header bytes.
 * @param payload The CBOR payload.
 */
export function writeStored(header: Uint8Array, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.byteLength);
  out.set(header.subarray(0, HEADER_BYTES), 0);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** How a store's options bear on a row. Durations in seconds. */
export interface Lifetimes {
  readonly ttl: number;
  readonly absoluteTtl: number | null;
  readonly touchAfter: number;
}

// The largest instant a JS Date holds; a stored expiry beyond it is corrupt.
const MAX_DATE_MS = 8.64e15;

/** What one row says, by the database clock. */
export interface RowState {
  /** Live: not past its expiry nor its absolute deadline, and the expiry is a real instant. */
  live: boolean;
  /** The stored column as it is, or `null` when it is not bytes. */
  storedBytes: Uint8Array | null;
  /** The header, or `null` when the stored bytes are corrupt. */
  header: Uint8Array | null;
  /** Creation instant in ms, or `null` when unknown. */
  createdMs: number | null;
  /** Absolute deadline in ms, or `null` for none or unknown. */
  deadlineMs: number | null;
  expiresMs: number;
  nowMs: number;
  /** The expiry lags `now + ttl` by more than `touchAfter`: a request should move it forward. */
  touchDue: boolean;
  /** The expiry is not a real instant (`infinity`, or past what a Date holds). */
  corruptExpiry: boolean;
}

/** The absolute deadline of a session created at `createdMs`: one rule, used everywhere. */
export function deadlineOf(createdMs: number | null, lifetimes: Lifetimes): number | null {
  return createdMs === null || lifetimes.absoluteTtl === null ? null : createdMs + lifetimes.absoluteTtl * 1000;
}

/** The expiry a session used at `nowMs` should have: idle timeout, capped by its deadline. */
export function idealExpiry(nowMs: number, deadlineMs: number | null, lifetimes: Lifetimes): number {
  return Math.min(nowMs + lifetimes.ttl * 1000, deadlineMs ?? Infinity);
}

/**
 * Reads a row's stored column, expiry and `now` (float8 ms, as every statement returns them).
 *
 * @param data The `session_data` column.
 * @param expires The expiry in ms.
 * @param now The database's `now()` in ms.
 */
export function readRow(data: unknown, expires: unknown, now: unknown, lifetimes: Lifetimes): RowState {
  const expiresMs = Number(expires);
  const nowMs = Number(now);
  const storedBytes = toBytes(data);
  let header: Uint8Array | null = null;
  let createdMs: number | null = null;
  if (storedBytes && storedBytes.byteLength >= HEADER_BYTES) {
    header = storedBytes.subarray(0, HEADER_BYTES);
    createdMs = Number(clampMicros(new DataView(header.buffer, header.byteOffset, HEADER_BYTES).getBigInt64(0))) / 1000;
  }
  const deadlineMs = deadlineOf(createdMs, lifetimes);
  const corruptExpiry = !Number.isFinite(expiresMs) || Math.abs(expiresMs) > MAX_DATE_MS;
  const live = !corruptExpiry && expiresMs > nowMs && (deadlineMs === null || deadlineMs > nowMs);
  const touchDue = live && idealExpiry(nowMs, deadlineMs, lifetimes) > expiresMs + lifetimes.touchAfter * 1000;
  return { live, storedBytes, header, createdMs, deadlineMs, expiresMs, nowMs, touchDue, corruptExpiry };
}

function clampMicros(micros: bigint): bigint {
  return micros < 0n ? 0n : micros > MAX_MICROS ? MAX_MICROS : micros;
}

/** Drivers return bytea as Buffer or Uint8Array; anything else is not bytes. */
export function toBytes(value: unknown): Uint8Array | null {
  if (value instanceof Uint8Array) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

/** Byte-for-byte equality. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
