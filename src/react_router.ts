/**
 * React Router (and Remix) session storage on {@linkcode PostgresStore}: `getSession`,
 * `commitSession` and `destroySession` work as with any `createSessionStorage` backend, with the
 * store's guarantees underneath.
 *
 * - The id React Router puts in its cookie is a 256-bit id; only its SHA-256 is stored.
 * - Strict: an id the store does not know (unknown, expired, destroyed, malformed) gives a new,
 *   empty session with no id, so the next commit issues a new id. No row is ever created for an
 *   id the client chose.
 * - No resurrection: committing a session that was destroyed or expired meanwhile writes nothing
 *   (saves of stored sessions are UPDATE-only).
 * - Expiry follows the database clock: the row lives for the store's `ttl` (idle) and
 *   `absoluteTtl`, whatever the cookie's `expires`/`maxAge` say. The cookie's lifetime only
 *   decides how long the browser keeps the id; keep it at most `ttl`, or leave it unset for a
 *   browser-session cookie.
 * - Data is CBOR: `Date`, `Map`, `Set`, `bigint` and `Uint8Array` values round-trip.
 *
 * Statements: `getSession` sends one SELECT when the cookie holds a well-formed id (none
 * otherwise; plus an UPDATE when the expiry is due to move forward, at most every `touchAfter`);
 * `commitSession` one INSERT for a new session with data, one UPDATE for a stored one;
 * `destroySession` one DELETE.
 *
 * @example
 * ```ts ignore
 * import pg from "pg";
 * import { createPostgresSessionStorage } from "pgsession/react-router";
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * export const { getSession, commitSession, destroySession } = createPostgresSessionStorage<{ user: string }>({
 *   store: { client: pool },
 *   cookie: { name: "__session", secrets: [process.env.SESSION_SECRET!] },
 * });
 * ```
 *
 * @module
 */

import {
  type Cookie,
  type CookieOptions as RouterCookieOptions,
  createCookie,
  createSession,
  createSessionStorage,
  type FlashSessionData,
  isCookie,
  type SessionData as RouterSessionData,
  type SessionStorage,
} from "react-router";
import type { Session } from "./session.ts";
import type { Connection } from "./client.ts";
import { PostgresStore, type StoreOptions } from "./store.ts";

/** What {@linkcode createPostgresSessionStorage} takes. */
export interface PostgresSessionStorageOptions {
  /**
   * The store, or the options to make one (`{ client: pool }`, `{ connectionString }`, `ttl`…).
   * Its `ttl`/`absoluteTtl` decide when a session ends, by the database clock.
   */
  store: PostgresStore | (Connection & StoreOptions);
  /**
   * React Router's cookie that carries the id: a `Cookie` from `createCookie()` (used as it is),
   * or options for one. Options are completed with `httpOnly: true`, `secure: true`,
   * `sameSite: "lax"` and `path: "/"` unless given (set `secure: false` for plain-http
   * development). Signing with `secrets` is optional: the id is unguessable (256 bits), but
   * signed cookies are rejected before any SQL is sent.
   * @default {{ name: "__session", httpOnly: true, secure: true, sameSite: "lax", path: "/" }}
   */
  cookie?: Cookie | (RouterCookieOptions & { name?: string | undefined }) | undefined;
}

const COOKIE_DEFAULTS: Readonly<RouterCookieOptions> = Object.freeze({
  httpOnly: true,
  secure: true,
  sameSite: "lax",
  path: "/",
});

/**
 * Makes a React Router `SessionStorage` whose sessions live in PostgreSQL, through React Router's
 * own `createSessionStorage`.
 *
 * Concurrent commits of one session: a commit writes every key its session holds (React Router
 * has no change tracking) and removes the keys it dropped, merged with compare-and-set, so keys
 * another request added meanwhile are kept and, for a key both wrote, the later commit wins. A
 * commit never re-creates a session that another request destroyed.
 *
 * @typeParam Data The session's data.
 * @typeParam FlashData The flash messages' data.
 * @param options The store (or its options) and the cookie.
 * @returns `{ getSession, commitSession, destroySession }`.
 * @throws {TypeError} For a missing store connection or a bad table name.
 * @throws {RangeError} For store durations or sizes out of range.
 * @example A request without a cookie gets a new session without any SQL
 * ```ts
 * import { createPostgresSessionStorage } from "pgsession/react-router";
 *
 * const { getSession } = createPostgresSessionStorage({
 *   store: { connectionString: "postgres://user:password@ep-example.us-east-2.aws.neon.tech/db" },
 *   cookie: { secrets: ["a secret of at least 32 random characters"] },
 * });
 * const session = await getSession(null);
 * console.assert(session.id === "" && session.get("user") === undefined);
 * ```
 * @example In a route module
 * ```ts ignore
 * import { data, redirect } from "react-router";
 * import { createPostgresSessionStorage } from "pgsession/react-router";
 *
 * const { getSession, commitSession, destroySession } = createPostgresSessionStorage<{ userId: string }, { error: string }>({
 *   store: { connectionString: process.env.DATABASE_URL! },
 *   cookie: { secrets: [process.env.SESSION_SECRET!] },
 * });
 *
 * export async function loader({ request }: { request: Request }) {
 *   const session = await getSession(request.headers.get("Cookie"));
 *   return data({ error: session.get("error") }, { headers: { "Set-Cookie": await commitSession(session) } });
 * }
 *
 * export async function action({ request }: { request: Request }) {
 *   const session = await getSession(request.headers.get("Cookie"));
 *   return redirect("/", { headers: { "Set-Cookie": await destroySession(session) } });
 * }
 * ```
 */
export function createPostgresSessionStorage<Data = RouterSessionData, FlashData = Data>(
  options: PostgresSessionStorageOptions,
): SessionStorage<Data, FlashData> {
  const store = options.store instanceof PostgresStore ? options.store : new PostgresStore(options.store);
  const cookieArg = options.cookie;
  const cookie = isCookie(cookieArg)
    ? cookieArg
    : createCookie(cookieArg?.name ?? "__session", { ...COOKIE_DEFAULTS, ...cookieArg });
  type Stored = FlashSessionData<Data, FlashData>;

  async function readData(id: unknown): Promise<Stored | null> {
    const session = typeof id === "string" ? await store.read(id) : null;
    return session ? (Object.fromEntries(await session.entries()) as Stored) : null;
  }

  const storage = createSessionStorage<Data, FlashData>({
    cookie,
    async createData(data: Stored): Promise<string> {
      const session = store.create();
      assign(session, data);
      // Nothing is inserted for empty data; the id then reads as unknown and is replaced later.
      await store.save(session);
      return session.id;
    },
    readData,
    // Sessions from our getSession() are committed below; this serves sessions made elsewhere.
    async updateData(id: string, data: Stored): Promise<void> {
      // read + save: save() only UPDATEs a stored session, so a destroyed or expired one stays gone.
      const session = await store.read(id);
      if (!session) return;
      session.clear();
      assign(session, data);
      await store.save(session);
    },
    async deleteData(id: string): Promise<void> {
      await store.destroy(id);
    },
  });

  // The stored session behind each React Router session this storage read, for this request only
  // (keyed by the session object), so a commit is one UPDATE on the row as it was read.
  const loaded = new WeakMap<object, Session>();

  return {
    // React Router keeps an unknown id and would later commit to it; strict mode drops it instead,
    // so the next commit inserts under a fresh id.
    async getSession(cookieHeader, parseOptions) {
      const id: unknown = cookieHeader ? await cookie.parse(cookieHeader, parseOptions) : null;
      const stored = typeof id === "string" ? await store.read(id) : null;
      if (!stored) return createSession<Data, FlashData>();
      const session = createSession<Data, FlashData>(Object.fromEntries(await stored.entries()) as Data, stored.id);
      loaded.set(session, stored);
      return session;
    },
    async commitSession(session, serializeOptions) {
      const stored = loaded.get(session);
      if (!stored) return await storage.commitSession(session, serializeOptions);
      const data: Record<string, unknown> = session.data;
      // Keys this request removed (unset, or a flash it read) go; every other key is written, so
      // keys another request added meanwhile survive the compare-and-set merge.
      for (const key of await stored.keys()) if (data[key] === undefined) stored.delete(key);
      assign(stored, data);
      // An UPDATE only: a session destroyed or expired meanwhile stays gone.
      await store.save(stored);
      return await cookie.serialize(session.id, serializeOptions);
    },
    destroySession: storage.destroySession,
  };
}

function assign(session: { set(key: string, value: unknown): void }, data: object): void {
  for (const [key, value] of Object.entries(data)) if (value !== undefined) session.set(key, value);
}
