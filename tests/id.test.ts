// Session tokens: 256 bits from crypto.getRandomValues, 43 base64url characters, one spelling
// each, and stored only as the hex SHA-256 of their ASCII text, the same from Web Crypto and from
// node:crypto (the built package's `node` condition).
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { decodeBase64url, encodeBase64url } from "../src/_base64url.ts";
import { LruCache } from "../src/_cache.ts";
import * as web from "../src/_crypto.ts";
import * as node from "../src/_crypto_node.ts";
import { generateId, handleOf, isId } from "../src/id.ts";

const SHAPE = /^[A-Za-z0-9_-]{43}$/;
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Replaces crypto.getRandomValues for the duration of `action`, then puts the original back. */
function withRandomValues<T>(fill: (array: Uint8Array) => void, action: (calls: number[]) => T): T {
  const own = Object.getOwnPropertyDescriptor(crypto, "getRandomValues");
  const calls: number[] = [];
  const stub = <A extends ArrayBufferView | null>(array: A): A => {
    assert.ok(array instanceof Uint8Array);
    calls.push(array.byteLength);
    fill(array);
    return array;
  };
  Object.defineProperty(crypto, "getRandomValues", { value: stub, configurable: true, writable: true });
  try {
    return action(calls);
  } finally {
    if (own) Object.defineProperty(crypto, "getRandomValues", own);
    else delete (crypto as { getRandomValues?: unknown }).getRandomValues;
  }
}

describe("generateId", () => {
  test("1,000,000 tokens are all different and all 43 base64url characters", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1_000_000; i++) {
      const token = generateId();
      if (!SHAPE.test(token) || !isId(token)) {
        assert.fail(`token ${i} has the wrong shape: ${JSON.stringify(token)}`);
      }
      seen.add(token);
    }
    assert.equal(seen.size, 1_000_000, "no duplicate");
  });

  test("a token is the 32 bytes crypto.getRandomValues gave, in base64url without padding", () => {
    const bytes = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
    const token = withRandomValues((array) => array.set(bytes), (calls) => {
      const t = generateId();
      assert.deepEqual(calls, [32], "one call for 32 bytes (256 bits)");
      return t;
    });
    assert.equal(token, Buffer.from(bytes).toString("base64url"));
    assert.deepEqual(new Uint8Array(Buffer.from(token, "base64url")), bytes, "all 256 bits are in the token");
    assert.ok(isId(token));
  });

  test("every bit of the random bytes reaches the token", () => {
    const tokens = new Set<string>();
    for (let bit = 0; bit < 256; bit++) {
      const bytes = new Uint8Array(32);
      bytes[bit >> 3] = 0x80 >> (bit & 7);
      tokens.add(withRandomValues((array) => array.set(bytes), () => generateId()));
    }
    tokens.add(withRandomValues((array) => array.fill(0), () => generateId()));
    assert.equal(tokens.size, 257);
    assert.equal(withRandomValues((array) => array.fill(0), () => generateId()), "A".repeat(43));
    assert.equal(withRandomValues((array) => array.fill(0xff), () => generateId()), "_".repeat(42) + "8");
  });

  test("crypto.getRandomValues is restored after the stub", () => {
    const before = crypto.getRandomValues;
    withRandomValues((array) => array.fill(1), () => generateId());
    assert.equal(crypto.getRandomValues, before);
    assert.notEqual(generateId(), generateId());
  });
});

describe("isId", () => {
  test("accepts only the canonical spelling of 32 bytes", () => {
    const token = withRandomValues((array) => array.fill(0x5a), () => generateId());
    assert.ok(isId(token));
    // Same bytes, other padding bits in the last character: a second spelling, refused.
    const last = ALPHABET.indexOf(token[42]!);
    for (let i = 1; i < 4; i++) {
      const other = token.slice(0, 42) + ALPHABET[last + i]!;
      assert.deepEqual(Buffer.from(other, "base64url"), Buffer.from(token, "base64url"));
      assert.equal(isId(other), false, other);
    }
  });

  test("refuses anything that is not a token string", () => {
    const token = generateId();
    for (
      const value of [
        undefined,
        null,
        42,
        {},
        [token],
        { toString: () => token },
        "",
        token + "=",
        token.slice(1),
        token + " ",
        token.replace(/^./, "+"),
      ]
    ) {
      assert.equal(isId(value), false, String(value));
    }
  });
});

describe("handleOf", () => {
  test("is 64 lower-case hex characters equal to node:crypto's SHA-256 of the ASCII token", async () => {
    for (let i = 0; i < 200; i++) {
      const token = generateId();
      const key = await handleOf(token);
      assert.match(key, /^[0-9a-f]{64}$/);
      assert.equal(key, createHash("sha256").update(token, "ascii").digest("hex"));
    }
    // A known vector: SHA-256("abc").
    assert.equal(await handleOf("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});

describe("SHA-256 on Web Crypto and on node:crypto", () => {
  test("both give the same 64 hex characters for tokens, the empty string and non-ASCII text", async () => {
    const texts = ["", "abc", "é", "\u{1f511} key", "\ud83d", ...Array.from({ length: 200 }, generateId)];
    for (const text of texts) {
      const fromNode = node.sha256Hex(text);
      assert.equal(typeof fromNode, "string", "node:crypto answers synchronously");
      assert.equal(await web.sha256Hex(text), fromNode, JSON.stringify(text));
      assert.equal(fromNode, createHash("sha256").update(text, "utf8").digest("hex"));
    }
    assert.equal(node.sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});

describe("base64url", () => {
  test("encodes every length as Buffer's base64url does, and decodes its own output back", () => {
    for (let length = 0; length < 70; length++) {
      const bytes = crypto.getRandomValues(new Uint8Array(length));
      const text = encodeBase64url(bytes);
      assert.equal(text, Buffer.from(bytes).toString("base64url"));
      assert.deepEqual(decodeBase64url(text), bytes);
      assert.deepEqual(decodeBase64url(`xyz.${text}`, 4), bytes, "from an offset");
    }
  });

  test("decodes only the canonical spelling: no padding, no other alphabet, zero padding bits", () => {
    for (const text of ["-_9", "-_8=", "+/8", "-_8 ", "A", "AAAAA", "\u00e9AA", "-_\uff21"]) {
      assert.equal(decodeBase64url(text), null, JSON.stringify(text));
    }
  });
});

describe("the hash and signature cache", () => {
  test("keeps at most its bound, the latest entries among them", () => {
    const cache = new LruCache<number, string>(10);
    for (let i = 0; i < 1000; i++) cache.set(i, `v${i}`);
    const kept: number[] = [];
    for (let i = 999; i >= 0; i--) if (cache.get(i) !== undefined) kept.push(i);
    assert.ok(kept.length <= 10, `kept ${kept.length}`);
    assert.deepEqual(kept.slice(0, 5), [999, 998, 997, 996, 995]);
  });

  test("an entry used within every half of its bound in insertions is never evicted", () => {
    const cache = new LruCache<number, string>(10);
    cache.set(0, "v0");
    for (let i = 1; i < 1000; i++) {
      cache.set(i, `v${i}`);
      if (i % 4 === 0) assert.equal(cache.get(0), "v0", `after ${i} insertions`);
    }
  });

  test("a value set again replaces the one kept before", () => {
    const cache = new LruCache<string, number>(4);
    cache.set("a", 1);
    cache.set("b", 2); // "a" moves to the old generation
    cache.set("a", 3);
    assert.equal(cache.get("a"), 3);
    cache.set("c", 4);
    cache.set("d", 5);
    assert.equal(cache.get("a"), 3);
  });
});
