/**
 * The CBOR codec for session data: lossless for the types sessions hold, bounded for hostile input.
 *
 * @module
 */

// The no-eval build: workerd forbids code generation during a request and Next.js edge builds
// reject `new Function`, which the regular build uses for record decoding.
import { addExtension, Decoder, Encoder, setSizeLimits } from "cbor-x/index-no-eval";

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

// Tags the encoder never writes and the decoder must not honour: 28/29 (shareable/sharedref) and
// 51 (packed values) put one decoded value in many places, even inside itself; 105 (legacy
// records) names object keys without passing them through `decodeKey` below.
const REFUSED_TAGS = [28, 29, 51, 105];

// The message of an error is the whole reason stored data was refused.
class HostileData extends Error {}

// With a `keyMap`, cbor-x passes every decoded map key through `decodeKey`, whatever its CBOR
// encoding (a non-canonical length head, a record, a string from a tag); without it a
// "__proto__" key is silently renamed "__proto_".
class KeyCheckingDecoder extends Decoder {
  decodeKey(key: unknown): unknown {
    if (key === "__proto__") throw new HostileData(`Session data holds a "__proto__" key`);
    return key;
  }
}

let codec: { encoder: Encoder; decoder: Decoder } | undefined;

function codecs(): { encoder: Encoder; decoder: Decoder } {
  if (!codec) {
    setSizeLimits({ maxArraySize: MAX_ELEMENTS, maxMapSize: MAX_ELEMENTS, maxObjectSize: MAX_ELEMENTS });
    // cbor-x keeps tag handlers per module, not per decoder: this also applies to any other
    // decoder of the no-eval build in the process. `handlesRead` refuses before reading the content.
    for (const tag of REFUSED_TAGS) {
      const refuse = Object.assign(() => {
        throw new HostileData(`Session data holds CBOR tag ${tag}, which encodeData never writes`);
      }, { handlesRead: true });
      addExtension({ tag, decode: refuse } as unknown as Parameters<typeof addExtension>[0]);
    }
    codec = { encoder: new Encoder(OPTIONS), decoder: new KeyCheckingDecoder({ ...OPTIONS, keyMap: {} }) };
  }
  return codec;
}

/**
 * Encodes session data: a CBOR map at the root, values as cbor-x carries them (strings, numbers,
 * booleans, null, undefined, arrays, plain objects, Date, Map, Set, bigint, Uint8Array).
 *
 * @param data The session's entries.
 * @returns The CBOR bytes, a plain `Uint8Array` on every runtime.
 * @throws {TypeError} When a value cannot be encoded (a function, a symbol, a cycle, a
 * `"__proto__"` key in an object or Map).
 *
 * @example Encode a session's entries
 * ```ts
 * import { encodeData } from "./_codec.ts";
 *
 * const bytes = encodeData(new Map<string, unknown>([["user", 42], ["seen", new Date(0)]]));
 * console.assert(bytes instanceof Uint8Array);
 * ```
 */
export function encodeData(data: ReadonlyMap<string, unknown>): Uint8Array {
  // A null-prototype object encodes as an untagged CBOR map and cannot be polluted by its keys.
  const root: Record<string, unknown> = Object.create(null);
  for (const [key, value] of data) root[key] = value;
  const { encoder, decoder } = codecs();
  let bytes: Uint8Array;
  try {
    bytes = encoder.encode(root);
  } catch (error) {
    throw new TypeError(`Cannot encode session data: ${(error as Error).message}`, { cause: error });
  }
  // cbor-x returns a Buffer where one exists; callers get the same type everywhere.
  const out = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // A "__proto__" key could not be read back. The letters alone prove nothing ("wiki__proto__" is a
  // fine value), so when they occur, decoding the output tells whether a key has that name.
  if (hasProtoLetters(out)) {
    try {
      decoder.decode(out);
    } catch (error) {
      const reason = error instanceof HostileData
        ? `it holds a "__proto__" key, which cannot round-trip`
        : (error as Error).message;
      throw new TypeError(`Cannot encode session data: ${reason}`, { cause: error });
    }
  }
  return out;
}

/**
 * Decodes session data written by {@linkcode encodeData}.
 *
 * @param bytes Stored CBOR bytes.
 * @param maxBytes Inputs longer than this are rejected before decoding.
 * @returns The entries.
 * @throws {RangeError} When the input is too long, not CBOR, its root is not a plain map, it
 * holds a `"__proto__"` key, or it uses tags {@linkcode encodeData} never writes.
 *
 * @example Read back what was stored; refuse a row nobody's encoder wrote
 * ```ts
 * import { decodeData, encodeData } from "./_codec.ts";
 *
 * const data = decodeData(encodeData(new Map([["user", 42]])), 65_536);
 * console.assert(data.get("user") === 42);
 *
 * // {"__proto__": 1} with a two-byte length head: refused, not renamed.
 * const hostile = Uint8Array.of(0xa1, 0x78, 0x09, ...new TextEncoder().encode("__proto__"), 0x01);
 * let refused = false;
 * try {
 *   decodeData(hostile, 65_536);
 * } catch (error) {
 *   refused = error instanceof RangeError;
 * }
 * console.assert(refused);
 * ```
 */
export function decodeData(bytes: Uint8Array, maxBytes: number): Map<string, unknown> {
  if (bytes.byteLength > maxBytes) {
    throw new RangeError(`Session data is ${bytes.byteLength} bytes, over the ${maxBytes}-byte limit`);
  }
  if (bytes.byteLength === 0) throw new RangeError("Session data is empty");
  // A plain view: decoded byte strings then come back as plain Uint8Array, not a driver's subclass.
  const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let root: unknown;
  try {
    root = codecs().decoder.decode(view);
  } catch (error) {
    const reason = error instanceof HostileData
      ? error.message
      : `Session data is not valid CBOR: ${(error as Error).message}`;
    throw new RangeError(reason, { cause: error });
  }
  if (root === null || typeof root !== "object" || Array.isArray(root)) {
    throw new RangeError(`Session data root is ${describe(root)}, not a map`);
  }
  const proto = Object.getPrototypeOf(root);
  if (proto !== Object.prototype && proto !== null) {
    throw new RangeError(`Session data root is ${describe(root)}, not a map`);
  }
  assertTree(root, bytes.byteLength);
  return new Map(Object.entries(root));
}

// "__proto__" in ASCII, whatever CBOR head precedes it.
const PROTO = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];

function hasProtoLetters(bytes: Uint8Array): boolean {
  const last = bytes.length - PROTO.length;
  outer: for (let i = bytes.indexOf(0x70, 2); i >= 0 && i - 2 <= last; i = bytes.indexOf(0x70, i + 1)) {
    for (let j = 0; j < PROTO.length; j++) if (bytes[i - 2 + j] !== PROTO[j]) continue outer;
    return true;
  }
  return false;
}

// Every decoded value takes at least one input byte, so a tree holds at most `budget` (the input
// length) values. More means one value sits in several places, or inside itself: the data could
// never be saved again, or only blown up. Counting every visit bounds the walk to the input size.
function assertTree(root: object, budget: number): void {
  const pending: object[] = [root];
  let values = 1;
  const visit = (child: unknown): void => {
    if (++values > budget) {
      throw new RangeError(
        `Session data holds more values than its ${budget} bytes can encode: some are shared or cyclic`,
      );
    }
    if (child !== null && typeof child === "object" && !ArrayBuffer.isView(child) && !(child instanceof Date)) {
      pending.push(child);
    }
  };
  for (let value = pending.pop(); value !== undefined; value = pending.pop()) {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) visit(value[i]);
    } else if (value instanceof Map) {
      for (const [key, child] of value) {
        visit(key);
        visit(child);
      }
    } else if (value instanceof Set) {
      for (const child of value) visit(child);
    } else {
      for (const child of Object.values(value)) visit(child);
    }
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return `a ${(value as object).constructor?.name ?? "object"}`;
  return `a ${typeof value}`;
}
