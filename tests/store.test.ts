// The PostgresStore suite, run once per transport (tests/_transports.ts) against a real
// PostgreSQL: Neon HTTP (`neon()` and `{ connectionString }`), Neon Pool and Client over the
// WebSocket proxy, pg.Pool, and PGlite in-process. It asserts what a user can observe: rows in
// the table, statements sent, values read back, errors thrown.
//
// Every suite has its own schema (random suffix), dropped in after(). The process runs with
// `TZ=America/New_York` (see the test command) while every database connection runs with
// `TimeZone=Pacific/Auckland`.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import { neon } from "@neondatabase/serverless";
import { type Logger, PostgresStore, type Session, SessionError } from "../mod.ts";
import { generateId, handleOf, isId } from "../src/id.ts";
import { encodeData } from "../src/_codec.ts";
import { databaseUrl, DB_TIME_ZONE, dbSkip, randomSchema, withTimeZone } from "./_db.ts";
import { type Fixture, type FixtureStoreOptions, transports } from "./_transports.ts";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HOUR = 3600;

interface StoredRow {
  key: string;
  data: Uint8Array | null;
  /** `session_expiry` as Postgres prints a `timestamp` (no zone). */
  expiryText: string;
  /** `session_expiry` read as UTC wall time, in ms since the epoch. */
  expiryMs: number;
}

interface Warning {
  message: string;
  details: unknown;
}

/** Node's own SHA-256 of the token's ASCII, lower-case hex: what `session_key` must hold. */
function sha256Hex(token: string): string {
  return createHash("sha256").update(token, "ascii").digest("hex");
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function toBytes(value: unknown): Uint8Array | null {
  if (value === null || value === undefined) return null;
  assert.ok(value instanceof Uint8Array, `expected bytea, got ${typeof value}`);
  return new Uint8Array(value);
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

/** Deterministic "random" bytes (mulberry32), so a failure reproduces. */
function noise(length: number, seed: number): Uint8Array {
  let a = seed >>> 0;
  return Uint8Array.from({ length }, () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) & 0xff;
  });
}

const ascii = (s: string): number[] => Array.from(new TextEncoder().encode(s));

/** A logger that records every warning. */
function spyLogger(): { logger: Logger; warnings: Warning[] } {
  const warnings: Warning[] = [];
  return { warnings, logger: { warn: (message, details) => void warnings.push({ message, details }) } };
}

function isDatabaseError(token?: string, code = "DATABASE_ERROR"): (error: unknown) => boolean {
  return (error: unknown): boolean => {
    assert.ok(error instanceof SessionError, `expected a SessionError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.equal(error.name, "SessionError");
    assert.ok(error.cause instanceof Error, "the driver's error is the cause");
    if (token) {
      assert.ok(!error.message.includes(token), "the message does not contain the token");
      assert.ok(!String(error.stack).includes(token), "the stack does not contain the token");
      assert.ok(!String(error.cause).includes(token), "the cause does not contain the token");
    }
    return true;
  };
}

function isSessionError(code: SessionError["code"]): (error: unknown) => boolean {
  return (error: unknown): boolean => {
    assert.ok(error instanceof SessionError, `expected a SessionError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  };
}

/** A live token with the case of one letter flipped: well-formed, but another token. */
function caseVariant(token: string): string {
  // Index 0..41 only: the last character decides canonical form and stays as it is.
  for (let i = 0; i < 42; i++) {
    const c = token[i]!;
    const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
    if (flipped !== c) return token.slice(0, i) + flipped + token.slice(i + 1);
  }
  throw new Error("token without letters");
}

/** The same bytes spelled differently: a last character with non-zero padding bits. */
function nonCanonical(token: string): string {
  return token.slice(0, 42) + ALPHABET[ALPHABET.indexOf(token[42]!) + 1]!;
}

const objectPrototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();

function assertObjectPrototypeClean(): void {
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), objectPrototypeKeys);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
}

/** Hostile or broken `session_data` values, by what is wrong with them. */
const CORRUPT: { name: string; keepHeader: boolean; payload: Uint8Array | null | "cut 3 bytes" }[] = [
  // Header included: with no absolute lifetime the header does not decide liveness.
  { name: "random bytes", keepHeader: false, payload: noise(96, 0x5eed) },
  { name: "truncated CBOR", keepHeader: true, payload: "cut 3 bytes" },
  { name: "NULL", keepHeader: false, payload: null },
  { name: "empty", keepHeader: false, payload: new Uint8Array(0) },
  { name: "shorter than the header", keepHeader: false, payload: Uint8Array.from([0, 0, 1, 2, 3]) },
  { name: "header only", keepHeader: true, payload: new Uint8Array(0) },
  { name: "not CBOR", keepHeader: true, payload: Uint8Array.from([0xff, 0xfe, 0x1c, 0x1d]) },
  { name: "trailing bytes after the map", keepHeader: true, payload: Uint8Array.from([0xa0, 0x00, 0x01]) },
  { name: "root is an array", keepHeader: true, payload: Uint8Array.from([0x83, 0x01, 0x02, 0x03]) },
  { name: "root is a number", keepHeader: true, payload: Uint8Array.from([0x18, 0x2a]) },
  { name: "root is a string", keepHeader: true, payload: concat([0x62], ascii("hi")) },
  { name: "root is null", keepHeader: true, payload: Uint8Array.from([0xf6]) },
  {
    name: "root is a tagged Map (259)",
    keepHeader: true,
    payload: Uint8Array.from([0xd9, 0x01, 0x03, 0xa1, 0x61, 0x61, 0x01]),
  },
  // {"__proto__": {"polluted": true}}
  {
    name: "a __proto__ key",
    keepHeader: true,
    payload: concat([0xa1, 0x69], ascii("__proto__"), [0xa1, 0x68], ascii("polluted"), [0xf5]),
  },
  // {"a": <array claiming 100,000,000 elements>}
  {
    name: "a huge array length claim",
    keepHeader: true,
    payload: Uint8Array.from([0xa1, 0x61, 0x61, 0x9b, 0, 0, 0, 0, 0x05, 0xf5, 0xe1, 0x00]),
  },
  // <map claiming 100,000,000 entries>
  {
    name: "a huge map length claim",
    keepHeader: true,
    payload: Uint8Array.from([0xbb, 0, 0, 0, 0, 0x05, 0xf5, 0xe1, 0x00]),
  },
  // {"a": <byte string claiming 2^32 bytes>}
  {
    name: "a huge byte string claim",
    keepHeader: true,
    payload: Uint8Array.from([0xa1, 0x61, 0x61, 0x5b, 0, 0, 0, 0x01, 0, 0, 0, 0]),
  },
  // {"a": [[[[… 40,000 levels …]]]]}, under maxDataBytes so it reaches the decoder
  {
    name: "40,000 levels of nesting",
    keepHeader: true,
    payload: concat([0xa1, 0x61, 0x61], new Array<number>(40_000).fill(0x81), [0x00]),
  },
  // {"a": shareable({"b": shared-ref(0)})}: a reference cycle
  {
    name: "a reference cycle",
    keepHeader: true,
    payload: Uint8Array.from([0xa1, 0x61, 0x61, 0xd8, 0x1c, 0xa1, 0x61, 0x62, 0xd8, 0x1d, 0x00]),
  },
];

for (const transport of transports) {
  describe(`PostgresStore over ${transport.name}`, { skip: transport.needsServer ? dbSkip : undefined }, () => {
    let f: Fixture;
    const cleanups: (() => Promise<void>)[] = [];

    before(async () => {
      f = await transport.setup(randomSchema("store"));
    });
    after(async () => {
      await f?.close();
    });
    beforeEach(async () => {
      await f.sql(`delete from ${f.table}`);
      await f.resetCount();
    });
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!();
    });

    // --- helpers bound to this transport -------------------------------------------------------

    async function sent(action: () => Promise<unknown>): Promise<number> {
      await f.resetCount();
      await action();
      return await f.statements();
    }

    async function rowOf(token: string): Promise<StoredRow | undefined> {
      const rows = await f.sql(
        `select session_key as key, session_data as data, session_expiry::text as expiry_text,
           (extract(epoch from session_expiry) * 1000)::float8 as expiry_ms
         from ${f.table} where session_key = $1`,
        [sha256Hex(token)],
      );
      const row = rows[0];
      if (!row) return undefined;
      return {
        key: String(row.key),
        data: toBytes(row.data),
        expiryText: String(row.expiry_text),
        expiryMs: Number(row.expiry_ms),
      };
    }

    async function keys(): Promise<string[]> {
      return (await f.sql(`select session_key as key from ${f.table} order by session_key collate "C"`)).map((r) =>
        String(r.key)
      );
    }

    /** The database clock, ms since the epoch. */
    async function dbNow(): Promise<number> {
      return Number((await f.sql("select (extract(epoch from now()) * 1000)::float8 as ms"))[0]!.ms);
    }

    async function saved(
      data: Record<string, unknown> = { user: "ada" },
      options?: FixtureStoreOptions,
    ): Promise<string> {
      const store = f.store(options);
      const session = store.create();
      for (const [k, v] of Object.entries(data)) session.set(k, v);
      assert.equal(await store.save(session), "created");
      return session.id;
    }

    async function setExpiry(token: string, secondsFromNow: number): Promise<void> {
      await f.sql(
        `update ${f.table} set session_expiry = (now() at time zone 'UTC') + $1 * interval '1 second' where session_key = $2`,
        [secondsFromNow, sha256Hex(token)],
      );
    }

    /** Rewrites the 8-byte creation header to `secondsAgo` before the database's now(). */
    async function setCreated(token: string, secondsAgo: number): Promise<void> {
      await f.sql(
        `update ${f.table} set session_data = overlay(session_data placing
           int8send(((extract(epoch from now()) - $1) * 1000000)::int8) from 1 for 8)
         where session_key = $2`,
        [secondsAgo, sha256Hex(token)],
      );
    }

    async function setData(token: string, data: Uint8Array | null): Promise<void> {
      await f.sql(`update ${f.table} set session_data = decode($1, 'hex') where session_key = $2`, [
        data === null ? null : hex(data),
        sha256Hex(token),
      ]);
    }

    async function entries(session: Session | null): Promise<Record<string, unknown>> {
      assert.ok(session, "a session");
      return Object.fromEntries(await session.entries());
    }

    // --- time zones ----------------------------------------------------------------------------

    test("the connection runs in another time zone than the process", async () => {
      assert.equal(await f.sessionTimeZone(), DB_TIME_ZONE);
      assert.notEqual(Intl.DateTimeFormat().resolvedOptions().timeZone, DB_TIME_ZONE);
    });

    test("save() sets expires to the database's now() + ttl, as an instant", async () => {
      const store = f.store({ ttl: HOUR, absoluteTtl: 24 * HOUR });
      const session = store.create();
      session.set("user", "ada");
      const before = await dbNow();
      await store.save(session);
      const afterSave = await dbNow();
      const expires = session.expires!.getTime();
      assert.ok(
        expires >= before + HOUR * 1000 - 1 && expires <= afterSave + HOUR * 1000 + 1,
        `${expires - before} ms after the db clock`,
      );
    });

    test("the stored session_expiry is UTC wall time, whatever TimeZone and TZ say", async () => {
      const store = f.store({ ttl: HOUR, absoluteTtl: 24 * HOUR });
      const session = store.create();
      session.set("user", "ada");
      await store.save(session);
      const row = (await rowOf(session.id))!;
      // "2026-01-02 03:04:05.678901" read as UTC is the instant the store reported.
      const asUtc = Date.parse(`${row.expiryText.replace(" ", "T")}Z`);
      assert.ok(
        Math.abs(asUtc - session.expires!.getTime()) < 1,
        `${row.expiryText} vs ${session.expires!.toISOString()}`,
      );
      assert.ok(Math.abs(row.expiryMs - session.expires!.getTime()) < 1);
      const [lag] = await f.sql(
        `select extract(epoch from (session_expiry - (now() at time zone 'UTC')))::float8 as s from ${f.table} where session_key = $1`,
        [sha256Hex(session.id)],
      );
      assert.ok(Number(lag!.s) > HOUR - 60 && Number(lag!.s) <= HOUR, `expiry is ${lag!.s} s from UTC now`);
      // read() reports the same instant.
      const again = await store.read(session.id);
      assert.equal(again!.expires!.getTime(), session.expires!.getTime());
    });

    test("session_data starts with the creation time from the database clock", async () => {
      const before = await dbNow();
      const id = await saved();
      const afterSave = await dbNow();
      const data = (await rowOf(id))!.data!;
      const micros = new DataView(data.buffer, data.byteOffset, 8).getBigInt64(0);
      const ms = Number(micros) / 1000;
      assert.ok(ms >= before - 1 && ms <= afterSave + 1, `header ${ms - before} ms after the db clock`);
    });

    // --- rows in the table -----------------------------------------------------------------------

    test("save() stores one row under the hex SHA-256 of the token, never the token", async () => {
      const id = await saved({ user: "ada" });
      const key = sha256Hex(id);
      assert.match(key, /^[0-9a-f]{64}$/);
      assert.equal(await handleOf(id), key);
      assert.deepEqual(await keys(), [key]);
      const row = (await rowOf(id))!;
      assert.equal(row.key, key);
      assert.ok(!hex(row.data!).includes(hex(new TextEncoder().encode(id))), "the token is not in session_data");
      const [found] = await f.sql(
        `select count(*)::int as n from ${f.table} where session_key = $1 or position($2::bytea in session_data) > 0`,
        [
          id.padEnd(64),
          new TextEncoder().encode(id),
        ],
      );
      assert.equal(Number(found!.n), 0);
    });

    test("read() never creates a row for an unknown id", async () => {
      const store = f.store();
      const unknown = generateId();
      assert.equal(await sent(async () => assert.equal(await store.read(unknown), null)), 1);
      assert.equal(await store.exists(unknown), false);
      assert.equal(await store.destroy(unknown), false);
      assert.equal(await store.regenerate(unknown), null);
      assert.deepEqual(await keys(), []);
    });

    test("a session with no data is never inserted", async () => {
      const store = f.store();
      const session = store.create();
      assert.equal(await sent(async () => assert.equal(await store.save(session), "unchanged")), 0);
      session.set("x", 1);
      session.delete("x");
      assert.equal(await sent(async () => assert.equal(await store.save(session), "unchanged")), 0);
      assert.deepEqual(await keys(), []);
    });

    test("a case-changed variant of a live token is another, unknown session", async () => {
      const store = f.store();
      const id = await saved();
      const variant = caseVariant(id);
      assert.ok(isId(variant));
      assert.equal(await sent(async () => assert.equal(await store.read(variant), null)), 1);
      assert.deepEqual(await keys(), [sha256Hex(id)]);
    });

    test("malformed ids read as null and send no statement", async () => {
      const store = f.store();
      const id = await saved();
      const key = sha256Hex(id);
      const malformed = [
        "",
        "a",
        id.slice(0, 42),
        id + "A",
        id + " ",
        " " + id,
        id.slice(0, 42) + " ",
        id + "\n",
        id + "\t",
        id.slice(0, 42) + "%",
        id.slice(0, 40) + "%2F",
        "%E0%A4%A" + id.slice(8),
        "\0" + id.slice(1),
        id.slice(0, 42) + "\0",
        "'" + id.slice(1),
        `"${id.slice(2)}"`,
        id.slice(0, 42) + "'",
        "' OR 1=1 --",
        "x".repeat(8192),
        id.slice(0, 42) + "é",
        "é".repeat(43),
        "😀".repeat(22),
        "\u0410" + id.slice(1), // Cyrillic A
        id.slice(0, 42) + "=",
        id.slice(0, 41) + "+/",
        key,
        key.toUpperCase(),
        nonCanonical(id),
      ];
      for (const bad of malformed) {
        const statements = await sent(async () => {
          assert.equal(await store.read(bad), null, JSON.stringify(bad));
          assert.equal(await store.exists(bad), false);
          assert.equal(await store.destroy(bad), false);
          assert.equal(await store.regenerate(bad), null);
        });
        assert.equal(statements, 0, `statements sent for ${JSON.stringify(bad.slice(0, 50))}`);
      }
      assert.deepEqual(await keys(), [key]);
      assert.deepEqual(await entries(await store.read(id)), { user: "ada" });
    });

    // --- data --------------------------------------------------------------------------------------

    test("every supported type reads back as the same type", async () => {
      const values: Record<string, unknown> = {
        string: "héllo ✓ \u0000 ' \" \\x00",
        empty: "",
        int: 42,
        negative: -7,
        float: 3.25,
        maxSafe: Number.MAX_SAFE_INTEGER,
        tiny: 5e-324,
        infinity: -Infinity,
        yes: true,
        no: false,
        nothing: null,
        array: [1, "two", [3, [4, [5]]], { six: 6 }],
        object: { a: { b: { c: [true, null, "d"] } }, e: [] },
        emptyObject: {},
        date: new Date("2024-03-10T06:59:59.123Z"),
        map: new Map<unknown, unknown>([["k", 1], [2, "two"], ["nested", new Map([["x", [1]]])]]),
        set: new Set<unknown>(["a", 1, true]),
        bigint: 2n ** 80n,
        negativeBigint: -(2n ** 70n),
        smallBigint: 7n,
        bytes: new Uint8Array([0, 1, 127, 128, 254, 255]),
        emptyBytes: new Uint8Array(0),
        nestedBytes: { inner: [new Uint8Array([9, 8, 7])] },
      };
      const id = await saved(values);
      // A fresh store: nothing cached in memory.
      const back = await entries(await f.store().read(id));
      assert.deepStrictEqual(back, values);
      assert.ok(back.date instanceof Date);
      assert.ok(back.map instanceof Map && back.set instanceof Set);
      assert.equal(typeof back.smallBigint, "bigint");
      for (const bytes of [back.bytes, back.emptyBytes, (back.nestedBytes as { inner: unknown[] }).inner[0]]) {
        assert.equal(Object.getPrototypeOf(bytes), Uint8Array.prototype, "a plain Uint8Array, not a Buffer");
      }
      assert.equal(Object.getPrototypeOf(back.object), Object.prototype);
    });

    test("save() of an oversize session is DATA_TOO_LARGE and leaves the stored data as it was", async () => {
      const store = f.store({ maxDataBytes: 256 });
      const id = await saved({ user: "ada" }, { maxDataBytes: 256 });
      const before = (await rowOf(id))!;
      const session = (await store.read(id))!;
      session.set("essay", "x".repeat(1000));
      const statements = await sent(() =>
        assert.rejects(store.save(session), (error: unknown) => {
          isSessionError("DATA_TOO_LARGE")(error);
          assert.match((error as Error).message, /over the 256-byte limit/);
          return true;
        })
      );
      assert.equal(statements, 0);
      assert.deepEqual((await rowOf(id))!.data, before.data);
      // A new oversize session inserts nothing.
      const fresh = store.create();
      fresh.set("essay", "x".repeat(1000));
      await assert.rejects(store.save(fresh), isSessionError("DATA_TOO_LARGE"));
      assert.deepEqual(await keys(), [sha256Hex(id)]);
    });

    test("data of exactly maxDataBytes is saved and read back; one byte more is DATA_TOO_LARGE", async () => {
      const limit = 300;
      // {"s": "xxx…"} sized to the byte by the codec itself.
      let length = limit;
      while (encodeData(new Map([["s", "x".repeat(length)]])).byteLength > limit) length--;
      const overhead = limit - length;
      assert.equal(encodeData(new Map([["s", "x".repeat(length + 1)]])).byteLength, limit + 1);
      const spy = spyLogger();
      const store = f.store({ maxDataBytes: limit, logger: spy.logger });
      const exact = store.create();
      exact.set("s", "x".repeat(limit - overhead));
      assert.equal(await store.save(exact), "created");
      assert.equal((await rowOf(exact.id))!.data!.byteLength, 8 + limit);
      assert.deepEqual(await entries(await store.read(exact.id)), { s: "x".repeat(limit - overhead) });
      assert.equal(spy.warnings.length, 0);
      const over = store.create();
      over.set("s", "x".repeat(limit - overhead + 1));
      await assert.rejects(store.save(over), isSessionError("DATA_TOO_LARGE"));
      assert.deepEqual(await keys(), [sha256Hex(exact.id)]);
    });

    test("stored data over maxDataBytes reads as an empty session with one warning", async () => {
      const id = await saved({ essay: "x".repeat(1000) });
      const spy = spyLogger();
      const small = f.store({ maxDataBytes: 256, logger: spy.logger });
      assert.deepEqual(await entries(await small.read(id)), {});
      assert.equal(spy.warnings.length, 1);
    });

    test("save() of a function nested in an object is UNENCODABLE_DATA and writes nothing", async () => {
      const store = f.store();
      const id = await saved({ user: "ada" });
      const before = (await rowOf(id))!;
      const session = (await store.read(id))!;
      session.set("profile", { name: "ada", greet: () => "hi" });
      const statements = await sent(() =>
        assert.rejects(store.save(session), (error: unknown) => {
          isSessionError("UNENCODABLE_DATA")(error);
          assert.ok((error as SessionError).cause, "the encoder's error is the cause");
          return true;
        })
      );
      assert.equal(statements, 0);
      assert.deepEqual((await rowOf(id))!.data, before.data);
      for (
        const value of [
          { deep: [Symbol("s")] },
          (() => {
            const o: Record<string, unknown> = {};
            o.self = o;
            return o;
          })(),
        ]
      ) {
        const fresh = store.create();
        fresh.set("bad", value);
        await assert.rejects(store.save(fresh), isSessionError("UNENCODABLE_DATA"));
      }
      assert.deepEqual(await keys(), [sha256Hex(id)]);
    });

    for (const corrupt of CORRUPT) {
      test(`stored data with ${corrupt.name} reads as an empty session with one warning, and saving over it works`, async () => {
        // Without an absolute lifetime the header does not decide whether the row is live.
        const options = { absoluteTtl: null };
        const id = await saved({ keep: "me", list: [1, 2, 3], text: "some text to cut short" }, options);
        const original = (await rowOf(id))!.data!;
        let column: Uint8Array | null;
        if (corrupt.payload === "cut 3 bytes") column = original.subarray(0, original.length - 3);
        else if (corrupt.payload === null) column = null;
        else column = corrupt.keepHeader ? concat(original.subarray(0, 8), corrupt.payload) : corrupt.payload;
        await setData(id, column);

        const spy = spyLogger();
        const store = f.store({ ...options, logger: spy.logger });
        let session: Session | null = null;
        const started = performance.now();
        assert.equal(
          await sent(async () => {
            session = await store.read(id);
          }),
          1,
        );
        assert.ok(performance.now() - started < 5_000, "fails fast");
        assert.ok(session, "the row is live: a session, not null");
        const s = session as Session;
        assert.deepEqual(await entries(s), {});
        assert.equal(spy.warnings.length, 1, "exactly one warning");
        assert.ok(!JSON.stringify(spy.warnings).includes(id), "the warning does not contain the token");
        assertObjectPrototypeClean();
        assert.equal(await store.exists(id), true);

        s.set("fixed", 1);
        assert.equal(await sent(async () => assert.equal(await store.save(s), "updated")), 1);
        assert.deepEqual(await entries(await store.read(id)), { fixed: 1 });
        assert.equal(spy.warnings.length, 1, "no further warning once repaired");
        assertObjectPrototypeClean();
      });
    }

    // --- writes --------------------------------------------------------------------------------

    test("save() after a concurrent destroy says gone and does not resurrect the row", async () => {
      const store = f.store();
      const id = await saved();
      const slow = (await store.read(id))!;
      assert.equal(await store.destroy(id), true);
      slow.set("late", true);
      // The compare-and-set misses, and a read of the row says it is gone.
      assert.equal(await sent(async () => assert.equal(await store.save(slow), "gone")), 2);
      assert.deepEqual(await keys(), []);
      assert.equal(await store.read(id), null);
    });

    test("save() after a concurrent regenerate says gone and the old id stays dead", async () => {
      const store = f.store();
      const id = await saved({ user: "ada" });
      const slow = (await store.read(id))!;
      const moved = (await store.regenerate(id))!;
      slow.set("late", true);
      assert.equal(await store.save(slow), "gone");
      assert.deepEqual(await keys(), [sha256Hex(moved.id)]);
      assert.equal(await store.read(id), null);
      assert.deepEqual(await entries(await store.read(moved.id)), { user: "ada" });
    });

    test("save() after the session expired says gone and leaves the row expired", async () => {
      const store = f.store();
      const id = await saved();
      const slow = (await store.read(id))!;
      await setExpiry(id, -1);
      const before = (await rowOf(id))!;
      slow.set("late", true);
      assert.equal(await store.save(slow), "gone");
      assert.deepEqual(await rowOf(id), before);
      assert.equal(await store.read(id), null);
    });

    test("concurrent saves of different keys both survive", async () => {
      const store = f.store();
      const id = await saved({ user: "ada", stale: true });
      const a = (await store.read(id))!;
      const b = (await store.read(id))!;
      a.set("cart", ["book"]);
      b.set("theme", "dark");
      b.delete("stale");
      assert.equal(await sent(async () => assert.equal(await store.save(a), "updated")), 1);
      // b read before a wrote: one compare-and-set miss, a read of the row a left, the merged write.
      assert.equal(await sent(async () => assert.equal(await store.save(b), "updated")), 3);
      assert.deepEqual(await entries(await store.read(id)), { user: "ada", cart: ["book"], theme: "dark" });
    });

    test("saves racing in parallel lose no key", async () => {
      const store = f.store();
      const id = await saved({ user: "ada" });
      const sessions = await Promise.all([1, 2, 3, 4].map(() => store.read(id)));
      sessions.forEach((s, i) => s!.set(`k${i}`, i));
      const results = await Promise.all(sessions.map((s) => store.save(s!)));
      assert.deepEqual(results, ["updated", "updated", "updated", "updated"]);
      assert.deepEqual(await entries(await store.read(id)), { user: "ada", k0: 0, k1: 1, k2: 2, k3: 3 });
    });

    // --- timeouts --------------------------------------------------------------------------------

    test("idle timeout: an expired session reads null, does not exist and is not counted", async () => {
      const store = f.store();
      const live = await saved({ n: 1 });
      const id = await saved({ n: 2 });
      await setExpiry(id, -1);
      const expired = await rowOf(id);
      assert.equal(await store.read(id), null);
      assert.equal(await store.exists(id), false);
      assert.equal(await store.count(), 1);
      // Reads never write: the expired row is still there, untouched, for gc.
      assert.deepEqual(await rowOf(id), expired);
      assert.equal(await store.regenerate(id), null);
      assert.equal(await store.exists(live), true);
    });

    test("absolute timeout: a session created longer ago than absoluteTtl reads null", async () => {
      const options = { ttl: HOUR, absoluteTtl: 2 * HOUR };
      const store = f.store(options);
      const live = await saved({ n: 1 }, options);
      const id = await saved({ n: 2 }, options);
      await setCreated(id, 2 * HOUR + 1);
      assert.equal(await store.read(id), null);
      assert.equal(await store.exists(id), false);
      assert.equal(await store.count(), 1);
      assert.equal(await store.regenerate(id), null);
      assert.ok(await store.read(live));
    });

    test("a creation header before 1970 or in year 9999 is never a database error", async () => {
      const options = { ttl: HOUR, touchAfter: 60 };
      const store = f.store(options);
      const cases: [string, boolean][] = [
        ["ffffffffffffffff", false], // -1 µs
        ["8000000000000000", false], // the most negative int8
        ["0000000000000000", false], // 1970-01-01: long past the absolute lifetime
        ["7fffffffffffffff", true], // far beyond 9999-12-31: clamped, still live
      ];
      for (const [header, live] of cases) {
        const id = await saved({ n: 1 }, options);
        await f.sql(
          `update ${f.table} set session_data = overlay(session_data placing decode($1, 'hex') from 1 for 8),
             session_expiry = (now() at time zone 'UTC') + interval '30 seconds' where session_key = $2`,
          [header, sha256Hex(id)],
        );
        const session = await store.read(id);
        assert.equal(session !== null, live, header);
        assert.equal(await store.exists(id), live, header);
        if (session) {
          // The stale expiry rolled to now + ttl: the clamped header caps nothing.
          assert.ok(session.expires!.getTime() > Date.now() + HOUR * 1000 - 120_000, header);
          session.set("n", 2);
          assert.equal(await store.save(session), "updated");
        }
      }
      assert.equal(await store.count(), 1);
    });

    test("touch never extends a session past creation + absoluteTtl", async () => {
      const options = { ttl: HOUR, absoluteTtl: 2 * HOUR, touchAfter: 60 };
      const store = f.store(options);
      const id = await saved({ n: 1 }, options);
      // Created 1 h 50 min ago: the cap is 10 min from now, sooner than now + ttl.
      await setCreated(id, 2 * HOUR - 600);
      await setExpiry(id, 30);
      const session = (await store.read(id))!;
      const [cap] = await f.sql(
        `select (extract(epoch from timestamp 'epoch' + ((('x' || encode(substr(session_data, 1, 8), 'hex'))::bit(64)::int8) * interval '1 microsecond') + interval '7200 seconds') * 1000)::float8 as ms
         from ${f.table} where session_key = $1`,
        [sha256Hex(id)],
      );
      const capMs = Number(cap!.ms);
      const row = (await rowOf(id))!;
      assert.ok(Math.abs(row.expiryMs - capMs) < 1, "rolled to the cap exactly");
      assert.ok(Math.abs(session.expires!.getTime() - capMs) < 1);
      // A write later on cannot push it further either.
      session.set("n", 2);
      assert.equal(await store.save(session), "updated");
      assert.ok((await rowOf(id))!.expiryMs <= capMs + 1);
      assert.ok(session.expires!.getTime() <= capMs + 1);
    });

    test("touchAfter: a read with a stale expiry rolls it forward with one UPDATE after the SELECT", async () => {
      const options = { ttl: HOUR, touchAfter: 600, absoluteTtl: null };
      const store = f.store(options);
      const id = await saved({ n: 1 }, options);
      await setExpiry(id, HOUR - 700);
      const stale = (await rowOf(id))!;
      const before = await dbNow();
      let session: Session | null = null;
      assert.equal(
        await sent(async () => {
          session = await store.read(id);
        }),
        2,
      );
      const afterRead = await dbNow();
      const rolled = (await rowOf(id))!;
      assert.ok(rolled.expiryMs > stale.expiryMs + 600_000, "expiry moved forward");
      assert.ok(rolled.expiryMs >= before + HOUR * 1000 - 1 && rolled.expiryMs <= afterRead + HOUR * 1000 + 1);
      assert.ok(Math.abs((session as Session | null)!.expires!.getTime() - rolled.expiryMs) < 1);
    });

    test("touchAfter: a read with a fresh expiry does not write", async () => {
      const options = { ttl: HOUR, touchAfter: 600, absoluteTtl: null };
      const store = f.store(options);
      const id = await saved({ n: 1 }, options);
      await setExpiry(id, HOUR - 100);
      const fresh = (await rowOf(id))!;
      assert.equal(await sent(async () => assert.ok(await store.read(id))), 1);
      const after = (await rowOf(id))!;
      assert.equal(after.expiryText, fresh.expiryText);
      assert.deepEqual(after.data, fresh.data);
    });

    // --- regenerate, destroy, exists, count, gc ------------------------------------------------

    test("regenerate() moves the data to a new id in one statement and deletes the old row", async () => {
      const store = f.store();
      const id = await saved({ user: "ada", roles: ["admin"] });
      await setCreated(id, 1000);
      let next: Session | null = null;
      const before = await dbNow();
      assert.equal(
        await sent(async () => {
          next = await store.regenerate(id);
        }),
        1,
      );
      const moved = next as Session | null;
      assert.ok(moved);
      assert.notEqual(moved.id, id);
      assert.ok(isId(moved.id));
      assert.deepEqual(await entries(moved), { user: "ada", roles: ["admin"] });
      assert.deepEqual(await keys(), [sha256Hex(moved.id)]);
      assert.equal(await store.read(id), null);
      assert.deepEqual(await entries(await store.read(moved.id)), { user: "ada", roles: ["admin"] });
      // The absolute deadline is kept (ASVS 7.3.2): the creation header moves with the data.
      const createdOf = async (token: string): Promise<number> => {
        const data = (await rowOf(token))!.data!;
        return Number(new DataView(data.buffer, data.byteOffset, 8).getBigInt64(0)) / 1000;
      };
      const kept = await createdOf(moved.id);
      assert.ok(kept < before - 999_000 && kept > before - 1_001_000, "creation time kept");
      // Only an explicit restart starts a new absolute lifetime.
      const restarted = (await store.regenerate(moved.id, { restart: true }))!;
      assert.ok(await createdOf(restarted.id) >= before - 1, "creation time reset on restart");
    });

    test("regenerate() however often never outlives the absolute lifetime", async () => {
      const options = { ttl: HOUR, absoluteTtl: 2 * HOUR, touchAfter: 60 };
      const store = f.store(options);
      let id = await saved({ user: "ada" }, options);
      await setCreated(id, 2 * HOUR - 30);
      for (let i = 0; i < 3; i++) {
        const next = (await store.regenerate(id))!;
        assert.ok(next, "still within the lifetime");
        assert.ok(next.expires!.getTime() <= (await dbNow()) + 31_000, "expiry capped by the absolute deadline");
        id = next.id;
      }
      await setCreated(id, 2 * HOUR + 1);
      assert.equal(await store.regenerate(id), null, "past the absolute lifetime a regenerate finds nothing");
    });

    test("regenerate() of an unknown id is null and writes nothing", async () => {
      const store = f.store();
      const id = await saved();
      assert.equal(await sent(async () => assert.equal(await store.regenerate(generateId()), null)), 1);
      assert.deepEqual(await keys(), [sha256Hex(id)]);
    });

    test("session.regenerate() then save() moves the session with its changes", async () => {
      const store = f.store();
      const id = await saved({ user: "ada" });
      const session = (await store.read(id))!;
      session.regenerate();
      session.set("signedIn", true);
      assert.equal(await sent(async () => assert.equal(await store.save(session), "regenerated")), 1);
      assert.notEqual(session.id, id);
      assert.deepEqual(await keys(), [sha256Hex(session.id)]);
      assert.deepEqual(await entries(await store.read(session.id)), { user: "ada", signedIn: true });
    });

    test("session.regenerate() with changes keeps keys another request saved meanwhile", async () => {
      const store = f.store();
      const id = await saved({ user: "ada" });
      const signIn = (await store.read(id))!;
      const other = (await store.read(id))!;
      other.set("cart", ["book"]);
      assert.equal(await store.save(other), "updated");
      signIn.regenerate();
      signIn.set("signedIn", true);
      assert.equal(await store.save(signIn), "regenerated");
      assert.deepEqual(await keys(), [sha256Hex(signIn.id)]);
      assert.deepEqual(await entries(await store.read(signIn.id)), { user: "ada", cart: ["book"], signedIn: true });
    });

    test("destroy() deletes the row in one statement", async () => {
      const store = f.store();
      const other = await saved({ n: 1 });
      const id = await saved({ n: 2 });
      assert.equal(await sent(async () => assert.equal(await store.destroy(id), true)), 1);
      assert.deepEqual(await keys(), [sha256Hex(other)]);
      assert.equal(await store.destroy(id), false);
      assert.equal(await store.read(id), null);
    });

    test("session.destroy() then save() deletes the row", async () => {
      const store = f.store();
      const id = await saved();
      const session = (await store.read(id))!;
      session.destroy();
      assert.equal(await sent(async () => assert.equal(await store.save(session), "destroyed")), 1);
      assert.deepEqual(await keys(), []);
    });

    test("exists() is true for a live session only, in one statement", async () => {
      const store = f.store();
      const id = await saved();
      assert.equal(await sent(async () => assert.equal(await store.exists(id), true)), 1);
      assert.equal(await store.exists(generateId()), false);
      await setExpiry(id, -1);
      assert.equal(await store.exists(id), false);
    });

    test("count() counts live sessions only", async () => {
      const options = { ttl: HOUR, absoluteTtl: 2 * HOUR };
      const store = f.store(options);
      await saved({ n: 1 }, options);
      await saved({ n: 2 }, options);
      const idle = await saved({ n: 3 }, options);
      const old = await saved({ n: 4 }, options);
      await setExpiry(idle, -1);
      await setCreated(old, 3 * HOUR);
      let n = -1;
      assert.equal(
        await sent(async () => {
          n = await store.count();
        }),
        1,
      );
      assert.equal(n, 2);
    });

    test("gc() deletes expired rows only", async () => {
      const store = f.store();
      const live = [await saved({ n: 1 }), await saved({ n: 2 })];
      const expired = [await saved({ n: 3 }), await saved({ n: 4 })];
      for (const id of expired) await setExpiry(id, -1);
      let deleted = -1;
      assert.equal(
        await sent(async () => {
          deleted = (await store.gc()).deleted;
        }),
        1,
      );
      assert.equal(deleted, 2);
      assert.deepEqual(await keys(), live.map(sha256Hex).sort());
      assert.equal((await store.gc()).deleted, 0);
    });

    // --- statements per call ---------------------------------------------------------------------

    test("each store call sends the documented number of statements", async () => {
      const store = f.store({ ttl: HOUR, touchAfter: 600 });
      const measured: Record<string, number> = {};
      const measure = async (name: string, action: () => Promise<unknown>): Promise<void> => {
        measured[name] = await sent(action);
      };
      let s = store.create();
      await measure("create()", () => Promise.resolve(s = store.create()));
      await measure("save() new, empty", () => store.save(s));
      s.set("user", "ada");
      await measure("save() new", () => store.save(s));
      const id = s.id;
      await measure("save() unchanged", () => store.save(s));
      let r: Session | null = null;
      await measure("read()", async () => {
        r = await store.read(id);
      });
      await measure("get() after read()", () => (r as Session | null)!.get("user"));
      await setExpiry(id, HOUR - 700);
      await measure("read() rolling the expiry", () => store.read(id));
      await measure("read() unknown id", () => store.read(generateId()));
      await measure("read() malformed id", () => store.read("nope"));
      const a = (await store.read(id))!;
      const b = (await store.read(id))!;
      a.set("a", 1);
      b.set("b", 2);
      await measure("save() changed", () => store.save(a));
      await measure("save() after a concurrent change", () => store.save(b));
      await measure("exists()", () => store.exists(id));
      await measure("count()", () => store.count());
      let moved: Session | null = null;
      await measure("regenerate()", async () => {
        moved = await store.regenerate(id);
      });
      const m = (moved as Session | null)!;
      m.regenerate();
      await measure("session.regenerate() + save()", () => store.save(m));
      const gone = (await store.read(m.id))!;
      await measure("destroy()", () => store.destroy(m.id));
      gone.set("late", 1);
      await measure("save() after destroy", () => store.save(gone));
      const d = await saved({ n: 1 });
      const ds = (await store.read(d))!;
      ds.destroy();
      await measure("session.destroy() + save()", () => store.save(ds));
      await measure("gc()", () => store.gc());
      console.log(`statements per call over ${transport.name}: ${JSON.stringify(measured)}`);
      assert.deepEqual(measured, {
        "create()": 0,
        "save() new, empty": 0,
        "save() new": 1,
        "save() unchanged": 0,
        "read()": 1,
        "get() after read()": 0,
        "read() rolling the expiry": 2,
        "read() unknown id": 1,
        "read() malformed id": 0,
        "save() changed": 1,
        "save() after a concurrent change": 3,
        "exists()": 1,
        "count()": 1,
        "regenerate()": 1,
        "session.regenerate() + save()": 1,
        "destroy()": 1,
        "save() after destroy": 2,
        "session.destroy() + save()": 1,
        "gc()": 1,
      });
    });

    test("a save whose data encodes as it was read (a set of an identical value) sends nothing", async () => {
      const store = f.store();
      const id = await saved({ user: "ada", n: 1 });
      const session = (await store.read(id))!;
      session.set("user", "ada");
      session.set("n", 1);
      assert.equal(await sent(async () => assert.equal(await store.save(session), "unchanged")), 0);
      session.set("n", 2);
      assert.equal(await sent(async () => assert.equal(await store.save(session), "updated")), 1);
    });

    // --- failures ------------------------------------------------------------------------------

    test("a missing table is TABLE_MISSING naming the migrate command, with the driver's error as cause and no token in the message", async () => {
      const store = f.store({ table: `${f.table.split(".")[0]}.missing` });
      const token = generateId();
      await assert.rejects(store.read(token), isDatabaseError(token, "TABLE_MISSING"));
      await assert.rejects(store.exists(token), isDatabaseError(token, "TABLE_MISSING"));
      await assert.rejects(store.destroy(token), isDatabaseError(token, "TABLE_MISSING"));
      await assert.rejects(store.regenerate(token), isDatabaseError(token, "TABLE_MISSING"));
      await assert.rejects(store.count(), isDatabaseError(undefined, "TABLE_MISSING"));
      await assert.rejects(store.gc(), isDatabaseError(undefined, "TABLE_MISSING"));
      const session = store.create();
      session.set("user", "ada");
      await assert.rejects(store.save(session), isDatabaseError(session.id, "TABLE_MISSING"));
      assert.equal(session.isNew, true, "nothing was stored");
    });

    test("a closed or unreachable connection is DATABASE_ERROR with a cause, never a missing session", async () => {
      const broken = await f.brokenStore();
      cleanups.push(broken.close);
      const id = await saved();
      await assert.rejects(broken.store.read(id), isDatabaseError(id));
      await assert.rejects(broken.store.exists(id), isDatabaseError(id));
      const session = broken.store.create();
      session.set("user", "ada");
      await assert.rejects(broken.store.save(session), isDatabaseError(session.id));
      // The working connection still sees the session untouched.
      assert.deepEqual(await entries(await f.store().read(id)), { user: "ada" });
    });
  });
}

describe("PostgresStore over neon() query functions made with other options", { skip: dbSkip }, () => {
  const transport = transports.find((t) => t.name.startsWith("Neon HTTP neon()"))!;
  let f: Fixture;

  before(async () => {
    f = await transport.setup(randomSchema("store_neon_opts"));
  });
  after(async () => {
    await f?.close();
  });

  for (const options of [{ arrayMode: true }, { fullResults: true }, { arrayMode: true, fullResults: true }] as const) {
    test(`neon(url, ${JSON.stringify(options)}) works the same, one statement per call`, async () => {
      const store = new PostgresStore({ sql: neon(withTimeZone(databaseUrl()), options), table: f.table });
      const session = store.create();
      session.set("user", "ada");
      await f.resetCount();
      assert.equal(await store.save(session), "created");
      assert.deepEqual(Object.fromEntries(await (await store.read(session.id))!.entries()), { user: "ada" });
      assert.equal(await store.exists(session.id), true);
      assert.equal(await store.count() >= 1, true);
      assert.equal(await store.destroy(session.id), true);
      assert.equal(await f.statements(), 5);
    });
  }
});
