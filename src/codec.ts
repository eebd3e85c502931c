/**
 * The CBOR codec for session data: lossless for the types sessions hold, bounded for hostile input.
 *
 * @module
 */

// The no-eval build: workerd forbids code generation during a request and Next.js edge builds
// reject `new Function`, which the regular build uses for record decoding.
import { Decoder, Encoder, setSizeLimits } from "cbor-x/index-no-eval";

// Shared by encoder and decoder so bytes are the same on every runtime: no records or packing
// (they need `new Function` or shared state), Maps tagged 259 so they come back as Maps, and
// Uint8Array untagged whether or not a global Buffer exists.
const OPTIONS = {
  useRecords: false,
  mapsAsObjects: true,
  useTag259ForMaps: true,
  tagUint8Array: false,
  pack: false,
  structuredClone: false,
  bundleStrings: false,
  copyBuffers: true,
} as const;

// No container may claim more elements than fit in the largest input we accept.
const MAX_ELEMENTS = 1 << 20;

let encoder: Encoder | undefined;
let decoder: Decoder | undefined;

function codecs(): { encoder: Encoder; decoder: Decoder } {
  if (!encoder || !decoder) {
    setSizeLimits({ maxArraySize: MAX_ELEMENTS, maxMapSize: MAX_ELEMENTS, maxObjectSize: MAX_ELEMENTS });
    encoder = new Encoder(OPTIONS);
    decoder = new Decoder(OPTIONS);
  }
  return { encoder, decoder };
}

/**
 * Encodes session data: a CBOR map at the root, values as cbor-x carries them (strings, numbers,
 * booleans, null, undefined, arrays, plain objects, Date, Map, Set, bigint, Uint8Array).
 *
 * @param data The session's entries.
 * @returns The CBOR bytes, a plain `Uint8Array` on every runtime.
 * @throws {TypeError} When a value cannot be encoded (a function, a symbol, a cycle).
 */
export function encodeData(data: ReadonlyMap<string, unknown>): Uint8Array {
  // A null-prototype object encodes as an untagged CBOR map and cannot be polluted by its keys.
  const root: Record<string, unknown> = Object.create(null);
  for (const [key, value] of data) root[key] = value;
  let bytes: Uint8Array;
  try {
    bytes = codecs().encoder.encode(root);
  } catch (error) {
    throw new TypeError(`Cannot encode session data: ${(error as Error).message}`, { cause: error });
  }
  // cbor-x returns a Buffer where one exists; callers get the same type everywhere.
  const out = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (indexOfProto(out) >= 0) throw new TypeError(`Cannot encode session data: it holds the string "__proto__", which cannot round-trip`);
  return out;
}

/**
 * Decodes session data written by {@linkcode encodeData}.
 *
 * @param bytes Stored CBOR bytes.
 * @param maxBytes Inputs longer than this are rejected before decoding.
 * @returns The entries.
 * @throws {RangeError} When the input is too long, not CBOR, or its root is not a plain map.
 */
export function decodeData(bytes: Uint8Array, maxBytes: number): Map<string, unknown> {
  if (bytes.byteLength > maxBytes) {
    throw new RangeError(`Session data is ${bytes.byteLength} bytes, over the ${maxBytes}-byte limit`);
  }
  if (bytes.byteLength === 0) throw new RangeError("Session data is empty");
  // cbor-x would silently rename such a key to "__proto_": refuse the data rather than alter it.
  if (indexOfProto(bytes) >= 0) throw new RangeError(`Session data holds a "__proto__" key`);
  // A plain view: decoded byte strings then come back as plain Uint8Array, not a driver's subclass.
  const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let root: unknown;
  try {
    root = codecs().decoder.decode(view);
  } catch (error) {
    throw new RangeError(`Session data is not valid CBOR: ${(error as Error).message}`, { cause: error });
  }
  if (root === null || typeof root !== "object" || Array.isArray(root)) {
    throw new RangeError(`Session data root is ${describe(root)}, not a map`);
  }
  const proto = Object.getPrototypeOf(root);
  if (proto !== Object.prototype && proto !== null) {
    throw new RangeError(`Session data root is ${describe(root)}, not a map`);
  }
  // Shared-reference tags (28/29) can build cycles, which no later save could encode.
  assertAcyclic(root, new Set());
  return new Map(Object.entries(root));
}

// The CBOR text string "__proto__": head byte 0x69 (text, 9 bytes) and the letters.
const PROTO = [0x69, 0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];

function indexOfProto(bytes: Uint8Array): number {
  outer: for (let i = bytes.indexOf(PROTO[0]!); i >= 0 && i <= bytes.length - PROTO.length; i = bytes.indexOf(PROTO[0]!, i + 1)) {
    for (let j = 1; j < PROTO.length; j++) if (bytes[i + j] !== PROTO[j]) continue outer;
    return i;
  }
  return -1;
}

function assertAcyclic(value: unknown, ancestors: Set<object>): void {
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value) || value instanceof Date) return;
  if (ancestors.has(value)) throw new RangeError("Session data holds a reference cycle");
  ancestors.add(value);
  const children: Iterable<unknown> = value instanceof Map
    ? [...value.keys(), ...value.values()]
    : value instanceof Set || Array.isArray(value)
    ? value
    : Object.values(value);
  for (const child of children) assertAcyclic(child, ancestors);
  ancestors.delete(value);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return `a ${(value as object).constructor?.name ?? "object"}`;
  return `a ${typeof value}`;
}
