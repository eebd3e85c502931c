// The runtime-agnostic scenario every runtime runs against tests/runtimes/app.ts: sign in, read,
// modify, regenerate and sign out through real cookies, checking the session table's rows (read
// directly with `pg`, not through the runtime) and, where the support server carries the
// runtime's SQL, how many statements each step cost.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Decoder } from "cbor-x";
import { BIG, BYTES, type Me, SINCE, STREAM_GAP_MS } from "./app.ts";

export type Rows = Record<string, unknown>[];

export interface SupportCounters {
  http: { requests: number; statements: number };
  ws: { connections: number; statements: number };
}

export interface ScenarioTarget {
  /** Base URL of the app, without a trailing slash: `http://127.0.0.1:PORT` or `http://localhost/http`. */
  base: string;
  /** Sends a request; defaults to the global `fetch` (Miniflare passes `mf.dispatchFetch`). */
  fetch?: (url: string, init?: RequestInit) => Promise<Response>;
  /** Runs SQL on the test database directly (not through the runtime). */
  query: (text: string, params?: unknown[]) => Promise<Rows>;
  /** The schema-qualified session table this runtime writes to. */
  table: string;
  /** Cookie values are `token.signature`. */
  signed: boolean;
  /** Which support-server transport the runtime's SQL goes through. */
  transport: "http" | "ws";
  /**
   * The runtime commits after responding (waitUntil): the scenario waits for each write to land
   * before the next request, and checks that a stalled write does not hold the response back.
   */
  background: boolean;
  /** The support server's round-trip counters, and their reset. */
  stats: () => Promise<SupportCounters>;
  reset: () => Promise<void>;
  /** Locks a row in another transaction until the returned function is called. */
  lockRow: (table: string, key: string) => Promise<() => Promise<void>>;
}

const COOKIE_NAME: string = "session";
const TOKEN: RegExp = /^[A-Za-z0-9_-]{43}$/;
const cbor: Decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** The row key for a token: lower-case hex SHA-256 of its ASCII text. */
export function keyOf(token: string): string {
  return createHash("sha256").update(token, "ascii").digest("hex");
}

/** The token inside a cookie value (`token` or `token.signature`). */
export function tokenOf(value: string): string {
  return value.split(".")[0]!;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve: () => void): unknown => setTimeout(resolve, ms));

/** The promise's value, or `"waiting"` when it has not settled after `ms`. */
export async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | "waiting"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<"waiting">((resolve: (v: "waiting") => void): void => {
        timer = setTimeout(() => resolve("waiting"), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Retries `check` until it passes or `ms` run out (commits may still be in flight). */
export async function eventually(check: () => Promise<void>, ms: number = 5_000): Promise<void> {
  const deadline: number = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(25);
    }
  }
}

/** Session cookie parsed from a Set-Cookie header. */
export interface SetCookie {
  name: string;
  value: string;
  attrs: Map<string, string>;
}

export function parseSetCookie(header: string): SetCookie {
  const [pair, ...rest] = header.split(";");
  const eq: number = pair!.indexOf("=");
  const attrs: Map<string, string> = new Map();
  for (const a of rest) {
    const i: number = a.indexOf("=");
    attrs.set((i < 0 ? a : a.slice(0, i)).trim().toLowerCase(), i < 0 ? "" : a.slice(i + 1).trim());
  }
  return { name: pair!.slice(0, eq).trim(), value: pair!.slice(eq + 1).trim(), attrs };
}

/** A one-user cookie jar: what a browser would send back. */
export class Jar {
  readonly cookies: Map<string, string> = new Map();
  take(res: Response): SetCookie[] {
    const set: SetCookie[] = res.headers.getSetCookie().map(parseSetCookie);
    for (const c of set) {
      if (c.attrs.get("max-age") === "0") this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
    return set;
  }
  header(): Record<string, string> {
    return this.cookies.size ? { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ") } : {};
  }
}

/**
 * Runs the whole scenario against one runtime; throws an AssertionError at the first difference.
 * Leaves the table empty, as it found it.
 */
export async function runScenario(t: ScenarioTarget): Promise<void> {
  const send = t.fetch ?? ((url: string, init?: RequestInit): Promise<Response> => fetch(url, init));
  const jar: Jar = new Jar();
  const request = async (
    method: string,
    path: string,
    headers: Record<string, string> = jar.header(),
  ): Promise<Response> => {
    const res: Response = await send(`${t.base}${path}`, { method, headers, redirect: "manual" });
    if (res.status >= 500) assert.fail(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
    return res;
  };
  const sessionCookie = (set: SetCookie[]): SetCookie | undefined => set.find((c) => c.name === COOKIE_NAME);
  const rows = (): Promise<Rows> => t.query(`SELECT session_key, session_data FROM ${t.table} ORDER BY session_key`);
  const dataOf = async (token: string): Promise<Record<string, unknown> | null> => {
    const [row] = await t.query(`SELECT session_data FROM ${t.table} WHERE session_key = $1`, [keyOf(token)]);
    if (!row) return null;
    // An 8-byte creation header, then CBOR: written by the runtime, read here by Node.
    return cbor.decode((row.session_data as Buffer).subarray(8)) as Record<string, unknown>;
  };
  const cost = async (step: () => Promise<unknown>): Promise<SupportCounters> => {
    await t.reset();
    await step();
    return await t.stats();
  };
  const statements = (c: SupportCounters): number => c.http.statements + c.ws.statements;

  assert.equal((await rows()).length, 0, "the table starts empty");

  // A route that never touches the session costs nothing and sets nothing.
  let res!: Response;
  let counters: SupportCounters = await cost(async () => {
    res = await request("GET", "/health");
  });
  assert.equal(await res.text(), "ok");
  assert.deepEqual(res.headers.getSetCookie(), []);
  assert.equal(res.headers.get("vary"), null);
  assert.deepEqual(counters, { http: { requests: 0, statements: 0 }, ws: { connections: 0, statements: 0 } });

  // Anonymous read: no cookie means no SQL, no row and no cookie.
  counters = await cost(async () => {
    res = await request("GET", "/me");
  });
  assert.deepEqual(await res.json(), { user: null, visits: 0, flash: null, types: null } satisfies Me);
  assert.deepEqual(res.headers.getSetCookie(), []);
  assert.equal(statements(counters), 0);
  assert.equal((await rows()).length, 0);

  // Sign in: one INSERT, a session cookie with secure-by-default attributes (minus Secure over
  // http), and the app's own cookie kept as a separate header.
  counters = await cost(async () => {
    res = await request("POST", "/login?user=ada");
    if (t.background) await eventually(async () => assert.equal((await rows()).length, 1));
  });
  assert.deepEqual(await res.json(), { user: "ada" });
  const loginCookies: SetCookie[] = jar.take(res);
  assert.deepEqual(loginCookies.map((c) => c.name).sort(), [COOKIE_NAME, "theme"], "both Set-Cookie headers survive");
  const first: SetCookie = sessionCookie(loginCookies)!;
  assert.equal(first.attrs.get("path"), "/");
  assert.equal(first.attrs.get("samesite"), "Lax");
  assert.ok(first.attrs.has("httponly"), "HttpOnly");
  assert.ok(!first.attrs.has("secure"), "no Secure over plain http");
  assert.ok(!first.attrs.has("domain"), "host-only");
  assert.ok(Number(first.attrs.get("max-age")) > 0, `Max-Age ${first.attrs.get("max-age")}`);
  if (t.signed) assert.match(first.value, /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
  else assert.match(first.value, TOKEN);
  assert.equal(res.headers.get("cache-control"), "private, no-store");
  assert.match(res.headers.get("vary") ?? "", /\bCookie\b/i);
  const ada: string = tokenOf(first.value);
  assert.deepEqual((await rows()).map((r) => r.session_key), [keyOf(ada)], "one row, keyed by SHA-256 of the token");
  assert.equal(statements(counters), 1, "sign-in on a fresh session is one INSERT");
  const stored: Record<string, unknown> | null = await dataOf(ada);
  assert.equal(stored?.user, "ada");
  assert.ok(
    stored?.since instanceof Date && stored.since.getTime() === SINCE.getTime(),
    "a Date written by the runtime reads back in Node",
  );

  // Read: the flash shows once, CBOR-only types come back as themselves. No new cookie.
  res = await request("GET", "/me");
  assert.deepEqual(
    await res.json(),
    {
      user: "ada",
      visits: 0,
      flash: "Welcome, ada",
      types: { since: SINCE.toISOString(), roles: ["admin", "dev"], big: String(BIG), bytes: [...BYTES] },
    } satisfies Me,
  );
  assert.deepEqual(res.headers.getSetCookie(), []);
  assert.match(res.headers.get("vary") ?? "", /\bCookie\b/i);
  await eventually(async () => assert.equal((await dataOf(ada))?.__flash, undefined, "the flash was taken"));
  // A read-only request is exactly one statement.
  counters = await cost(async () => {
    res = await request("GET", "/me");
  });
  assert.equal(((await res.json()) as Me).flash, null);
  assert.equal(statements(counters), 1, `a read-only request is one statement: ${JSON.stringify(counters)}`);
  if (t.transport === "http") assert.deepEqual(counters.ws, { connections: 0, statements: 0 });
  else assert.deepEqual(counters.http, { requests: 0, statements: 0 });

  // Modify twice; each write lands before the next request reads.
  for (const expected of [1, 2]) {
    res = await request("POST", "/visit");
    assert.deepEqual(await res.json(), { visits: expected });
    assert.deepEqual(res.headers.getSetCookie(), [], "same id, no new cookie");
    await eventually(async () => assert.equal((await dataOf(ada))?.visits, expected));
  }

  // Background commits (waitUntil) land after the response, inline ones before it. A row lock
  // held by another transaction stalls the write (the read does not wait for it): the response
  // must arrive anyway with waitUntil, and must not arrive before the lock goes without.
  const unlock: () => Promise<void> = await t.lockRow(t.table, keyOf(ada));
  let visit: Promise<Response> | undefined;
  try {
    visit = request("POST", "/visit");
    const raced: Response | "waiting" = await settledWithin(visit, t.background ? 10_000 : 500);
    if (t.background) assert.ok(raced !== "waiting", "with waitUntil the response does not wait for the write");
    else assert.equal(raced, "waiting", "without waitUntil the response waits for the write");
    assert.equal((await dataOf(ada))?.visits, 2, "the write is still held by the lock");
  } finally {
    await unlock();
  }
  res = await visit!;
  assert.deepEqual(await res.json(), { visits: 3 });
  if (!t.background) assert.equal((await dataOf(ada))?.visits, 3, "written before the response");
  await eventually(async () => assert.equal((await dataOf(ada))?.visits, 3));

  // Regenerate (sign in again while signed in): new id, data kept, the old row gone.
  res = await request("POST", "/login?user=grace");
  const second: SetCookie = sessionCookie(jar.take(res))!;
  assert.ok(second, "a new session cookie after regenerate");
  const grace: string = tokenOf(second.value);
  assert.notEqual(grace, ada);
  await eventually(async () => assert.deepEqual((await rows()).map((r) => r.session_key), [keyOf(grace)]));
  const regenerated: Record<string, unknown> | null = await dataOf(grace);
  assert.equal(regenerated?.user, "grace");
  assert.equal(regenerated?.visits, 3, "regenerate keeps the data");
  res = await request("GET", "/me");
  assert.deepEqual({ ...((await res.json()) as Me), types: null }, {
    user: "grace",
    visits: 3,
    flash: "Welcome, grace",
    types: null,
  });
  await eventually(async () => assert.equal((await dataOf(grace))?.__flash, undefined));

  // Replaying the pre-regenerate cookie: anonymous, and nothing is created for it.
  const replay = async (value: string): Promise<void> => {
    const r: Response = await request("GET", "/me", { cookie: `${COOKIE_NAME}=${value}` });
    assert.deepEqual(await r.json(), { user: null, visits: 0, flash: null, types: null } satisfies Me);
    assert.deepEqual(r.headers.getSetCookie(), [], "no cookie issued for an empty session");
  };
  await replay(first.value);
  // A forged value: with signing it is rejected before any SQL; a bare random token is looked up.
  const forged: string = t.signed
    ? `${tokenOf(second.value)}.${"A".repeat(42)}A`
    : randomBytes(32).toString("base64url");
  counters = await cost(() => replay(forged));
  assert.equal(statements(counters), t.signed ? 0 : 1, `forged cookie: ${JSON.stringify(counters)}`);
  assert.deepEqual((await rows()).map((r) => r.session_key), [keyOf(grace)], "replays and forgeries create no rows");

  // Sign out: the row is deleted, the cookie cleared, and the old cookie is worthless.
  res = await request("POST", "/logout");
  assert.equal(res.status, 204);
  const cleared: SetCookie | undefined = sessionCookie(jar.take(res));
  assert.ok(cleared, "logout clears the cookie");
  assert.equal(cleared.value, "");
  assert.equal(cleared.attrs.get("max-age"), "0");
  assert.equal(jar.cookies.has(COOKIE_NAME), false);
  await eventually(async () => assert.equal((await rows()).length, 0, "logout deletes the row"));
  await replay(second.value);
  assert.equal((await rows()).length, 0);

  // Bodies stream through the runtime both ways.
  const body: Uint8Array<ArrayBuffer> = Uint8Array.from(randomBytes(1 << 20));
  res = await send(`${t.base}/echo`, { method: "POST", body });
  assert.equal(res.status, 200);
  assert.equal(
    createHash("sha256").update(new Uint8Array(await res.arrayBuffer())).digest("hex"),
    createHash("sha256").update(body).digest("hex"),
  );
  const started: number = performance.now();
  // identity: workerd gzips text for clients that accept it, and its gzip stream holds small
  // chunks back until the end.
  res = await send(`${t.base}/stream`, { headers: { "accept-encoding": "identity" } });
  const reader: ReadableStreamDefaultReader<Uint8Array> = res.body!.getReader();
  const decoder: TextDecoder = new TextDecoder();
  let text: string = decoder.decode((await reader.read()).value, { stream: true });
  const firstChunkAt: number = performance.now() - started;
  for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
  const doneAt: number = performance.now() - started;
  assert.equal(text, "first\nsecond\n");
  assert.ok(
    doneAt - firstChunkAt > STREAM_GAP_MS / 2,
    `the first chunk came ${Math.round(firstChunkAt)} ms in, the end ${Math.round(doneAt)} ms in: not streamed`,
  );
}
