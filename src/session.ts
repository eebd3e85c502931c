/**
 * A session: its token, its data, and what the request changed.
 *
 * @module
 */

/** The shape of session data: string keys, values anything CBOR carries. */
export type SessionData = Record<string, unknown>;

const DELETED: unique symbol = Symbol("deleted");

/** Internal state shared by the store and the fetch wrapper; not part of the public API. */
export interface SessionState {
  /** The token the client holds. */
  token: string;
  /** SHA-256 hex of the token, computed when first needed. */
  key: string | null;
  /** No row exists yet. */
  isNew: boolean;
  /** Data as stored (before this request's changes); `null` until loaded. */
  base: Map<string, unknown> | null;
  /** The stored column as read, header included, for the compare-and-set on save. */
  raw: Uint8Array | null;
  /** SHA-256 of the stored column, when known from a write. */
  hash: Uint8Array | null;
  /** When the row expires, by the database clock; `null` until stored or loaded. */
  expires: Date | null;
  /** A read or write moved the expiry forward (the cookie's lifetime should follow). */
  rolled: boolean;
  /** Set or deleted keys since load. */
  changes: Map<string, unknown>;
  /** `clear()` was called: the base does not count. */
  cleared: boolean;
  /** Loads `base` (lazy sessions); `null` when `base` is set from the start. */
  loader: (() => Promise<void>) | null;
  loading: Promise<void> | null;
}

let open: SessionState | undefined;
let stateOfSession: (session: Session<SessionData>) => SessionState;

/**
 * Session data with change tracking. Reads are async because a session may load lazily; writes
 * are sync and kept in memory until the store saves them. Get sessions from
 * `PostgresStore.create()`/`read()` or from `withSession`.
 *
 * Values are stored by value: after changing an object you got from `get()`, `set()` it again.
 *
 * @typeParam Data The keys and value types this session holds.
 * @example
 * ```ts ignore
 * const session = store.create<{ user: string; visits: number }>();
 * session.set("user", "ada");
 * session.set("visits", ((await session.get("visits")) ?? 0) + 1);
 * await store.save(session);
 * ```
 */
export class Session<Data extends SessionData = SessionData> {
  #state: SessionState;

  static {
    stateOfSession = (session) => session.#state;
  }

  /** Sessions are made by the store; calling this yourself throws a `TypeError`. */
  constructor() {
    if (!open) throw new TypeError("Cannot construct a Session: use PostgresStore.create() or read()");
    this.#state = open;
    open = undefined;
  }

  /** The token to hand to the client (e.g. as the cookie value). It changes on regenerate. */
  get id(): string {
    return this.#state.token;
  }

  /** `true` until the session has been saved for the first time. */
  get isNew(): boolean {
    return this.#state.isNew;
  }

  /** When the stored session expires (database clock), or `null` when not stored yet. */
  get expires(): Date | null {
    return this.#state.expires;
  }

  /** `true` when there are changes a save would write. */
  get isModified(): boolean {
    return this.#state.cleared || this.#state.changes.size > 0;
  }

  /** The keys set or deleted since the session was loaded or last saved. */
  get changedKeys(): (keyof Data & string)[] {
    return [...this.#state.changes.keys()] as (keyof Data & string)[];
  }

  /**
   * @param key The key.
   * @returns Its value, or `undefined` when absent.
   */
  async get<K extends keyof Data & string>(key: K): Promise<Data[K] | undefined> {
    return (await this.#current()).get(key) as Data[K] | undefined;
  }

  /**
   * @param key The key.
   * @returns Whether the session holds it.
   */
  async has(key: keyof Data & string): Promise<boolean> {
    return (await this.#current()).has(key);
  }

  /** @returns The keys the session holds. */
  async keys(): Promise<(keyof Data & string)[]> {
    return [...(await this.#current()).keys()] as (keyof Data & string)[];
  }

  /** @returns The session's entries as `[key, value]` pairs. */
  async entries(): Promise<[keyof Data & string, Data[keyof Data]][]> {
    return [...(await this.#current()).entries()] as [keyof Data & string, Data[keyof Data]][];
  }

  /**
   * Sets a value; it is written when the session is saved.
   *
   * @param key Any string but `"__proto__"`.
   * @param value Anything CBOR carries: strings, numbers, booleans, null, arrays, plain objects,
   *   Date, Map, Set, bigint, Uint8Array.
   * @throws {TypeError} For a non-string or reserved key, or a function or symbol value.
   */
  set<K extends keyof Data & string>(key: K, value: Data[K]): void {
    checkKey(key);
    if (typeof value === "function" || typeof value === "symbol") {
      throw new TypeError(`Cannot store a ${typeof value} in session key ${JSON.stringify(key)}`);
    }
    this.#state.changes.set(key, value);
  }

  /**
   * Removes a key; the removal is written when the session is saved.
   *
   * @param key The key.
   */
  delete(key: keyof Data & string): void {
    checkKey(key);
    this.#state.changes.set(key, DELETED);
  }

  /** Removes every key (beego's `Flush`); written when the session is saved. */
  clear(): void {
    this.#state.changes.clear();
    this.#state.cleared = true;
  }

  async #current(): Promise<Map<string, unknown>> {
    await loadSession(this.#state);
    return mergedData(this.#state);
  }
}

function checkKey(key: unknown): void {
  if (typeof key !== "string") throw new TypeError(`Cannot use a ${typeof key} as a session key`);
  // cbor-x renames "__proto__" on decode, so it could not round-trip.
  if (key === "__proto__") throw new TypeError(`Cannot use "__proto__" as a session key`);
}

/** Makes a session around internal state. */
export function createSession<Data extends SessionData>(state: SessionState): Session<Data> {
  open = state;
  return new Session<Data>();
}

/** The internal state of a session. */
export function stateOf<Data extends SessionData>(session: Session<Data>): SessionState {
  return stateOfSession(session as unknown as Session<SessionData>);
}

/** Fresh state for a session with no row yet. */
export function newState(token: string): SessionState {
  return {
    token,
    key: null,
    isNew: true,
    base: new Map(),
    raw: null,
    hash: null,
    expires: null,
    rolled: false,
    changes: new Map(),
    cleared: false,
    loader: null,
    loading: null,
  };
}

/** Runs the lazy loader once. */
export async function loadSession(state: SessionState): Promise<void> {
  if (state.base) return;
  if (!state.loader) throw new Error("Session has neither data nor a loader");
  state.loading ??= state.loader().finally(() => {
    state.loading = null;
  });
  await state.loading;
}

/** The data as it would be saved: the base with this request's changes applied. */
export function mergedData(state: SessionState): Map<string, unknown> {
  const data = state.cleared || !state.base ? new Map<string, unknown>() : new Map(state.base);
  for (const [key, value] of state.changes) {
    if (value === DELETED) data.delete(key);
    else data.set(key, value);
  }
  return data;
}
