// pgsession/react-router: React Router's own createSessionStorage (the real `react-router`
// package) over PostgresStore, against PostgreSQL through a pg.Pool whose `query` calls are
// counted. Round trips through real Cookie / Set-Cookie strings, as a loader or action sees them.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Cookie, createCookie, createSession, type SessionStorage } from "react-router";
import { type PostgresStore, SessionError } from "../mod.ts";
import { generateId, handleOf, isId } from "../src/id.ts";
import { createPostgresSessionStorage } from "../src/react_router.ts";
import { dbSkip, randomSchema } from "./_db.ts";
import { type Fixture, transports } from "./_transports.ts";

interface Data {
  user: string;
  visits: number;
  since: Date;
  roles: Set<string>;
}
interface Flash {
  notice: string;
}

const SECRET = "react-router-test-secret-of-32-characters";
const pgPool = transports.find((t) => t.name === "pg.Pool")!;

/** The `name=value` part of a Set-Cookie header, to send back as a Cookie header. */
function cookieHeader(setCookie: string): string {
  return setCookie.slice(0, setCookie.indexOf(";"));
}

describe("pgsession/react-router over pg.Pool", { skip: dbSkip }, () => {
  let h: Fixture;
  let store: PostgresStore;
  let cookie: Cookie;
  let storage: SessionStorage<Data, Flash>;

  const rows = async (): Promise<string[]> =>
    (await h.sql(`select session_key from ${h.table} order by 1`)).map((r) => String(r.session_key));
  /** Runs `fn` and returns its result with the number of statements it sent. */
  async function counted<T>(fn: () => Promise<T>): Promise<[T, number]> {
    await h.resetCount();
    const value = await fn();
    return [value, await h.statements()];
  }
  /** A signed-in session: its Cookie header and token. */
  async function signIn(user = "ada"): Promise<{ header: string; token: string }> {
    const session = await storage.getSession(null);
    session.set("user", user);
    const header = cookieHeader(await storage.commitSession(session));
    return { header, token: (await storage.getSession(header)).id };
  }

  before(async () => {
    h = await pgPool.setup(randomSchema("rr"));
    store = h.store({ ttl: 3600 });
    cookie = createCookie("__session", { httpOnly: true, secure: true, sameSite: "lax", path: "/", secrets: [SECRET] });
    storage = createPostgresSessionStorage<Data, Flash>({ store, cookie });
  });
  after(async () => {
    await h?.close();
  });

  test("a new session sends no SQL until committed, then one INSERT stores it under the token's SHA-256", async () => {
    const [session, reads] = await counted(() => storage.getSession(null));
    assert.equal(reads, 0);
    assert.equal(session.id, "");
    session.set("user", "ada");
    const [setCookie, writes] = await counted(() => storage.commitSession(session));
    assert.equal(writes, 1);
    assert.match(setCookie, /^__session=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    const token = await cookie.parse(cookieHeader(setCookie));
    assert.ok(isId(token), `the cookie carries a 256-bit token: ${token}`);
    assert.ok((await rows()).includes(await handleOf(token)), "the row key is the token's SHA-256");
    assert.ok(!(await rows()).includes(token.padEnd(64)), "the token itself is not stored");
  });

  test("getSession reads the data back with one SELECT, CBOR types intact", async () => {
    const first = await storage.getSession(null);
    first.set("user", "grace");
    first.set("since", new Date("2024-02-29T12:34:56.789Z"));
    first.set("roles", new Set(["admin", "dev"]));
    const header = cookieHeader(await storage.commitSession(first));
    const [session, statements] = await counted(() => storage.getSession(header));
    assert.equal(statements, 1);
    assert.ok(isId(session.id));
    assert.equal(session.get("user"), "grace");
    assert.ok(session.get("since") instanceof Date);
    assert.equal(session.get("since")!.toISOString(), "2024-02-29T12:34:56.789Z");
    assert.deepEqual([...session.get("roles")!].sort(), ["admin", "dev"]);
  });

  test("committing a stored session sends one UPDATE and keeps its id", async () => {
    const { header, token } = await signIn();
    const session = await storage.getSession(header);
    session.set("visits", 3);
    session.unset("user");
    const [setCookie, statements] = await counted(() => storage.commitSession(session));
    assert.equal(statements, 1);
    assert.equal(await cookie.parse(cookieHeader(setCookie)), token);
    const again = await storage.getSession(header);
    assert.equal(again.get("visits"), 3);
    assert.equal(again.has("user"), false, "unset removed the key from the row");
  });

  test("concurrent commits of one session keep the keys the other added; unset keys go", async () => {
    const { header } = await signIn("ada");
    const a = await storage.getSession(header);
    const b = await storage.getSession(header);
    b.set("visits", 7);
    await storage.commitSession(b);
    a.unset("user");
    a.set("roles", new Set(["admin"]));
    await storage.commitSession(a); // read before b's commit: its compare-and-set merges
    const now = await storage.getSession(header);
    assert.equal(now.get("visits"), 7, "b's key survived a's commit");
    assert.deepEqual([...now.get("roles")!], ["admin"]);
    assert.equal(now.has("user"), false);
  });

  test("a session made outside getSession is committed through updateData and is never re-created", async () => {
    const { header, token } = await signIn("ada");
    const foreign = createSession<Data, Flash>({ user: "ada" } as Data, token);
    foreign.set("visits", 5);
    const [, statements] = await counted(() => storage.commitSession(foreign));
    assert.equal(statements, 2, "a SELECT and an UPDATE");
    assert.equal((await storage.getSession(header)).get("visits"), 5);
    await storage.destroySession(await storage.getSession(header));
    await storage.commitSession(foreign);
    assert.equal((await rows()).includes(await handleOf(token)), false);
  });

  test("a flash message is read once: set, read and committed, then gone", async () => {
    const { header } = await signIn();
    const flashing = await storage.getSession(header);
    flashing.flash("notice", "Saved");
    await storage.commitSession(flashing);
    const reading = await storage.getSession(header);
    assert.equal(reading.get("notice"), "Saved");
    await storage.commitSession(reading);
    const after = await storage.getSession(header);
    assert.equal(after.get("notice"), undefined);
    assert.equal(after.get("user"), "ada", "other keys stay");
  });

  test("destroySession deletes the row with one DELETE and expires the cookie; the old cookie reads as new", async () => {
    const { header, token } = await signIn();
    const session = await storage.getSession(header);
    const [setCookie, statements] = await counted(() => storage.destroySession(session));
    assert.equal(statements, 1);
    assert.match(
      setCookie,
      /^__session=; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax$/,
    );
    assert.ok(!(await rows()).includes(await handleOf(token)));
    const replay = await storage.getSession(header);
    assert.equal(replay.id, "");
    assert.equal(replay.get("user"), undefined);
  });

  test("an unknown well-formed id gives a session with no id; its commit inserts under a new token", async () => {
    const planted = generateId();
    const header = cookieHeader(await cookie.serialize(planted));
    const before = (await rows()).length;
    const [session, reads] = await counted(() => storage.getSession(header));
    assert.equal(reads, 1);
    assert.equal(session.id, "", "strict mode: the planted id is not adopted");
    assert.equal((await rows()).length, before, "reading created no row");
    session.set("user", "mallory");
    const token = await cookie.parse(cookieHeader(await storage.commitSession(session)));
    assert.notEqual(token, planted);
    assert.ok(!(await rows()).includes(await handleOf(planted)), "no row for the planted id");
    assert.ok((await rows()).includes(await handleOf(token)));
  });

  test("malformed, forged and non-string cookie values give a new session without any SQL", async () => {
    const unsigned = createCookie("__session");
    const forged = createCookie("__session", { secrets: ["another-secret-of-at-least-32-chars!"] });
    const headers = [
      "__session=",
      "__session=%",
      "__session=%E0%A4%A",
      `__session=${"x".repeat(8192)}`,
      cookieHeader(await unsigned.serialize(generateId())), // not signed
      cookieHeader(await forged.serialize(generateId())), // signed with a secret we do not have
      cookieHeader(await cookie.serialize(42)),
      cookieHeader(await cookie.serialize({ id: generateId() })),
      cookieHeader(await cookie.serialize("' OR 1=1 --")),
      cookieHeader(await cookie.serialize(`${generateId()} `)),
    ];
    for (const header of headers) {
      const [session, statements] = await counted(() => storage.getSession(header));
      assert.equal(session.id, "", header.slice(0, 60));
      assert.equal(statements, 0, header.slice(0, 60));
    }
  });

  test("a commit after a concurrent destroy does not bring the session back", async () => {
    const { header, token } = await signIn();
    const slow = await storage.getSession(header); // a slow request read the session…
    await storage.destroySession(await storage.getSession(header)); // …and the user signed out meanwhile
    slow.set("visits", 99);
    const [, statements] = await counted(() => storage.commitSession(slow));
    assert.equal(statements, 2, "one UPDATE, which found no row to change, and a read that says it is gone");
    assert.ok(!(await rows()).includes(await handleOf(token)));
    assert.equal((await storage.getSession(header)).id, "");
  });

  test("an expired row reads as a new session and its commit does not revive it", async () => {
    const { header, token } = await signIn();
    const key = await handleOf(token);
    const slow = await storage.getSession(header);
    await h.sql(
      `update ${h.table} set session_expiry = (now() at time zone 'UTC') - interval '1 second' where session_key = $1`,
      [key],
    );
    slow.set("visits", 1);
    await storage.commitSession(slow);
    const [row] = await h.sql(
      `select session_expiry < (now() at time zone 'UTC') as expired from ${h.table} where session_key = $1`,
      [key],
    );
    assert.equal(row?.expired, true, "still expired, not rolled forward");
    assert.equal((await storage.getSession(header)).id, "");
  });

  test("the row lives for the store's ttl by the database clock, whatever the cookie's maxAge", async () => {
    const session = await storage.getSession(null);
    session.set("user", "ada");
    const setCookie = await storage.commitSession(session, { maxAge: 60 });
    assert.match(setCookie, /; Max-Age=60;/);
    const key = await handleOf(await cookie.parse(cookieHeader(setCookie)));
    const [row] = await h.sql(
      `select extract(epoch from session_expiry - (now() at time zone 'UTC'))::int as left from ${h.table} where session_key = $1`,
      [key],
    );
    assert.ok(Math.abs(Number(row?.left) - 3600) <= 5, `seconds left: ${row?.left}`);
  });

  test("cookie options are completed with HttpOnly, Secure, SameSite=Lax and Path=/", async () => {
    const plain = createPostgresSessionStorage({ store, cookie: { name: "sid", secrets: [SECRET] } });
    const session = await plain.getSession(null);
    session.set("user", "ada");
    assert.match(await plain.commitSession(session), /^sid=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    const dev = createPostgresSessionStorage({ store, cookie: { secure: false, secrets: [SECRET] } });
    const other = await dev.getSession(null);
    other.set("user", "ada");
    assert.match(await dev.commitSession(other), /^__session=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/);
  });

  test("an empty new session stores nothing and its id later reads as unknown", async () => {
    const before = (await rows()).length;
    const session = await storage.getSession(null);
    const header = cookieHeader(await storage.commitSession(session));
    assert.equal((await rows()).length, before, "no row for empty data");
    assert.equal((await storage.getSession(header)).id, "");
  });

  test("a database failure rejects with SessionError DATABASE_ERROR and no Set-Cookie", async () => {
    const { store: broken, close } = await h.brokenStore();
    try {
      const failing = createPostgresSessionStorage({ store: broken, cookie });
      const { header } = await signIn();
      await assert.rejects(
        failing.getSession(header),
        (error: unknown) => error instanceof SessionError && error.code === "DATABASE_ERROR",
      );
      const fresh = await failing.getSession(null);
      fresh.set("user", "ada");
      await assert.rejects(
        failing.commitSession(fresh),
        (error: unknown) => error instanceof SessionError && error.code === "DATABASE_ERROR",
      );
    } finally {
      await close();
    }
  });
});
