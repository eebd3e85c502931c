/**
 * The stored format of `session_data`, written and read only here: an 8-byte header, then the
 * CBOR payload.
 *
 * The header is the session's creation instant (database clock) as big-endian signed
 * microseconds since the Unix epoch, clamped to 1970..9999 when read. The payload of this
 * format, version 0, is an untagged CBOR map. A later format wraps its payload in a CBOR tag:
 * readers of this one then see a root that is not a plain map and read the data as corrupt
 * (empty, logged) instead of misreading it.
 *
 * @module
 */

/** The size of the header that precedes the CBOR payload. */
export const HEADER_BYTES = 8;

/** The format version this module writes. */
export const FORMAT_VERSION = 0;

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
  const micros = `('x' || encode(substr(${column}, 1, 8), 'hex'))::bit(64)::int8`;
  return `(CASE WHEN octet_length(${column}) >= 8 THEN timestamp 'epoch' + least(greatest(${micros}, 0), ${MAX_MICROS}) * interval '1 microsecond' END)`;
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
 * @throws {RangeError} When the data is shorter than the header.
 */
export function readStored(stored: Uint8Array): StoredParts {
  if (stored.byteLength < HEADER_BYTES) {
    throw new RangeError(`Session data is ${stored.byteLength} bytes, shorter than its header`);
  }
  let micros = new DataView(stored.buffer, stored.byteOffset, HEADER_BYTES).getBigInt64(0);
  if (micros < 0n) micros = 0n;
  if (micros > MAX_MICROS) micros = MAX_MICROS;
  return {
    createdMs: Number(micros) / 1000,
    header: stored.subarray(0, HEADER_BYTES),
    payload: stored.subarray(HEADER_BYTES),
  };
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
