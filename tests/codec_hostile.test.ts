// Hostile stored rows: bytes nobody's encodeData wrote, crafted to hang the event loop, to pollute
// Object.prototype or to have their keys silently altered. Each must fail fast with a RangeError.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decodeData, encodeData } from "../src/_codec.ts";

const LIMIT = 65_536;
const objectPrototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();

/** A CBOR head: major type and argument, in the shortest form or with `width` extra bytes. */
function head(major: number, n: number, width?: 0 | 1 | 2 | 4 | 8): number[] {
  const w = width ?? (n < 24 ? 0 : n < 0x100 ? 1 : n < 0x10000 ? 2 : 4);
  if (w === 0) return [(major << 5) | n];
  const info = { 1: 24, 2: 25, 4: 26, 8: 27 }[w];
  const out = [(major << 5) | info];
  for (let i = w - 1; i >= 0; i--) out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  return out;
}

const text = (s: string, width?: 0 | 1 | 2 | 4 | 8): number[] => {
  const bytes = Array.from(new TextEncoder().encode(s));
  return [...head(3, bytes.length, width), ...bytes];
};
const tag = (n: number, width?: 0 | 1 | 2 | 4 | 8): number[] => head(6, n, width);
/** A root map `{"a": value}` around the given value bytes. */
const underA = (...value: number[]): Uint8Array => Uint8Array.from([0xa1, ...text("a"), ...value]);

/** Asserts decodeData refuses `bytes` with a RangeError within `ms`, leaving Object.prototype clean. */
function refusedFast(bytes: Uint8Array, name: string, ms = 2000): string {
  const started = performance.now();
  let caught: unknown;
  let result: unknown;
  try {
    result = decodeData(bytes, LIMIT);
  } catch (error) {
    caught = error;
  }
  const elapsed = performance.now() - started;
  assert.ok(
    caught instanceof RangeError,
    `${name}: expected a RangeError, got ${caught === undefined ? `a result ${String(result)}` : String(caught)}`,
  );
  assert.ok(elapsed < ms, `${name}: took ${elapsed.toFixed(0)} ms`);
  assert.deepEqual(
    Object.getOwnPropertyNames(Object.prototype).sort(),
    objectPrototypeKeys,
    `${name}: Object.prototype changed`,
  );
  assert.equal(({} as Record<string, unknown>).polluted, undefined, `${name}: Object.prototype polluted`);
  return caught.message;
}

/** `levels` shareable arrays, each holding two sharedrefs to the one before: a 2^levels walk. */
function sharedReferenceDag(levels: number): Uint8Array {
  const out = [...head(4, levels)];
  for (let i = 0; i < levels; i++) {
    out.push(...tag(28));
    if (i === 0) out.push(...head(4, 0));
    else out.push(...head(4, 2), ...tag(29), ...head(0, i - 1), ...tag(29), ...head(0, i - 1));
  }
  return underA(...out);
}

/** Nested packed-value tables (tag 51), each entry a pair of references to the previous entry. */
function packedValueDag(levels: number): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < levels; i++) {
    // 51([values, prefixes, suffixes, rest]); simple(0) (0xe0) is the previous table's first value.
    out.push(...tag(51), 0x84, ...head(4, 1), ...(i === 0 ? head(4, 0) : [0x82, 0xe0, 0xe0]), 0x80, 0x80);
  }
  out.push(0xa1, ...text("a"), 0xe0);
  return Uint8Array.from(out);
}

describe("hostile stored rows", () => {
  test("a 257-byte DAG of shared-reference tags (28 levels) is refused fast instead of blocking for minutes", () => {
    const bytes = sharedReferenceDag(28);
    assert.ok(bytes.byteLength > 250 && bytes.byteLength < 270, `${bytes.byteLength} bytes`);
    assert.match(refusedFast(bytes, "28-level DAG"), /tag 28/);
  });

  test("shared-reference tags are refused wherever they appear and however their head is written", () => {
    const inner = [...tag(28), ...head(4, 0)];
    const placements: [string, Uint8Array][] = [
      ["at the root", Uint8Array.from([...tag(28), 0xa0])],
      ["as a value", underA(...inner)],
      ["deep in arrays", underA(0x81, 0x81, 0x81, ...inner)],
      ["inside a Map (259)", underA(...tag(259), 0xa1, 0x01, ...inner)],
      ["as a Map key", underA(...tag(259), 0xa1, ...inner, 0x01)],
      ["inside a Set (258)", underA(...tag(258), 0x81, ...inner)],
      ["inside an Error (27)", underA(...tag(27), 0x82, ...text("Error"), ...inner)],
      ["inside an unknown tag", underA(...tag(4000), ...inner)],
      ["under an indefinite map", Uint8Array.from([0xbf, ...text("a"), ...inner, 0xff])],
      ["as an object key", Uint8Array.from([0xa1, ...inner, 0x01])],
      ["tag 28 with a 1-byte head", underA(...tag(28, 1), 0x80)],
      ["tag 28 with a 2-byte head", underA(...tag(28, 2), 0x80)],
      ["tag 28 with a 4-byte head", underA(...tag(28, 4), 0x80)],
      ["tag 28 with an 8-byte head", underA(...tag(28, 8), 0x80)],
      ["a lone sharedref (29)", underA(...tag(29), 0x00)],
      ["a sharedref with a 2-byte head", underA(0x82, ...inner, ...tag(29, 2), 0x00)],
      // {"a": 28({"b": 29(0)})}: a map inside itself.
      ["a cycle", underA(...tag(28), 0xa1, ...text("b"), ...tag(29), 0x00)],
    ];
    for (const [name, bytes] of placements) refusedFast(bytes, name, 250);
  });

  test("packed-value tables cannot share one value between places either", () => {
    // On its own, the table decodes to shared values: a 2^30 walk for a few hundred bytes.
    refusedFast(packedValueDag(30), "30-level packed DAG");
    refusedFast(
      Uint8Array.from([...tag(51), 0x84, 0x81, 0x01, 0x80, 0x80, 0xa1, ...text("a"), 0xe0]),
      "one packed value",
    );
  });

  test("a __proto__ key is refused however its length is written, and never renamed", () => {
    const polluting = [0xa1, ...text("polluted"), 0xf5];
    const widths = [0, 1, 2, 4, 8] as const;
    for (const width of widths) {
      const key = text("__proto__", width);
      const cases: [string, Uint8Array][] = [
        ["at the root", Uint8Array.from([0xa1, ...key, ...polluting])],
        ["in a nested object", underA(0xa1, ...key, ...polluting)],
        ["in an object in an array", underA(0x82, 0x01, 0xa1, ...key, ...polluting)],
        ["in an indefinite-length object", underA(0xbf, ...key, ...polluting, 0xff)],
        ["in a Map (259)", underA(...tag(259), 0xa1, ...key, 0x01)],
        ["after other keys", Uint8Array.from([0xa2, ...text("x"), 0x01, ...key, ...polluting])],
      ];
      for (const [name, bytes] of cases) {
        assert.match(refusedFast(bytes, `${name}, ${width}-byte length`, 250), /"__proto__" key/);
      }
    }
  });

  test("a __proto__ key named by a record definition is refused, not renamed", () => {
    const key = text("__proto__", 1);
    // cbor-x records: 57343([id, [keys], values…]) and the legacy 105 form.
    refusedFast(underA(...tag(0xdfff), 0x83, ...head(0, 0xe000), 0x81, ...key, 0x01), "record (57343)", 250);
    refusedFast(underA(...tag(105), 0x83, ...head(0, 0xe000), 0x81, ...key, 0x01), "legacy record (105)", 250);
    // 57342 defines a record (a 3-item head, then the id, the keys and the rest of the data);
    // 57344([values]) then uses it.
    const defined = [...tag(0xdffe), 0x83, ...head(0, 0xe000), 0x81, ...key];
    refusedFast(
      Uint8Array.from([...defined, 0xa1, ...text("a"), ...tag(0xe000), 0x81, 0x01]),
      "defined record (57342)",
      250,
    );
  });

  test("the decoder keeps working after refusing a row", () => {
    refusedFast(sharedReferenceDag(5), "DAG");
    refusedFast(Uint8Array.from([0xa1, ...text("__proto__", 1), 0x01]), "__proto__ key");
    // A row refused inside a Map (259) must not leave the decoder building Maps for plain objects.
    refusedFast(underA(...tag(259), ...tag(28), 0xa0), "a shareable Map");
    refusedFast(underA(...tag(259), 0xa1, ...text("__proto__"), 0x01), "a __proto__ Map key");
    const data = new Map<string, unknown>([["m", new Map([["k", { o: 1 }]])], ["o", { p: [1, { q: 2 }] }]]);
    const back = decodeData(encodeData(data), LIMIT);
    assert.deepStrictEqual(back, data);
    assert.equal(Object.getPrototypeOf(back.get("o")), Object.prototype);
  });
});
