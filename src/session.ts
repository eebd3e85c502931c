/**
 * A session as the application sees it: data with change tracking. What is stored, and what a
 * save will do, belongs to the store ({@linkcode SessionHost}).
 *
 * @module
 */

/** The shape of session data: string keys, values anything CBOR carries. */
export type SessionData = Record<string, unknown>;

const DELETED: unique symbol = Symbol("deleted");
/** Where flash messages live in the data; hidden from `keys()` and `entries()`. */
export const FLASH_KEY = "__flash";

/** What `regenerate()` may also do. */
export interface RegenerateOptions {
  /**
   * Start a new absolute lifetime. By default a regenerated session keeps the deadline it had, so
   * no number of regenerations lets it outlive its absolute lifetime.
   * @default {false}
   */
  restart?: boolean;
  /**
   * Bind the session to this user (sign-in): it is listed by `sessionsOf(user)` and ended by
   * `revokeAll(user)`. Stored in its own column, never in the cookie. Needs the user columns
   * (`npx pgsession migrate`).
   * @default {undefined} (the session keeps the user it had)
   */
  user?: string;
  /**
   * A short label for the user's list of sessions, e.g. `"Firefox on Linux"` (at most 200
   * characters); only with `user`.
   * @default {null}
   */
  label?: string | null;
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
 * The store's side of a session: its token, what is stored, and how to load it. Implemented by
 * `PostgresStore`; applications never implement it.
 */
export interface SessionHost {
  /** The token the client should hold after this request. */
  readonly token: string;
  /** `true` while no row is stored for this session. */
  readonly isNew: boolean;
  /** When the stored session expires, or `null` when not stored or not loaded yet. */
  readonly expires: Date | null;
  /** Loads the stored data once (lazily) and returns it. */
  load(): Promise<ReadonlyMap<string, unknown>>;
  /** Gives the session a new token on save. */
  regenerate(options: RegenerateOptions): void;
  /** Marks the stored session for deletion and starts a new, empty one. */
  destroy(): void;
  /** The user the session is bound to, or `null`. */
  currentUser(): Promise<string | null>;
  /** The bound user's live sessions. */
  sessions(): Promise<UserSession[]>;
  /** Ends one of the bound user's sessions. */
  revoke(handle: string): Promise<number>;
  /** Ends the bound user's other sessions. */
  revokeOthers(): Promise<number>;
}

/** Changes a request made to a session, applied on top of the stored data when it is saved. */
export class Changes {
  /** Set or deleted keys since load; flash updates under {@linkcode FLASH_KEY}. */
  readonly entries: Map<string, unknown> = new Map();
  /** `clear()` was called: the stored data does not count. */
  cleared = false;
  /** Session data was read (the response depends on the session). */
  accessed = false;

  /** `true` when a save has something to write. */
  get modified(): boolean {
    return this.cleared || this.entries.size > 0;
  }

  /** The data as it would be saved: `base` with these changes applied. */
  apply(base: ReadonlyMap<string, unknown> | null): Map<string, unknown> {
    const data = this.cleared || !base ? new Map<string, unknown>() : new Map(base);
    for (const [key, value] of this.entries) {
      if (value === DELETED) data.delete(key);
      else if (value instanceof FlashUpdate) {
        const stored = data.get(FLASH_KEY);
        const flashes = new Map(stored instanceof Map ? stored : []);
        for (const k of value.taken) flashes.delete(k);
        for (const [k, v] of value.added) flashes.set(k, v);
        if (flashes.size) data.set(FLASH_KEY, flashes);
        else data.delete(FLASH_KEY);
      } else data.set(key, value);
    }
    return data;
  }

  /** Forgets every change (after a save, or when the session was destroyed). */
  reset(): void {
    this.entries.clear();
    this.cleared = false;
  }

  /** The flash messages added and taken this request. */
  flash(): FlashUpdate {
    const pending = this.entries.get(FLASH_KEY);
    if (pending instanceof FlashUpdate) return pending;
    const update = new FlashUpdate();
    this.entries.set(FLASH_KEY, update);
    return update;
  }
}

/** Flash messages added and taken this request, merged with the stored ones on save. */
export class FlashUpdate {
  /** Messages added, by key. */
  readonly added: Map<string, unknown> = new Map();
  /** Keys read (and so removed). */
  readonly taken: Set<string> = new Set();
}

/**
 * Session data with change tracking. Reads are async because a session may load lazily (inside
 * `withSession` nothing is read from the database until the first read); writes are sync and kept
 * in memory until the store saves them. Get sessions from `PostgresStore.create()`/`read()`, from
 * `createSessions().open()` or from `withSession`.
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
export class Session<Data extends object = SessionData> {
  #host: SessionHost;
  #changes: Changes;

  /**
   * Sessions are made by the store.
   *
   * @param host The store's side of this session.
   * @param changes Where this session records its changes.
   */
  constructor(host: SessionHost, changes: Changes) {
    this.#host = host;
    this.#changes = changes;
  }

  /** The token to hand to the client (the cookie value). It changes on `regenerate()` and `destroy()`. */
  get id(): string {
    return this.#host.token;
  }

  /** `true` while no row is stored for this session. */
  get isNew(): boolean {
    return this.#host.isNew;
  }

  /** When the stored session expires (database clock), or `null` when not stored or not loaded yet. */
  get expires(): Date | null {
    return this.#host.expires;
  }

  /** `true` when there are changes a save would write. */
  get isModified(): boolean {
    return this.#changes.modified;
  }

  /** The keys set or deleted since the session was loaded or last saved. */
  get changedKeys(): (keyof Data & string)[] {
    return [...this.#changes.entries.keys()].filter((k) => k !== FLASH_KEY) as (keyof Data & string)[];
  }

  /**
   * Reads a value, loading the session first if it has not been read yet.
   *
   * @param key The key.
   * @returns Its value, or `undefined` when absent.
   */
  async get<K extends keyof Data & string>(key: K): Promise<Data[K] | undefined> {
    checkKey(key);
    return (await this.#current()).get(key) as Data[K] | undefined;
  }

  /**
   * Tells whether the session holds a key, loading it first if needed.
   *
   * @param key The key.
   * @returns Whether the session holds it.
   */
  async has(key: keyof Data & string): Promise<boolean> {
    checkKey(key);
    return (await this.#current()).has(key);
  }

  /**
   * Lists the keys, loading the session first if needed.
   *
   * @returns The keys the session holds (flash messages excluded).
   */
  async keys(): Promise<(keyof Data & string)[]> {
    return [...(await this.#current()).keys()].filter((k) => k !== FLASH_KEY) as (keyof Data & string)[];
  }

  /**
   * Lists the entries, loading the session first if needed.
   *
   * @returns The session's entries as `[key, value]` pairs (flash messages excluded).
   */
  async entries(): Promise<[keyof Data & string, Data[keyof Data]][]> {
    return [...(await this.#current()).entries()].filter(([k]) => k !== FLASH_KEY) as [
      keyof Data & string,
      Data[keyof Data],
    ][];
  }

  /**
   * Sets a value; it is written when the session is saved.
   *
   * @param key Any string but `"__proto__"` and `"__flash"`.
   * @param value Anything CBOR carries: strings, numbers, booleans, null, arrays, plain objects,
   *   Date, Map, Set, bigint, Uint8Array, Error, RegExp.
   * @throws {TypeError} For a non-string or reserved key, or a function or symbol value.
   */
  set<K extends keyof Data & string>(key: K, value: Data[K]): void {
    checkKey(key);
    checkValue(key, value);
    this.#changes.entries.set(key, value);
  }

  /**
   * Removes a key; the removal is written when the session is saved.
   *
   * @param key The key.
   */
  delete(key: keyof Data & string): void {
    checkKey(key);
    this.#changes.entries.set(key, DELETED);
  }

  /** Removes every key, flash messages included; written when saved. */
  clear(): void {
    this.#changes.entries.clear();
    this.#changes.cleared = true;
  }

  /**
   * Gives the session a new token on save, data kept and the old token dead. Call it on sign-in
   * (and on any privilege change) against session fixation. The absolute deadline is kept unless
   * `restart` is set.
   *
   * @param options `restart: true` starts a new absolute lifetime; `user` (and `label`) bind the
   *   session to a user on sign-in, in the same statement.
   * @throws {TypeError} For an empty user id or a label over 200 characters.
   */
  regenerate(options: RegenerateOptions = {}): void {
    this.#host.regenerate(options);
  }

  /**
   * Ends the session: on save its row is deleted (and `withSession` clears the cookie). The object
   * then behaves as a new, empty session with a new token, so a request can sign out and still
   * leave a flash message for the next page. A sign-out is committed even when the handler then
   * fails.
   */
  destroy(): void {
    this.#host.destroy();
    this.#changes.reset();
  }

  /**
   * The user this session is bound to (by `regenerate({ user })`), read with the session's row:
   * no statement of its own.
   *
   * @returns The user id, or `null` for an anonymous session.
   */
  user(): Promise<string | null> {
    this.#changes.accessed = true;
    return this.#host.currentUser();
  }

  /**
   * The signed-in user's live sessions, for a "your devices" page; `current` marks this one.
   * One statement.
   *
   * @returns The sessions, or `[]` for an anonymous session.
   * @throws {SessionError} `MIGRATION_REQUIRED` on a table without the user columns.
   */
  sessions(): Promise<UserSession[]> {
    this.#changes.accessed = true;
    return this.#host.sessions();
  }

  /**
   * Signs out one of the signed-in user's sessions by its handle ("sign out this device"); a
   * handle of another user's session ends nothing. One statement.
   *
   * @param handle A handle from {@linkcode sessions}.
   * @returns How many sessions ended (0 or 1).
   */
  revoke(handle: string): Promise<number> {
    return this.#host.revoke(handle);
  }

  /**
   * Signs out every other session of the signed-in user, keeping this one ("sign out everywhere
   * else"). One statement.
   *
   * @returns How many sessions ended.
   */
  revokeOthers(): Promise<number> {
    return this.#host.revokeOthers();
  }

  /**
   * Stores a value for the next request to read once with {@linkcode getFlash}.
   *
   * @param key The message's key.
   * @param value Anything `set()` accepts.
   */
  flash(key: string, value: unknown): void {
    checkValue(key, value);
    this.#changes.flash().added.set(key, value);
  }

  /**
   * Reads a flash message and removes it.
   *
   * @param key The message's key.
   * @returns The value, or `undefined` when there is none.
   */
  async getFlash(key: string): Promise<unknown> {
    const flashes = (await this.#current()).get(FLASH_KEY);
    if (!(flashes instanceof Map) || !flashes.has(key)) return undefined;
    const update = this.#changes.flash();
    update.added.delete(key);
    update.taken.add(key);
    return flashes.get(key);
  }

  async #current(): Promise<Map<string, unknown>> {
    this.#changes.accessed = true;
    return this.#changes.apply(await this.#host.load());
  }
}

function checkKey(key: unknown): void {
  if (typeof key !== "string") throw new TypeError(`Cannot use a ${typeof key} as a session key`);
  if (key === "__proto__" || key === FLASH_KEY) {
    throw new TypeError(`Cannot use ${JSON.stringify(key)} as a session key: it is reserved`);
  }
}

function checkValue(key: string, value: unknown): void {
  if (typeof value === "function" || typeof value === "symbol") {
    throw new TypeError(`Cannot store a ${typeof value} in session key ${JSON.stringify(key)}`);
  }
}
