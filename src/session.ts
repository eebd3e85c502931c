/**
 * A session as the application sees it: data with change tracking. What is stored, and what a
 * commit will do, belongs to the store.
 *
 * @module
 */

/** The shape of session data: string keys, values anything CBOR carries. */
export type SessionData = Record<string, unknown>;

/** What `regenerate()` may also do. */
export interface RegenerateOptions {
  /**
   * Start a new absolute lifetime. By default a regenerated session keeps the deadline it had, so
   * no number of regenerations lets it outlive its absolute lifetime.
   * @default {false}
   */
  restart?: boolean | undefined;
  /**
   * Bind the session to this user (sign-in): it is listed by `sessionsOf(user)` and ended by
   * `revokeAll(user)`. Stored in its own column, never in the cookie. Needs the user columns
   * (`npx pgsession migrate`).
   * @default {undefined} (the session keeps the user it had)
   */
  user?: string | undefined;
  /**
   * A short label for the user's list of sessions, e.g. `"Firefox on Linux"` (at most 200
   * characters); only with `user`.
   * @default {null}
   */
  label?: string | null | undefined;
}

/** One of a user's live sessions, as `sessionsOf()` and `session.sessions()` list them. */
export interface UserSession {
  /** Identifies the session for `revoke()`; derived from the stored hash, never usable as a cookie. */
  handle: string;
  /** When the session was created (or last restarted). */
  created: Date;
  /** When it expires if unused. */
  expires: Date;
  /** About when it was last used: exact to within the store's `touchAfter`. */
  lastActive: Date;
  /** The label given at sign-in, or `null`. */
  label: string | null;
  /** Whether this is the session of the request asking. */
  current: boolean;
}

/**
 * What a commit (or `store.save()`) did.
 *
 * - `created`: a new session was inserted (also after `destroy()` when the request then stored data).
 * - `updated`: the stored session was updated.
 * - `touched`: only the stored expiry moved forward (a read-only request whose touch was due).
 * - `regenerated`: the stored session moved to its new id (after `regenerate()`).
 * - `destroyed`: the stored session was deleted (after `destroy()`).
 * - `unchanged`: nothing to write; no statement was sent.
 * - `gone`: the session was destroyed, regenerated or expired by another request meanwhile; it
 *   was NOT re-created and the client's cookie is left alone.
 */
export type SaveResult = "created" | "updated" | "touched" | "regenerated" | "destroyed" | "unchanged" | "gone";

/**
 * Session data with change tracking. Reads are async because a session may load lazily (inside
 * `withSession` nothing is read from the database until the first read); writes are sync and kept
 * in memory until the session is committed. Get sessions from `PostgresStore.create()`/`read()`/
 * `open()`, from `createSessions().open()` or from `withSession`.
 *
 * Values are stored by value: after changing an object you got from `get()`, `set()` it again.
 *
 * @typeParam Data The keys and value types this session holds; an `interface` or a `type`.
 * @example
 * ```ts ignore
 * interface Data { user: string; visits: number }
 * const store = new PostgresStore<Data>({ client: pool });
 * const session = store.create();
 * session.set("user", "ada");
 * session.set("visits", ((await session.get("visits")) ?? 0) + 1);
 * await store.save(session);
 * ```
 */
export interface Session<Data extends object = SessionData> {
  /** The id to hand to the client (the cookie value). It changes on `regenerate()` and `destroy()`. */
  readonly id: string;
  /** `true` while no row is stored for this session. */
  readonly isNew: boolean;
  /** When the stored session expires (database clock), or `null` when not stored or not loaded yet. */
  readonly expires: Date | null;
  /** `true` when there are changes a commit would write. */
  readonly isModified: boolean;
  /** The keys set or deleted since the session was loaded or last saved. */
  readonly changedKeys: (keyof Data & string)[];
  /**
   * Reads a value, loading the session first if it has not been read yet.
   *
   * @param key The key.
   * @returns Its value, or `undefined` when absent.
   */
  get<K extends keyof Data & string>(key: K): Promise<Data[K] | undefined>;
  /**
   * Tells whether the session holds a key, loading it first if needed.
   *
   * @param key The key.
   * @returns Whether the session holds it.
   */
  has(key: keyof Data & string): Promise<boolean>;
  /**
   * Lists the keys, loading the session first if needed.
   *
   * @returns The keys the session holds (flash messages excluded).
   */
  keys(): Promise<(keyof Data & string)[]>;
  /**
   * Lists the entries, loading the session first if needed.
   *
   * @returns The session's entries as `[key, value]` pairs (flash messages excluded).
   */
  entries(): Promise<[keyof Data & string, Data[keyof Data]][]>;
  /**
   * Sets a value; it is written when the session is committed.
   *
   * @param key Any string but `"__proto__"` and `"__flash"`.
   * @param value Anything CBOR carries: strings, numbers, booleans, null, arrays, plain objects,
   *   Date, Map, Set, bigint, Uint8Array, Error, RegExp.
   * @throws {TypeError} For a non-string or reserved key, or a function or symbol value.
   */
  set<K extends keyof Data & string>(key: K, value: Data[K]): void;
  /**
   * Removes a key; the removal is written when the session is committed.
   *
   * @param key The key.
   */
  delete(key: keyof Data & string): void;
  /** Removes every key, flash messages included; written when committed. */
  clear(): void;
  /**
   * Gives the session a new id on commit, data kept and the old id dead. Call it on sign-in
   * (and on any privilege change) against session fixation. The absolute deadline is kept unless
   * `restart` is set.
   *
   * @param options `restart: true` starts a new absolute lifetime; `user` (and `label`) bind the
   *   session to a user on sign-in, in the same statement.
   * @throws {TypeError} For an empty user id or a label over 200 characters.
   */
  regenerate(options?: RegenerateOptions): void;
  /**
   * Ends the session: on commit its row is deleted and the cookie cleared. The object then
   * behaves as a new, empty session with a new id, so a request can sign out and still leave a
   * flash message for the next page. A sign-out is committed even when the handler then fails.
   */
  destroy(): void;
  /**
   * The user this session is bound to (by `regenerate({ user })`), read with the session's row:
   * no statement of its own.
   *
   * @returns The user id, or `null` for an anonymous session.
   */
  user(): Promise<string | null>;
  /**
   * The signed-in user's live sessions, for a "your devices" page; `current` marks this one.
   * One statement.
   *
   * @returns The sessions, or `[]` for an anonymous session.
   * @throws {SessionError} `MIGRATION_REQUIRED` on a table without the user columns.
   */
  sessions(): Promise<UserSession[]>;
  /**
   * Signs out one of the signed-in user's sessions by its handle ("sign out that device"); a
   * handle of another user's session ends nothing. One statement.
   *
   * @param handle A handle from {@linkcode Session.sessions}.
   * @returns How many live sessions ended (0 or 1).
   */
  revoke(handle: string): Promise<number>;
  /**
   * Signs out every other session of the signed-in user, keeping this one ("sign out everywhere
   * else"). One statement.
   *
   * @returns How many live sessions ended.
   */
  revokeOthers(): Promise<number>;
  /**
   * Makes sure the data comes from the database in this request: with the `snapshot` option a
   * read may be served from a snapshot up to `maxAge` seconds old; call this before a sensitive
   * action (a payment, a password change). One statement, unless the database was read already;
   * changes made so far are kept. A session ended meanwhile becomes a new, empty one.
   */
  fresh(): Promise<void>;
  /**
   * Stores a value for the next request to read once with {@linkcode Session.getFlash}.
   *
   * @param key The message's key.
   * @param value Anything `set()` accepts.
   */
  flash(key: string, value: unknown): void;
  /**
   * Reads a flash message and removes it.
   *
   * @param key The message's key.
   * @returns The value, or `undefined` when there is none.
   */
  getFlash(key: string): Promise<unknown>;
}
