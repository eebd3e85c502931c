// The CBOR codec on its own (no database): what goes in comes out with the same types, the
// bytes are the same on every runtime, and hostile stored data fails fast with a RangeError.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { describe, test } from "node:test";
import { decodeData, encodeData } from "../src/_codec.ts";

const LIMIT = 65_536;

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(text: string): Uint8Array {
  return Uint8Array.from(text.replace(/\s+/g, "").match(/../g) ?? [], (h) => parseInt(h, 16));
}

function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const ascii = (s: string): number[] => Array.from(new TextEncoder().encode(s));

function roundTrip(entries: Record<string, unknown>): Map<string, unknown> {
  return decodeData(encodeData(new Map(Object.entries(entries))), LIMIT);
}

/** Asserts `action` throws a RangeError within `ms` milliseconds; returns the message. */
function rejectsFast(action: () => unknown, ms = 250): string {
  const started = performance.now();
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  const elapsed = performance.now() - started;
  assert.ok(
    caught instanceof RangeError,
    `expected a RangeError, got ${caught === undefined ? "a result" : String(caught)}`,
  );
  assert.ok(elapsed < ms, `took ${elapsed.toFixed(1)} ms`);
  return caught.message;
}

function hasCycle(value: unknown, seen: Set<unknown> = new Set()): boolean {
  if (value === null || typeof value !== "object") return false;
  if (seen.has(value)) return true;
  seen.add(value);
  const children = value instanceof Map
    ? [...value.keys(), ...value.values()]
    : value instanceof Set
    ? [...value]
    : Object.values(value);
  const cyclic = children.some((child) => hasCycle(child, seen));
  seen.delete(value);
  return cyclic;
}

const objectPrototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();

describe("encodeData and decodeData", () => {
  test("every supported type comes back as the same type", () => {
    const values: Record<string, unknown> = {
      string: "héllo ✓ \u0000",
      int: 42,
      negative: -7,
      float: 3.25,
      maxSafe: Number.MAX_SAFE_INTEGER,
      nan: NaN,
      infinity: Infinity,
      yes: true,
      no: false,
      nothing: null,
      missing: undefined,
      array: [1, "two", [3, [4, [5]]], { six: 6 }],
      object: { a: { b: { c: [true, null, "d"] } }, e: [] },
      date: new Date("2024-03-10T06:59:59.123Z"),
      map: new Map<unknown, unknown>([["k", 1], [2, "two"], ["nested", new Map([["x", [1]]])]]),
      set: new Set<unknown>(["a", 1, true]),
      bigint: 2n ** 80n,
      negativeBigint: -(2n ** 70n),
      smallBigint: 7n,
      bytes: new Uint8Array([0, 1, 127, 128, 254, 255]),
    };
    const back = roundTrip(values);
    assert.deepStrictEqual(Object.fromEntries(back), values);
    assert.ok(back.has("missing"), "an undefined value keeps its key");
    assert.equal(typeof back.get("smallBigint"), "bigint");
    assert.ok(back.get("date") instanceof Date);
    assert.ok(back.get("map") instanceof Map);
    assert.ok(back.get("set") instanceof Set);
  });

  test("encoded bytes are a plain Uint8Array", () => {
    const bytes = encodeData(new Map([["a", 1]]));
    assert.equal(Object.getPrototypeOf(bytes), Uint8Array.prototype);
  });

  test("byte strings decode as plain Uint8Array copies, even from a Buffer", () => {
    const encoded = encodeData(
      new Map<string, unknown>([["bytes", new Uint8Array([1, 2, 3])], ["deep", { list: [new Uint8Array([4])] }]]),
    );
    // Drivers hand bytea over as a Buffer.
    const input = Buffer.from(encoded);
    const back = decodeData(input, LIMIT);
    const bytes = back.get("bytes") as Uint8Array;
    const deep = (back.get("deep") as { list: Uint8Array[] }).list[0]!;
    assert.equal(Object.getPrototypeOf(bytes), Uint8Array.prototype);
    assert.equal(Object.getPrototypeOf(deep), Uint8Array.prototype);
    input.fill(0);
    assert.deepEqual(bytes, new Uint8Array([1, 2, 3]), "not a view into the input");
  });

  test("the bytes are the same on every runtime: Uint8Array untagged, Map tagged 259", () => {
    // {"b": h'0102'}: no tag 64, whether or not a global Buffer exists (b9 0001: a 1-entry map).
    assert.equal(hex(encodeData(new Map([["b", new Uint8Array([1, 2])]]))), "b9 0001 6162 42 0102".replaceAll(" ", ""));
    // {"m": 259({1: 2})}
    assert.equal(
      hex(encodeData(new Map([["m", new Map([[1, 2]])]]))),
      "b9 0001 616d d90103 a1 01 02".replaceAll(" ", ""),
    );
    // {"d": 1(0), "s": 258([1]), "n": 7n as a 64-bit integer}
    assert.equal(
      hex(encodeData(new Map<string, unknown>([["d", new Date(0)], ["s", new Set([1])], ["n", 7n]]))),
      "b9 0003 6164 c1 1a00000000 6173 d90102 81 01 616e 1b0000000000000007".replaceAll(" ", ""),
    );
  });

  test("the root must be a plain map", () => {
    const roots: [string, Uint8Array][] = [
      ["an array", fromHex("83 01 02 03")],
      ["a number", fromHex("18 2a")],
      ["a string", fromHex("62 68 69")],
      ["null", fromHex("f6")],
      ["true", fromHex("f5")],
      ["a byte string", fromHex("42 01 02")],
      ["a tagged Map (259)", fromHex("d9 0103 a1 61 61 01")],
      ["a Date", fromHex("c1 01")],
      ["a Set (258)", fromHex("d9 0102 81 01")],
    ];
    for (const [name, bytes] of roots) {
      assert.throws(() => decodeData(bytes, LIMIT), RangeError, name);
    }
    assert.deepEqual(decodeData(fromHex("a0"), LIMIT), new Map());
  });

  test("the size cap is enforced before decoding", () => {
    const valid = encodeData(new Map([["essay", "x".repeat(2000)]]));
    assert.ok(decodeData(valid, valid.byteLength).size === 1, "exactly at the limit decodes");
    assert.match(rejectsFast(() => decodeData(valid, valid.byteLength - 1)), /over the \d+-byte limit/);
    // 1 MB of nested array headers: rejected on its length alone, the decoder never sees it.
    const hostile = concat([0xa1, 0x61, 0x61], new Array<number>(1 << 20).fill(0x81));
    assert.match(rejectsFast(() => decodeData(hostile, LIMIT), 50), /over the 65536-byte limit/);
  });

  test("empty and truncated input is a RangeError", () => {
    rejectsFast(() => decodeData(new Uint8Array(0), LIMIT));
    const valid = encodeData(new Map([["text", "some text to cut short"]]));
    for (let cut = 1; cut < valid.byteLength; cut++) {
      rejectsFast(() => decodeData(valid.subarray(0, valid.byteLength - cut), LIMIT));
    }
    rejectsFast(() => decodeData(concat(valid, [0x00]), LIMIT));
  });

  test("hostile inputs fail fast with a RangeError", () => {
    const hostile: [string, Uint8Array][] = [
      ["array claiming 100M elements", fromHex("a1 61 61 9b 00000000 05f5e100")],
      ["array claiming 2^64-1 elements", fromHex("a1 61 61 9b ffffffff ffffffff")],
      ["root map claiming 100M entries", fromHex("bb 00000000 05f5e100")],
      ["byte string claiming 4 GB", fromHex("a1 61 61 5b 00000001 00000000")],
      ["text string claiming 4 GB", fromHex("a1 61 61 7b 00000001 00000000")],
      ["byte string claiming 1 MB with 4 bytes", fromHex("a1 61 61 5a 00100000 01020304")],
      ["40,000 nested arrays", concat([0xa1, 0x61, 0x61], new Array<number>(40_000).fill(0x81), [0x00])],
      ["20,000 nested maps", concat(...new Array<number[]>(20_000).fill([0xa1, 0x61, 0x61]), [0x00])],
      ["40,000 nested indefinite arrays", concat([0xa1, 0x61, 0x61], new Array<number>(40_000).fill(0x9f))],
      [
        "60,000 nested tags",
        concat([0xa1, 0x61, 0x61], new Array<number>(30_000).fill(0).flatMap(() => [0xd8, 0x1c]), [0x00]),
      ],
      ["a reserved additional-info byte", fromHex("a1 61 61 1c")],
      ["a lone break byte", fromHex("a1 61 61 ff")],
    ];
    for (const [name, bytes] of hostile) {
      const started = performance.now();
      assert.throws(() => decodeData(bytes, LIMIT), RangeError, name);
      assert.ok(performance.now() - started < 250, `${name} took ${(performance.now() - started).toFixed(1)} ms`);
    }
  });

  test("a __proto__ key never pollutes and is never silently renamed", () => {
    const payloads = [
      // {"__proto__": {"polluted": true}}
      concat([0xa1, 0x69], ascii("__proto__"), [0xa1, 0x68], ascii("polluted"), [0xf5]),
      // {"a": {"__proto__": {"polluted": true}}}
      concat([0xa1, 0x61, 0x61, 0xa1, 0x69], ascii("__proto__"), [0xa1, 0x68], ascii("polluted"), [0xf5]),
    ];
    for (const bytes of payloads) {
      let back: Map<string, unknown> | undefined;
      try {
        back = decodeData(bytes, LIMIT);
      } catch (error) {
        assert.ok(error instanceof RangeError);
      }
      assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), objectPrototypeKeys);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      // Refusing it (RangeError) is the safe outcome; a renamed key would be altered data.
      if (back) assert.ok(!JSON.stringify([...back]).includes('__proto_"'), `renamed: ${JSON.stringify([...back])}`);
    }
  });

  test("shared-reference tags cannot smuggle a cycle into session data", () => {
    // {"a": 28({"b": 29(0)})}: a map that contains itself.
    const bytes = fromHex("a1 61 61 d8 1c a1 61 62 d8 1d 00");
    let back: Map<string, unknown> | undefined;
    try {
      back = decodeData(bytes, LIMIT);
    } catch (error) {
      assert.ok(error instanceof RangeError);
    }
    // A cyclic value could never be saved again: every later save would be UNENCODABLE_DATA.
    if (back) assert.ok(!hasCycle(back), "decoded data contains a cycle");
  });

  test("record-definition tags from stored data decode without code generation", () => {
    // cbor-x record definition (tag 57343) for keys ["a","b"], then one record.
    const bytes = fromHex("a1 61 72 d9 dfff 83 19 e000 82 61 61 61 62 01 02");
    try {
      decodeData(bytes, LIMIT);
    } catch (error) {
      assert.ok(error instanceof RangeError, `not an EvalError: ${String(error)}`);
    }
  });

  test("strings that merely contain __proto__ round-trip, as values and as keys", () => {
    const values: Record<string, unknown> = {
      url: "https://x/?q=wiki__proto__",
      // 0x69 is the head byte of a 9-byte string: here it is the letter "i" inside a longer one.
      afterI: "i__proto__",
      exact: "__proto__",
      inArray: ["__proto__", "x__proto__y"],
      inSet: new Set(["__proto__"]),
      bytes: new TextEncoder().encode("i__proto__"),
      keys: { "i__proto__": 1, "__proto_": 2, "__proto__x": 3, "constructor": 4, "prototype": 5 },
      mapKeys: new Map<unknown, unknown>([["wiki__proto__", "__proto__"], ["__proto_", 1]]),
    };
    const back = roundTrip(values);
    assert.deepStrictEqual(Object.fromEntries(back), values);
    assert.equal(Object.getPrototypeOf(back.get("keys")), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), objectPrototypeKeys);
  });

  test("a real __proto__ key is refused on encode, in any object or Map at any depth", () => {
    // JSON.parse makes "__proto__" an own key; so does assigning it on a null-prototype object.
    const parsed = JSON.parse('{"__proto__": {"polluted": true}}') as unknown;
    const bare: Record<string, unknown> = Object.create(null);
    bare["__proto__"] = 1;
    const bad: [string, unknown][] = [
      ["an object", parsed],
      ["a null-prototype object", bare],
      ["an object deep in arrays", [[1, [parsed]]]],
      ["an object in a Set", new Set([parsed])],
      ["an object as a Map value", new Map([["k", parsed]])],
      ["a Map key", new Map([["__proto__", 1]])],
      ["a Map key deep in objects", { a: { b: new Map([["__proto__", 1]]) } }],
    ];
    for (const [name, value] of bad) {
      assert.throws(() => encodeData(new Map([["x", value]])), { name: "TypeError", message: /"__proto__" key/ }, name);
    }
    assert.throws(
      () => encodeData(new Map([["__proto__", 1]])),
      { name: "TypeError", message: /"__proto__" key/ },
      "a root key",
    );
    assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), objectPrototypeKeys);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test("Error values come back as a plain Error with only the message; RegExp values as RegExp", () => {
    class Custom extends Error {
      code = "E_CUSTOM";
    }
    const errors = [
      new Error("plain"),
      new TypeError("typed", { cause: new Error("inner") }),
      new RangeError("range"),
      new Custom("custom"),
    ];
    const back = roundTrip({ errors, regexp: /a+(b)?\//giu });
    const decoded = back.get("errors") as Error[];
    decoded.forEach((error, i) => {
      // cbor-x writes [name, message] under tag 27 and rebuilds only the global Error and RegExp.
      assert.equal(Object.getPrototypeOf(error), Error.prototype, `${errors[i]!.name} is a plain Error`);
      assert.equal(error.name, "Error");
      assert.equal(error.message, errors[i]!.message);
      assert.equal(error.cause, undefined, "the cause is lost");
      assert.equal((error as Partial<Custom>).code, undefined, "own properties are lost");
    });
    const regexp = back.get("regexp") as RegExp;
    assert.equal(Object.getPrototypeOf(regexp), RegExp.prototype);
    assert.equal(regexp.source, "a+(b)?\\/");
    assert.equal(regexp.flags, "giu");
  });

  test("values that cannot be encoded are a TypeError", () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const bad: [string, unknown][] = [
      ["a nested function", { greet: () => "hi" }],
      ["a nested symbol", [Symbol("s")]],
      ["a cycle", cycle],
    ];
    for (const [name, value] of bad) {
      assert.throws(() => encodeData(new Map([["x", value]])), TypeError, name);
    }
  });
});
