// Issue 18's round-trip claims, counted per request on one runtime. The runtime serves the routes
// of tests/runtimes/app.ts (or hono_app.ts) with `snapshot: { maxAge }`, signed cookies and
// Neon's HTTP transport through the support server, whose counters say how many round trips each
// request cost:
//   a read from a fresh snapshot   0, and the right data
//   a change                       1 (before the response), and the new snapshot; the next read 0
//   a tampered snapshot            1, answered from the database, the snapshot replaced
//   a touch due on a snapshot read 0 before the response with waitUntil (1 after it), else 1 inline
//   a sign-out                     1, and both cookies cleared; another client holding them reads
//                                  the snapshot until maxAge (0), and not after (1, signed out)
// The snapshot cookie must carry the session cookie's attributes (`__Host-` and Secure where it
// has them) with Max-Age = maxAge.
import assert from "node:assert/strict";
import { Decoder } from "cbor-x";
import { openSnapshot, sealSnapshot } from "../../src/_snapshot.ts";
import { BIG, BYTES, type Me, SINCE } from "./app.ts";
import {
  eventually,
  Jar,
  keyOf,
  type Rows,
  type SetCookie,
  settledWithin,
  type SupportCounters,
  tokenOf,
} from "./scenario.ts";

export interface SnapshotTarget {
  /** Base URL of the snapshot-enabled app, without a trailing slash. */
  base: string;
  /** Sends a request; defaults to the global `fetch`. */
  fetch?: (url: string, init?: RequestInit) => Promise<Response>;
  /** Runs SQL on the test database directly (not through the runtime). */
  query: (text: string, params?: unknown[]) => Promise<Rows>;
  /** The schema-qualified session table the app writes to. */
  table: string;
  /** The session cookie's name: `session` (`secure: false` over http) or `__Host-session`. */
  cookieName: "session" | "__Host-session";
  /** The app's `snapshot.maxAge`. */
  maxAge: number;
  /** The app's secret: the test re-seals a snapshot with it. */
  secret: string;
  /** Touches run after the response (waitUntil); otherwise before it. */
  background: boolean;
  /** The support server's round-trip counters, and their reset. */
  stats: () => Promise<SupportCounters>;
  reset: () => Promise<void>;
  /** Locks a row in another transaction until the returned function is called. */
  lockRow: (table: string, key: string) => Promise<() => Promise<void>>;
}

/** How long a background runtime is given to run whatever it left for after the response. */
const SETTLE_MS: number = 100;
const DAY_MS: number = 86_400_000;
const cbor: Decoder = new Decoder({ useRecords: false, mapsAsObjects: true });
const sleep = (ms: number): Promise<void> => new Promise((resolve: () => void): unknown => setTimeout(resolve, ms));

/** HTTP round trips to Neon's /sql endpoint, each one statement; nothing over WebSocket. */
function roundTrips(c: SupportCounters): number {
  assert.deepEqual(c.ws, { connections: 0, statements: 0 }, `no WebSocket: ${JSON.stringify(c)}`);
  assert.equal(c.http.statements, c.http.requests, `one statement per round trip: ${JSON.stringify(c)}`);
  return c.http.requests;
}

/** Runs the snapshot scenario; throws an AssertionError at the first difference. */
export async function runSnapshotScenario(t: SnapshotTarget): Promise<void> {
  const send = t.fetch ?? ((url: string, init?: RequestInit): Promise<Response> => fetch(url, init));
  const jar: Jar = new Jar();
  const snapName: string = `${t.cookieName}.s`;
  const secure: boolean = t.cookieName.startsWith("__Host-");
  const me = (user: string, visits: number, flash: string | null = null): Me => ({
    user,
    visits,
    flash,
    types: { since: SINCE.toISOString(), roles: ["admin", "dev"], big: String(BIG), bytes: [...BYTES] },
  });
  const dataOf = async (key: string): Promise<Record<string, unknown> | null> => {
    const [row] = await t.query(`SELECT session_data FROM ${t.table} WHERE session_key = $1`, [key]);
    return row ? cbor.decode((row.session_data as Buffer).subarray(8)) as Record<string, unknown> : null;
  };
  const expiryOf = async (key: string): Promise<number> =>
    Number(
      (await t.query(`SELECT extract(epoch FROM session_expiry) * 1000 AS ms FROM ${t.table} WHERE session_key = $1`, [
        key,
      ]))[0]!.ms,
    );

  /** What one request answered, set and cost; every round trip a background commit made included. */
  interface Step {
    res: Response;
    body: unknown;
    set: SetCookie[];
    trips: number;
  }
  const step = async (method: string, path: string, what: string): Promise<Step> => {
    await t.reset();
    const res: Response = await send(`${t.base}${path}`, { method, headers: jar.header(), redirect: "manual" });
    const text: string = await res.text();
    if (res.status >= 500) assert.fail(`${what}: HTTP ${res.status} ${text}`);
    const atResponse: number = roundTrips(await t.stats());
    if (t.background) await sleep(SETTLE_MS);
    const trips: number = roundTrips(await t.stats());
    assert.equal(trips, atResponse, `${what}: every round trip came before the response`);
    return { res, body: text ? JSON.parse(text) : null, set: jar.take(res), trips };
  };
  const named = (set: SetCookie[], name: string): SetCookie | undefined => set.find((c) => c.name === name);
  /** The snapshot cookie this response set, checked against the session cookie's rules. */
  const snapshotSet = (s: Step, what: string): SetCookie => {
    const snap: SetCookie | undefined = named(s.set, snapName);
    assert.ok(snap, `${what}: sets ${snapName}; Set-Cookie: ${s.res.headers.getSetCookie().join(" | ")}`);
    assert.match(snap.value, /^[A-Za-z0-9_-]{60,}$/, `${what}: a sealed value`);
    assert.equal(snap.attrs.get("max-age"), String(t.maxAge), `${what}: Max-Age = maxAge`);
    assert.equal(snap.attrs.get("path"), "/", `${what}: Path=/`);
    assert.equal(snap.attrs.get("samesite"), "Lax", `${what}: SameSite=Lax`);
    assert.ok(snap.attrs.has("httponly"), `${what}: HttpOnly`);
    assert.equal(
      snap.attrs.has("secure"),
      secure,
      `${what}: Secure exactly when the session cookie is ${t.cookieName}`,
    );
    assert.ok(!snap.attrs.has("domain"), `${what}: host-only`);
    return snap;
  };
  const noSessionCookie = (s: Step, what: string): void =>
    assert.equal(named(s.set, t.cookieName), undefined, `${what}: the session cookie is left alone`);

  // Sign in: one INSERT; beside the session cookie, its snapshot, with the same attributes.
  let s: Step = await step("POST", "/login?user=ada", "sign-in");
  assert.deepEqual(s.body, { user: "ada" });
  assert.equal(s.trips, 1, "sign-in is one INSERT");
  const session: SetCookie | undefined = named(s.set, t.cookieName);
  assert.ok(session, `sign-in sets ${t.cookieName}`);
  const snap: SetCookie = snapshotSet(s, "sign-in");
  const withoutMaxAge = (c: SetCookie): [string, string][] => [...c.attrs].filter(([k]) => k !== "max-age").sort();
  assert.deepEqual(withoutMaxAge(snap), withoutMaxAge(session), "the snapshot has the session cookie's attributes");
  assert.equal(session.attrs.has("secure"), secure);
  const token: string = tokenOf(session.value);
  const key: string = keyOf(token);

  // The first read takes the flash: the data comes from the snapshot, the change is one
  // compare-and-set, and the response carries the new snapshot.
  s = await step("GET", "/me", "read taking the flash");
  assert.deepEqual(s.body, me("ada", 0, "Welcome, ada"), "CBOR-only types come back from the snapshot");
  assert.equal(s.trips, 1, "a change read from the snapshot is one UPDATE");
  assert.notEqual(snapshotSet(s, "read taking the flash").value, snap.value, "a new snapshot");
  noSessionCookie(s, "read taking the flash");
  assert.equal((await dataOf(key))?.__flash, undefined, "the flash was taken before the response");

  // A read from a fresh snapshot: no round trip, nothing set, and still private.
  s = await step("GET", "/me", "fresh read");
  assert.deepEqual(s.body, me("ada", 0));
  assert.equal(s.trips, 0, "a read from a fresh snapshot costs no round trip");
  assert.deepEqual(s.set, [], "a read from the snapshot sets no cookie");
  assert.match(s.res.headers.get("vary") ?? "", /\bCookie\b/i);
  assert.match(s.res.headers.get("cache-control") ?? "", /\bprivate\b/);

  // Modify: one round trip; the next read, with the new snapshot, costs none and sees the write.
  s = await step("POST", "/visit", "modify");
  assert.deepEqual(s.body, { visits: 1 });
  assert.equal(s.trips, 1, "a change is one compare-and-set against the snapshot's bytes");
  snapshotSet(s, "modify");
  noSessionCookie(s, "modify");
  assert.equal((await dataOf(key))?.visits, 1, "the write landed before the response");
  s = await step("GET", "/me", "read after modify");
  assert.deepEqual(s.body, me("ada", 1), "the next read sees the write");
  assert.equal(s.trips, 0, "the next read costs no round trip");
  assert.deepEqual(s.set, []);

  // A tampered snapshot does not open: one read, the right answer, and a good snapshot back.
  const good: string = jar.cookies.get(snapName)!;
  const tampered: string = good.slice(0, 40) + (good[40] === "A" ? "B" : "A") + good.slice(41);
  jar.cookies.set(snapName, tampered);
  s = await step("GET", "/me", "tampered snapshot");
  assert.deepEqual(s.body, me("ada", 1), "answered from the database");
  assert.equal(s.trips, 1, "a tampered snapshot costs the one read");
  assert.notEqual(snapshotSet(s, "tampered snapshot").value, tampered, "replaced");
  noSessionCookie(s, "tampered snapshot");
  s = await step("GET", "/me", "read after the replacement");
  assert.deepEqual([s.body, s.trips], [me("ada", 1), 0], "the replacement opens");

  // A touch due on a snapshot read. The stored expiry goes back two days and the client's
  // snapshot is re-sealed (with the app's secret) to say the same, as one sealed from that row
  // would. The row is locked meanwhile, so the touch cannot finish until the test lets it.
  await t.query(`UPDATE ${t.table} SET session_expiry = session_expiry - interval '2 days' WHERE session_key = $1`, [
    key,
  ]);
  const lagging: number = await expiryOf(key);
  const opened = await openSnapshot(jar.cookies.get(snapName)!, { id: token, secrets: [t.secret], maxAge: t.maxAge });
  assert.ok(opened, "the runtime's snapshot opens with its secret and token");
  const due: string | null = await sealSnapshot(
    { ...opened, expiresInMs: opened.expiresInMs - 2 * DAY_MS, touchDue: true },
    { id: token, secrets: [t.secret] },
  );
  jar.cookies.set(snapName, due!);
  await t.reset();
  const unlock: () => Promise<void> = await t.lockRow(t.table, key);
  let pending!: Promise<Response>;
  try {
    pending = send(`${t.base}/me`, { headers: jar.header(), redirect: "manual" });
    // Well under the store's 5-second statement budget, which would end a blocked touch with a 503.
    const early: Response | "waiting" = await settledWithin(pending, t.background ? 2_000 : 500);
    if (t.background) assert.notEqual(early, "waiting", "with waitUntil the response does not wait for the touch");
    else assert.equal(early, "waiting", "without waitUntil the touch runs before the response");
  } finally {
    await unlock();
  }
  const res: Response = await pending;
  assert.equal(res.status, 200, "touch-due read: HTTP 200");
  assert.deepEqual(await res.json(), me("ada", 1), "a touch-due read answers from the snapshot");
  await eventually(async () => assert.ok((await expiryOf(key)) > lagging + DAY_MS, "the touch moved the expiry"));
  assert.equal(roundTrips(await t.stats()), 1, "the touch is the one round trip");
  s = { res, body: null, set: jar.take(res), trips: 1 };
  assert.notEqual(snapshotSet(s, "touch-due read").value, due, "a snapshot that no longer says a touch is due");
  noSessionCookie(s, "touch-due read");
  s = await step("GET", "/me", "read after the touch");
  assert.deepEqual([s.body, s.trips], [me("ada", 1), 0], "the next read costs nothing and touches nothing");

  // Sign out: one DELETE, and both cookies cleared with the attributes they were set with.
  const elsewhere: Map<string, string> = new Map(jar.cookies);
  s = await step("POST", "/logout", "sign-out");
  assert.equal(s.res.status, 204);
  assert.equal(s.trips, 1, "sign-out is one DELETE");
  for (const name of [t.cookieName, snapName]) {
    const cleared: SetCookie | undefined = named(s.set, name);
    assert.ok(cleared, `sign-out clears ${name}; Set-Cookie: ${s.res.headers.getSetCookie().join(" | ")}`);
    assert.equal(cleared.value, "");
    assert.equal(cleared.attrs.get("max-age"), "0");
    assert.equal(cleared.attrs.get("path"), "/");
    assert.equal(cleared.attrs.has("secure"), secure, `${name} is cleared with the Secure it was set with`);
    assert.equal(jar.cookies.has(name), false);
  }
  assert.equal(await dataOf(key), null, "the row was deleted before the response");
  s = await step("GET", "/me", "read after sign-out");
  const anonymous: Me = { user: null, visits: 0, flash: null, types: null };
  assert.deepEqual(s.body, anonymous);
  assert.deepEqual([s.trips, s.set], [0, []], "no cookie left: nothing to read");

  // The revocation bound, by the runtime's clock: another client holding both cookies reads the
  // signed-out session from its snapshot for up to maxAge seconds, and not after.
  for (const [name, value] of elsewhere) jar.cookies.set(name, value);
  s = await step("GET", "/me", "another client within maxAge");
  assert.deepEqual([s.body, s.trips], [me("ada", 1), 0], "within maxAge the snapshot still answers");
  const expired: string | null = await sealSnapshot(
    { ...opened, expiresInMs: opened.expiresInMs + DAY_MS },
    { id: token, secrets: [t.secret], now: Date.now() - t.maxAge * 1000 - 1000 },
  );
  jar.cookies.set(snapName, expired!);
  s = await step("GET", "/me", "another client past maxAge");
  assert.deepEqual([s.body, s.trips], [anonymous, 1], "past maxAge the database answers: signed out");
  const cleared: SetCookie | undefined = named(s.set, snapName);
  assert.ok(cleared && cleared.value === "" && cleared.attrs.get("max-age") === "0", "the stale snapshot is cleared");
}
