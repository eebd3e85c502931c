// Signed cookie values without a database: HMAC-SHA256 in canonical base64url, one spelling per
// value, secrets that rotate, a verified-value cache that only an exact once-valid value hits, the
// same MACs from node:crypto (the built package's `node` condition), and messages that say what
// was wrong with a secret and how to make one.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import { describe, test } from "node:test";
import { checkSecrets, MIN_SECRET_LENGTH, sign, unsign } from "../src/_signature.ts";
import { generateId } from "../src/id.ts";
import * as web from "../src/_crypto.ts";
import * as node from "../src/_crypto_node.ts";

const SECRET = "s".repeat(32);
const OTHER = "o".repeat(32);
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** A signed value whose signature holds both `-` and `_`, so every alphabet swap changes it. */
async function signedWithBothSpecials(secret = SECRET): Promise<{ token: string; value: string; signature: string }> {
  for (;;) {
    const token = generateId();
    const value = await sign(token, secret);
    const signature = value.slice(token.length + 1);
    if (signature.includes("-") && signature.includes("_")) return { token, value, signature };
  }
}

/** Calls `action` while counting the real `crypto.subtle.verify` calls. */
async function countingVerify<T>(action: () => Promise<T>): Promise<{ result: T; calls: number }> {
  const real = crypto.subtle.verify;
  let calls = 0;
  Object.defineProperty(crypto.subtle, "verify", {
    configurable: true,
    writable: true,
    value: (...args: Parameters<SubtleCrypto["verify"]>) => (calls++, real.apply(crypto.subtle, args)),
  });
  try {
    return { result: await action(), calls };
  } finally {
    delete (crypto.subtle as { verify?: unknown }).verify;
    assert.equal(crypto.subtle.verify, real);
  }
}

describe("sign", () => {
  test("the signature is HMAC-SHA256 of the token in base64url without padding", async () => {
    for (let i = 0; i < 200; i++) {
      const token = generateId();
      const expected = createHmac("sha256", SECRET).update(token).digest("base64url");
      assert.equal(await sign(token, SECRET), `${token}.${expected}`);
    }
  });
});

describe("unsign", () => {
  test("a value signed by any listed secret verifies; others do not", async () => {
    const token = generateId();
    assert.equal(await unsign(await sign(token, SECRET), [SECRET]), token);
    assert.equal(await unsign(await sign(token, OTHER), [SECRET, OTHER]), token);
    assert.equal(await unsign(await sign(token, OTHER), [SECRET]), null);
    assert.equal(await unsign(await sign(token, OTHER), []), null);
  });

  test("only the canonical base64url spelling verifies: no standard alphabet, padding or whitespace", async () => {
    const { token, value, signature } = await signedWithBothSpecials();
    assert.equal(await unsign(value, [SECRET]), token, "cached: the canonical value verified once");
    const bytes = Buffer.from(signature, "base64url");
    const standard = bytes.toString("base64");
    assert.ok(/[+/]/.test(standard));
    const variants = [
      standard, // "+" and "/", with "=" padding
      standard.replace(/=+$/, ""), // "+" and "/"
      signature.replace(/-/g, "+"),
      signature.replace(/_/g, "/"),
      `${signature}=`,
      `${signature}==`,
      ` ${signature}`,
      `${signature} `,
      `${signature}\n`,
      `${signature.slice(0, 20)} ${signature.slice(20)}`,
      `${signature.slice(0, 20)}\t${signature.slice(20, 42)}`,
      `${signature}A`,
      signature.slice(0, 42),
      `${signature.slice(0, 42)}.${signature.slice(42)}`,
      `.${signature}`,
      signature.replace(/[A-Za-z]/, (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())),
      `${signature.slice(0, 10)}\u00a0${signature.slice(11)}`,
      `${signature.slice(0, 10)}\uff21${signature.slice(11)}`, // FULLWIDTH A
    ];
    for (const variant of variants) {
      assert.equal(await unsign(`${token}.${variant}`, [SECRET]), null, JSON.stringify(variant));
    }
  });

  test("the 3 other endings of the same signature bytes are refused", async () => {
    const { token, value, signature } = await signedWithBothSpecials();
    assert.equal(await unsign(value, [SECRET]), token);
    const last = ALPHABET.indexOf(signature.at(-1)!);
    assert.equal(last & 3, 0, "sign() writes the canonical ending");
    for (const pad of [1, 2, 3]) {
      const alias = `${signature.slice(0, 42)}${ALPHABET[last | pad]}`;
      assert.deepEqual(
        Buffer.from(alias, "base64url"),
        Buffer.from(signature, "base64url"),
        "a lenient decoder reads the same bytes",
      );
      assert.equal(await unsign(`${token}.${alias}`, [SECRET]), null, alias.slice(-1));
    }
  });

  test("a malformed value costs no HMAC and never throws", async () => {
    const { token, signature } = await signedWithBothSpecials();
    const malformed = [
      "",
      ".",
      "..",
      token,
      `${token}.`,
      `.${signature}`,
      `${token.slice(1)}.${signature}`,
      `${token}x.${signature}`,
      `${token}.${signature}.${signature}`,
      "\0".repeat(87),
      "%E0%A4%A",
      "a".repeat(8000),
      `${token}.${"\u00e9".repeat(43)}`,
      `${token}.${"\ud83d".repeat(43)}`,
    ];
    const { result, calls } = await countingVerify(() => Promise.all(malformed.map((v) => unsign(v, [SECRET, OTHER]))));
    assert.deepEqual(result, malformed.map(() => null));
    assert.equal(calls, 0);
  });

  test("a well-formed forgery costs one HMAC per secret", async () => {
    const forged = await sign(generateId(), "x".repeat(32));
    const { result, calls } = await countingVerify(() => unsign(forged, [SECRET, OTHER, "z".repeat(32)]));
    assert.equal(result, null);
    assert.equal(calls, 3);
  });

  test("a verified value is remembered only while the secret that signed it is listed", async () => {
    const token = generateId();
    const value = await sign(token, OTHER);
    assert.equal(await unsign(value, [SECRET, OTHER]), token);
    const again = await countingVerify(() => unsign(value, [SECRET, OTHER]));
    assert.deepEqual(again, { result: token, calls: 0 }, "a returning client costs no HMAC");
    const rotated = await countingVerify(() => unsign(value, [SECRET]));
    assert.deepEqual(rotated, { result: null, calls: 1 }, "the old secret was dropped: verified afresh, and refused");
  });
});

describe("HMAC-SHA256 on Web Crypto and on node:crypto", () => {
  const secrets = [SECRET, "é".repeat(32), "\u{1f511}".repeat(16), "\ud83d".repeat(32)];

  test("both give the same MAC, and each verifies the other's", async () => {
    for (const secret of secrets) {
      for (const text of [generateId(), generateId(), "", "é"]) {
        const fromNode = node.hmacSha256(secret, text);
        assert.ok(fromNode instanceof Uint8Array, "node:crypto answers synchronously");
        const fromWeb = await web.hmacSha256(secret, text);
        assert.deepEqual(new Uint8Array(fromNode), fromWeb, `${JSON.stringify(secret)} ${JSON.stringify(text)}`);
        assert.equal(node.verifyHmacSha256(secret, text, new Uint8Array(fromWeb)), true);
        assert.equal(await web.verifyHmacSha256(secret, text, new Uint8Array(fromNode)), true);
      }
    }
  });

  test("both refuse a MAC with one bit changed, a short one and another secret's", async () => {
    const token = generateId();
    const mac = new Uint8Array(node.hmacSha256(SECRET, token) as Uint8Array);
    const flipped = mac.slice();
    flipped[31]! ^= 1;
    for (
      const [what, secret, bytes] of [
        ["one bit", SECRET, flipped],
        ["31 bytes", SECRET, mac.slice(0, 31)],
        ["33 bytes", SECRET, Uint8Array.from([...mac, 0])],
        ["other secret", OTHER, mac],
      ] as const
    ) {
      assert.equal(node.verifyHmacSha256(secret, token, bytes), false, what);
      assert.equal(await web.verifyHmacSha256(secret, token, bytes), false, what);
    }
  });
});

describe("checkSecrets", () => {
  const HOW = /set it to at least 32 random characters, e\.g\. SESSION_SECRET=\$\(openssl rand -base64 32\)$/;

  test("an unset secret says it is undefined, probably an unset variable, and how to make one", () => {
    const env: Record<string, string | undefined> = {};
    assert.throws(() => checkSecrets([env.SESSION_SECRET as string]), (error: Error) => {
      assert.equal(error.name, "TypeError");
      assert.match(
        error.message,
        /^Cannot sign cookies: secrets\[0\] is undefined \(an unset environment variable\?\)/,
      );
      assert.match(error.message, HOW);
      return true;
    });
    assert.throws(() => checkSecrets([SECRET, ""]), {
      name: "RangeError",
      message: /^Cannot sign cookies: secrets\[1\] is an empty string \(an unset environment variable\?\); set it/,
    });
  });

  test(`a short secret gives its length, the ${MIN_SECRET_LENGTH} needed and how to make one`, () => {
    assert.throws(() => checkSecrets([SECRET, "x".repeat(31)]), {
      name: "RangeError",
      message: /^Cannot sign cookies: secrets\[1\] is 31 characters, under 32; set it to at least 32 random/,
    });
    assert.throws(() => checkSecrets(["x".repeat(31)]), { message: HOW });
    checkSecrets([SECRET, "x".repeat(MIN_SECRET_LENGTH)]);
  });

  test("a secret that is not a string, or secrets that are not an array, name the type and never the value", () => {
    assert.throws(() => checkSecrets([42 as unknown as string]), {
      name: "TypeError",
      message: /^Cannot sign cookies: secrets\[0\] is a number, not a string; set it/,
    });
    assert.throws(() => checkSecrets([SECRET, null as unknown as string]), {
      message: /secrets\[1\] is null \(an unset/,
    });
    const oneString = "s3cret-".repeat(6);
    assert.throws(() => checkSecrets(oneString as unknown as string[]), (error: Error) => {
      assert.equal(error.name, "TypeError");
      assert.equal(
        error.message,
        "Cannot sign cookies: secrets is a string of 42 characters, not an array; pass [secret], the signing secret first",
      );
      assert.ok(!error.message.includes("s3cret"), "the secret itself is not in the message");
      return true;
    });
  });

  test("an empty list says what to give, or to leave secrets out", () => {
    assert.throws(() => checkSecrets([]), {
      name: "RangeError",
      message:
        "Cannot sign cookies: secrets is an empty array; list at least one secret of 32 or more random characters (e.g. SESSION_SECRET=$(openssl rand -base64 32)), or leave secrets out for unsigned cookies",
    });
  });
});
