// Session snapshots without a database: what seals opens with the same token and secrets, within
// maxAge and the session's lifetimes, and anything else (tampered, truncated, another token, a
// rotated-out key, another version, garbage) opens to null without throwing.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { describe, test } from "node:test";
import {
  checkSnapshotMaxAge,
  fitsSnapshot,
  MAX_SNAPSHOT_AGE,
  MAX_SNAPSHOT_BYTES,
  openSnapshot,
  sealSnapshot,
  SNAPSHOT_SKEW_MS,
  SNAPSHOT_VERSION,
  type SnapshotContent,
} from "../src/_snapshot.ts";
import { generateId } from "../src/id.ts";

const SECRET = "s".repeat(32);
const OLD = "an old secret, still listed for a while";
const NEW = "a new secret of at least 32 characters";
const T0 = 1_764_000_000_000;
const HOUR = 3_600_000;

function storedBytes(payloadBytes: number): Uint8Array {
  const out = new Uint8Array(8 + payloadBytes);
  new DataView(out.buffer).setBigInt64(0, BigInt(T0) * 1000n);
  for (let i = 8; i < out.length; i++) out[i] = (i * 31) & 0xff;
  return out;
}

function content(overrides: Partial<SnapshotContent> = {}): SnapshotContent {
  return {
    data: storedBytes(40),
    expiresInMs: 7 * 24 * HOUR,
    deadlineInMs: 30 * 24 * HOUR,
    touchDue: false,
    user: "user-42",
    label: "Firefox on Linux",
    ...overrides,
  };
}

async function seal(token: string, c: SnapshotContent = content(), secrets = [SECRET], now = T0): Promise<string> {
  const value = await sealSnapshot(c, { id: token, secrets, now });
  assert.ok(value !== null, "sealed");
  return value;
}

function open(value: string, token: string, now = T0, secrets = [SECRET], maxAge = 5) {
  return openSnapshot(value, { id: token, secrets, maxAge, now });
}

const bytesOf = (value: string): Buffer => Buffer.from(value, "base64url");
const valueOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url");

/** Calls `action` while counting calls of the named `crypto.subtle` methods. */
async function counting<T>(
  names: readonly (keyof SubtleCrypto)[],
  action: () => Promise<T>,
): Promise<{ result: T; calls: Record<string, number> }> {
  const calls: Record<string, number> = {};
  for (const name of names) {
    const real = crypto.subtle[name] as (...args: unknown[]) => unknown;
    calls[name] = 0;
    Object.defineProperty(crypto.subtle, name, {
      configurable: true,
      writable: true,
      value: (...args: unknown[]) => (calls[name]!++, real.apply(crypto.subtle, args)),
    });
  }
  try {
    return { result: await action(), calls };
  } finally {
    for (const name of names) delete (crypto.subtle as unknown as Record<string, unknown>)[name];
  }
}

describe("sealSnapshot and openSnapshot", () => {
  test("a snapshot opens to what was sealed, lifetimes counted down by its age", async () => {
    const token = generateId();
    const sealed = content({ touchDue: true, user: "ünïcødé 🙂", label: "" });
    const value = await seal(token, sealed);
    const opened = await open(value, token, T0 + 1234);
    assert.ok(opened, "opens");
    assert.deepEqual(new Uint8Array(opened.data), sealed.data);
    assert.equal(
      opened.data.buffer.byteLength,
      sealed.data.byteLength,
      "the data owns its buffer (a driver parameter)",
    );
    assert.equal(opened.expiresInMs, sealed.expiresInMs - 1234);
    assert.equal(opened.deadlineInMs, sealed.deadlineInMs! - 1234);
    assert.equal(opened.touchDue, true);
    assert.equal(opened.user, "ünïcødé 🙂");
    assert.equal(opened.label, "");
    assert.equal(opened.ageMs, 1234);
  });

  test("null user, label and deadline, empty data and a false touch flag survive as such", async () => {
    const token = generateId();
    const sealed = content({ data: new Uint8Array(0), deadlineInMs: null, user: null, label: null });
    const opened = await open(await seal(token, sealed), token);
    assert.deepEqual(opened, { ...sealed, ageMs: 0 });
  });

  test("only the elapsed time on the edge clock shortens the lifetimes, whatever the instant", async () => {
    for (const start of [0, 1, T0, 2 ** 47]) {
      const token = generateId();
      const opened = await open(await seal(token, content(), [SECRET], start), token, start + 4000);
      assert.equal(opened?.expiresInMs, content().expiresInMs - 4000, `sealed at ${start}`);
    }
  });

  test("fractional lifetimes are rounded down, never up", async () => {
    const token = generateId();
    const opened = await open(await seal(token, content({ expiresInMs: 1500.9, deadlineInMs: 2000.2 })), token);
    assert.equal(opened?.expiresInMs, 1500);
    assert.equal(opened?.deadlineInMs, 2000);
  });

  test("the value is cookie-safe base64url and differs on every seal (random IV)", async () => {
    const token = generateId();
    const values = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const value = await seal(token);
      assert.match(value, /^[A-Za-z0-9_-]+$/);
      assert.ok(value.length <= MAX_SNAPSHOT_BYTES, `${value.length} characters`);
      values.add(value);
    }
    assert.equal(values.size, 50);
  });
});

describe("freshness", () => {
  test("fresh until exactly maxAge seconds after sealing, refused 1 ms later", async () => {
    const token = generateId();
    const value = await seal(token);
    for (const maxAge of [1, 5, 30, MAX_SNAPSHOT_AGE]) {
      const ms = maxAge * 1000;
      assert.ok(await open(value, token, T0 + ms - 1000, [SECRET], maxAge), `${maxAge}: at maxAge - 1 s`);
      assert.ok(await open(value, token, T0 + ms, [SECRET], maxAge), `${maxAge}: at maxAge`);
      assert.equal(await open(value, token, T0 + ms + 1, [SECRET], maxAge), null, `${maxAge}: at maxAge + 1 ms`);
      assert.equal(await open(value, token, T0 + 10 * HOUR, [SECRET], maxAge), null, `${maxAge}: hours later`);
    }
  });

  test("a seal time in the future is accepted within the skew, as age 0, and refused beyond", async () => {
    const token = generateId();
    const value = await seal(token);
    const early = await open(value, token, T0 - SNAPSHOT_SKEW_MS);
    assert.equal(early?.ageMs, 0);
    assert.equal(early?.expiresInMs, content().expiresInMs, "lifetimes are never extended");
    assert.equal(await open(value, token, T0 - SNAPSHOT_SKEW_MS - 1), null);
    assert.equal(await open(value, token, T0 - HOUR), null);
  });

  test("a session that expires while the snapshot is fresh is refused from that moment", async () => {
    const token = generateId();
    const value = await seal(token, content({ expiresInMs: 3000 }));
    assert.equal((await open(value, token, T0 + 2999))?.expiresInMs, 1);
    assert.equal(await open(value, token, T0 + 3000), null);
    assert.equal(await open(value, token, T0 + 4000), null);
  });

  test("a session that passes its absolute deadline while the snapshot is fresh is refused from that moment", async () => {
    const token = generateId();
    const value = await seal(token, content({ deadlineInMs: 2500 }));
    assert.equal((await open(value, token, T0 + 2499))?.deadlineInMs, 1);
    assert.equal(await open(value, token, T0 + 2500), null);
  });

  test("an already expired session, or one past its deadline, is not sealed", async () => {
    const token = generateId();
    for (const c of [{ expiresInMs: 0 }, { expiresInMs: -5 }, { expiresInMs: 0.5 }, { deadlineInMs: 0 }]) {
      assert.equal(await sealSnapshot(content(c), { id: token, secrets: [SECRET], now: T0 }), null, JSON.stringify(c));
    }
  });
});

describe("refusals", () => {
  test("flipping any bit of any byte makes the snapshot open to null", async () => {
    const token = generateId();
    const value = await seal(token);
    const bytes = bytesOf(value);
    assert.ok(await open(value, token), "the untouched value opens");
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const copy = Uint8Array.from(bytes);
        copy[i]! ^= mask;
        assert.equal(await open(valueOf(copy), token), null, `byte ${i} ^ ${mask}`);
      }
    }
  });

  test("changing any character makes the snapshot open to null, including the last one's padding bits", async () => {
    const token = generateId();
    // 2 or 3 leftover bytes: the last character carries bits no byte uses.
    let value = await seal(token);
    for (let size = 41; value.length % 4 === 0; size++) value = await seal(token, content({ data: storedBytes(size) }));
    for (let i = 0; i < value.length; i++) {
      const c = value[i] === "A" ? "B" : "A";
      assert.equal(await open(value.slice(0, i) + c + value.slice(i + 1), token), null, `character ${i}`);
    }
    const last = value.at(-1)!;
    const canonical = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".indexOf(last);
    const neighbour = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[canonical ^ 1]!;
    assert.equal(await open(value.slice(0, -1) + neighbour, token), null, "a non-canonical last character");
  });

  test("a truncated or extended snapshot opens to null", async () => {
    const token = generateId();
    const value = await seal(token);
    for (let length = 0; length < value.length; length++) {
      assert.equal(await open(value.slice(0, length), token), null, `first ${length} characters`);
      assert.equal(await open(value.slice(value.length - length), token), null, `last ${length} characters`);
    }
    for (const suffix of ["A", "AA", "AAAA", "=", "==", " ", "."]) {
      assert.equal(await open(value + suffix, token), null, `with ${JSON.stringify(suffix)} appended`);
    }
  });

  test("a snapshot opens only with the token it was sealed for", async () => {
    const token = generateId();
    const value = await seal(token);
    assert.ok(await open(value, token), "opens with its own token");
    for (let i = 0; i < 20; i++) assert.equal(await open(value, generateId()), null);
    const nearby = token.slice(0, -1) + (token.at(-1) === "A" ? "E" : "A");
    for (const other of [nearby, token.slice(1), `${token}.`, "", token.toUpperCase()]) {
      assert.equal(await open(value, other), null, other);
    }
  });

  test("any format version other than the current one opens to null", async () => {
    const token = generateId();
    const bytes = bytesOf(await seal(token));
    assert.equal(bytes[0], SNAPSHOT_VERSION);
    for (let version = 0; version < 256; version++) {
      if (version === SNAPSHOT_VERSION) continue;
      const copy = Uint8Array.from(bytes);
      copy[0] = version;
      assert.equal(await open(valueOf(copy), token), null, `version ${version}`);
    }
  });

  test("a value longer than MAX_SNAPSHOT_BYTES is refused without decrypting, even with a valid header", async () => {
    const token = generateId();
    const header = bytesOf(await seal(token)).subarray(0, 23);
    const long = new Uint8Array(Math.ceil((MAX_SNAPSHOT_BYTES * 3) / 4) + 3);
    long.set(header);
    const value = valueOf(long);
    assert.ok(value.length > MAX_SNAPSHOT_BYTES, `${value.length}`);
    const { result, calls } = await counting(["decrypt"], () => open(value, token));
    assert.equal(result, null);
    assert.equal(calls.decrypt, 0);
  });

  test("garbage opens to null and never throws", async () => {
    const token = generateId();
    const garbage: unknown[] = [
      "",
      "A",
      "AA",
      ".",
      "=",
      "%",
      "%zz",
      "\0",
      "\u2000",
      "🙂".repeat(40),
      " ".repeat(100),
      "A".repeat(70),
      "A".repeat(71),
      "A".repeat(MAX_SNAPSHOT_BYTES),
      "A".repeat(MAX_SNAPSHOT_BYTES + 1),
      "_".repeat(100),
      "x".repeat(100_000),
      `${"A".repeat(100)}==`,
      '"quoted"',
      undefined,
      null,
      42,
      {},
    ];
    for (let length = 0; length < 400; length += 7) {
      garbage.push(valueOf(crypto.getRandomValues(new Uint8Array(length))));
    }
    // A real header (version, key id, fresh seal time) before random bytes: these reach decryption.
    const header = bytesOf(await seal(token)).subarray(0, 11);
    let reachDecryption = 0;
    for (let length = 0; length < 200; length += 13) {
      const bytes = crypto.getRandomValues(new Uint8Array(11 + length));
      bytes.set(header);
      garbage.push(valueOf(bytes));
      if (length >= 12 + 16 + 13) reachDecryption++;
    }
    const { calls } = await counting(["decrypt"], async () => {
      for (const value of garbage) {
        assert.equal(await open(value as string, token), null, String(value).slice(0, 40));
      }
    });
    assert.equal(calls.decrypt, reachDecryption);
  });
});

describe("secrets", () => {
  test("a snapshot sealed by a secret no longer listed opens to null without decrypting", async () => {
    const token = generateId();
    const value = await seal(token, content(), [OLD]);
    await open(value, token, T0, [NEW]); // derive NEW's key outside the count
    const { result, calls } = await counting(["decrypt"], () => open(value, token, T0, [NEW]));
    assert.equal(result, null);
    assert.equal(calls.decrypt, 0);
    assert.equal(await open(value, token, T0, []), null);
  });

  test("after a new secret is prepended, old snapshots open while the old secret is listed and new ones seal with the new secret", async () => {
    const token = generateId();
    const before = await seal(token, content(), [OLD]);
    const rotated = [NEW, OLD];
    assert.ok(await open(before, token, T0, rotated), "an old snapshot opens during the rotation");
    const after = await seal(token, content(), rotated);
    assert.ok(await open(after, token, T0, [NEW]), "new snapshots are sealed by the first secret");
    assert.equal(await open(after, token, T0, [OLD]), null);
    assert.equal(await open(before, token, T0, [NEW]), null, "and once the old secret is dropped, its snapshots fail");
  });

  test("opening tries the one key the snapshot names, not every listed key", async () => {
    const token = generateId();
    const secrets = ["first secret of at least 32 characters", "second secret of at least 32 chars!", OLD];
    const value = await seal(token, content(), [OLD]);
    await open(value, token, T0, secrets);
    const { result, calls } = await counting(["decrypt"], () => open(value, token, T0, secrets));
    assert.ok(result, "opens");
    assert.equal(calls.decrypt, 1);
  });

  test("keys are derived once per secret; later seals and opens derive nothing", async () => {
    const token = generateId();
    const secret = `a fresh secret for this test ${crypto.randomUUID()}`;
    const names = ["importKey", "deriveKey", "deriveBits"] as const;
    const first = await counting(names, () => seal(token, content(), [secret]));
    assert.deepEqual(first.calls, { importKey: 1, deriveKey: 1, deriveBits: 1 });
    const later = await counting(names, async () => {
      for (let i = 0; i < 20; i++) {
        assert.ok(await open(await seal(token, content(), [secret]), token, T0, [secret]), "opens");
      }
    });
    assert.deepEqual(later.calls, { importKey: 0, deriveKey: 0, deriveBits: 0 });
  });

  test("each UTC day seals with its own key, derived once, and a snapshot sealed before midnight opens after it", async () => {
    const token = generateId();
    const secret = `a fresh secret for this test ${crypto.randomUUID()}`;
    const midnight = Math.ceil(T0 / 86_400_000) * 86_400_000;
    const names = ["importKey", "deriveKey", "deriveBits"] as const;
    const before = await seal(token, content(), [secret], midnight - 500);
    const next = await counting(names, () => seal(token, content(), [secret], midnight + 2000));
    assert.deepEqual(next.calls, { importKey: 0, deriveKey: 1, deriveBits: 0 }, "only the new day's key");
    const opened = await counting(names, () => open(before, token, midnight + 2000, [secret]));
    assert.equal(opened.result?.ageMs, 2500);
    assert.deepEqual(opened.calls, { importKey: 0, deriveKey: 0, deriveBits: 0 }, "yesterday's key is still kept");
    assert.ok(await open(next.result, token, midnight + 2000, [secret]), "today's snapshot opens");
    // Both days share the key id; moving a seal time across midnight picks the other day's key.
    const moved = bytesOf(before);
    new DataView(moved.buffer, moved.byteOffset).setUint32(7, (midnight + 1000) >>> 0);
    assert.equal(await open(valueOf(moved), token, midnight + 2000, [secret]), null);
  });

  test("sealing without secrets is a RangeError", async () => {
    await assert.rejects(sealSnapshot(content(), { id: generateId(), secrets: [], now: T0 }), RangeError);
  });
});

describe("size", () => {
  /** The most stored bytes that fit beside a user and label, found by fitsSnapshot. */
  function largestData(user: string | null, label: string | null): number {
    let size = 0;
    while (fitsSnapshot({ data: new Uint8Array(size + 1), user, label })) size++;
    return size;
  }

  test("the largest session that fits seals within MAX_SNAPSHOT_BYTES; one byte more gets no snapshot", async () => {
    const token = generateId();
    for (const [user, label] of [[null, null], ["user-42", "Firefox on Linux"], ["ü".repeat(100), null]] as const) {
      const size = largestData(user, label);
      const fits = content({ data: storedBytes(size - 8), user, label });
      const value = await seal(token, fits);
      assert.ok(value.length <= MAX_SNAPSHOT_BYTES && value.length > MAX_SNAPSHOT_BYTES - 4, `${value.length}`);
      assert.deepEqual(new Uint8Array((await open(value, token))!.data), fits.data);
      const over = content({ data: storedBytes(size - 7), user, label });
      assert.equal(fitsSnapshot(over), false);
      assert.equal(await sealSnapshot(over, { id: token, secrets: [SECRET], now: T0 }), null);
    }
  });

  test("a session of about 2 KB fits, and the cookie stays far below 4096 bytes", () => {
    assert.ok(largestData(null, null) >= 2200, `${largestData(null, null)}`);
    const setCookie = `__Host-session.s=${"x".repeat(MAX_SNAPSHOT_BYTES)}; Path=/; Max-Age=${MAX_SNAPSHOT_AGE}; ` +
      "HttpOnly; Secure; SameSite=Lax; Partitioned";
    assert.ok(setCookie.length < 3200, `${setCookie.length}`);
  });

  test("a long user id counts toward the size", () => {
    assert.equal(fitsSnapshot({ data: new Uint8Array(1000), user: null, label: null }), true);
    assert.equal(fitsSnapshot({ data: new Uint8Array(1000), user: "u".repeat(1500), label: null }), false);
  });
});

describe("checkSnapshotMaxAge", () => {
  test("accepts whole seconds from 1 to 60 and refuses anything else", async () => {
    for (const ok of [1, 5, 59, MAX_SNAPSHOT_AGE]) assert.equal(checkSnapshotMaxAge(ok), ok);
    for (const bad of [0, -1, 61, 300, 1.5, Number.NaN, Infinity]) {
      assert.throws(() => checkSnapshotMaxAge(bad), RangeError, String(bad));
    }
    const token = generateId();
    await assert.rejects(open(await seal(token), token, T0, [SECRET], 61), RangeError);
  });
});

describe("cost", () => {
  test("seal + open time on this runtime (printed, not asserted)", async () => {
    const token = generateId();
    for (const [name, data] of [["100 B", storedBytes(92)], ["2 KB", storedBytes(2048)]] as const) {
      const c = content({ data });
      await open(await seal(token, c), token);
      const rounds = 2000;
      let sealMs = 0;
      let openMs = 0;
      for (let i = 0; i < rounds; i++) {
        const a = performance.now();
        const value = await seal(token, c);
        const b = performance.now();
        assert.ok(await open(value, token), "opens");
        openMs += performance.now() - b;
        sealMs += b - a;
      }
      const us = (ms: number) => ((ms * 1000) / rounds).toFixed(1);
      console.log(`snapshot ${name}: seal ${us(sealMs)} µs, open ${us(openMs)} µs`);
    }
  });
});
