/**
 * A session: its token, its data, and what the request changed.
 *
 * @module
 */

import { generateToken } from "./token.ts";

/** The shape of session data: string keys, values anything CBOR carries. */
export type SessionData = Record<string, unknown>;

const DELETED: unique symbol = Symbol("deleted");
/** Where flash messages live in the data; hidden from `keys()` and `entries()`. */
export const FLASH_KEY = "__flash";

/** Internal state shared by the store and the fetch wrapper; not part of the public API. */
export interface SessionState {
  /** The token the client should hold after this request. */
  token: string;
  /** The token whose row is (believed) stored, or `null` when there is none. */
  storedToken: string | null;
  /** Tokens whose rows must be deleted on save (after `destroy()`). */
  doomed: string[];
  /** Data as stored (before this request's changes); `null` until loaded. */
  base: Map<string, unknown> | null;
  /** The stored column as read, header included, for the compare-and-set on save. */
  raw: Uint8Array | null;
  /** SHA-256 of the stored column, when known from a write. */
  hash: Uint8Array | null;
  /** When the row expires, by the database clock; `null` until stored or loaded. */
  expires: Date | null;
  /** Seconds the row had left when last read or written (database clock). */
  remaining: number | null;
  /** A read or write moved the expiry forward (the cookie's lifetime should follow). */
  rolled: boolean;
  /** Session data was read during this request (the response depends on the cookie). */
  accessed: boolean;
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
 * Session data with change tracking. Reads are async because a session may load lazily (inside
 * `withSession` nothing is read from the database until the first read); writes are sync and
 * kept in memory until the store saves them. Get sessions from `PostgresStore.create()`/`read()`
 * or from `withSession`.
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
    if (!open) throw new TypeError("Cannot construct a Session: use PostgresStore.create() or read(), or withSession()");
    this.#state = open;
    open = undefined;
  }

  /** The token to hand to the client (the cookie value). It changes on `regenerate()` and `destroy()`. */
  get id(): string {
    return this.#state.token;
  }

  /** `true` while no row is stored for this session. */
  get isNew(): boolean {
    return this.#state.storedToken === null;
  }

  /** When the stored session expires (database clock), or `null` when not stored or not loaded yet. */
  get expires(): Date | null {
    return this.#state.expires;
  }

  /** `true` when there are changes a save would write. */
  get isModified(): boolean {
    return isModified(this.#state);
  }

  /** The keys set or deleted since the session was loaded or last saved. */
  get changedKeys(): (keyof Data & string)[] {
    return [...this.#state.changes.keys()].filter((k) => k !== FLASH_KEY) as (keyof Data & string)[];
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
    return [...(await this.#current()).entries()].filter(([k]) => k !== FLASH_KEY) as [keyof Data & string, Data[keyof Data]][];
  }

  /**
   * Sets a value; it is written when the session is saved.
   *
   * @param key Any string but `"__proto__"` and `"__flash"`.
   * @param value Anything CBOR carries: strings, numbers, booleans, null, arrays, plain objects,
   *   Date, Map, Set, bigint, Uint8Array.
   * @throws {TypeError} For a non-string or reserved key, or a function or symbol value.
   */
  set<K extends keyof Data & string>(key: K, value: Data[K]): void {
    checkKey(key);
    checkValue(key, value);
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

  /** Removes every key (beego's `Flush`), flash messages included; written when saved. */
  clear(): void {
    this.#state.changes.clear();
    this.#state.cleared = true;
  }

  /**
   * Gives the session a new token on save, data kept and the old token dead. Call it on sign-in
   * (and on any privilege change) against session fixation. The absolute lifetime restarts.
   */
  regenerate(): void {
    this.#state.token = generateToken();
  }

  /**
   * Ends the session: on save its row is deleted (and `withSession` clears the cookie). The
   * object then behaves as a new, empty session with a new token, so a request can sign out and
   * still leave a flash message for the next page.
   */
  destroy(): void {
    const state = this.#state;
    if (state.storedToken !== null) state.doomed.push(state.storedToken);
    Object.assign(state, newState(generateToken()), { doomed: state.doomed });
  }

  /**
   * Stores a value for the next request to read once with {@linkcode getFlash}.
   *
   * @param key The message's key.
   * @param value Anything `set()` accepts.
   */
  flash(key: string, value: unknown): void {
    checkValue(key, value);
    flashUpdate(this.#state).added.set(key, value);
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
    const update = flashUpdate(this.#state);
    update.added.delete(key);
    update.taken.add(key);
    return flashes.get(key);
  }

  async #current(): Promise<Map<string, unknown>> {
    this.#state.accessed = true;
    await loadSession(this.#state);
    return mergedData(this.#state);
  }
}

/** Flash messages added and taken this request, merged with the stored ones on save. */
class FlashUpdate {
  constructor(readonly added: Map<string, unknown>, readonly taken: Set<string>) {}
}

// The merge with stored flashes happens on save, once the base is known.
function flashUpdate(state: SessionState): FlashUpdate {
  const pending = state.changes.get(FLASH_KEY);
  if (pending instanceof FlashUpdate) return pending;
  const update = new FlashUpdate(new Map(), new Set());
  state.changes.set(FLASH_KEY, update);
  return update;
}

function checkKey(key: unknown): void {
  if (typeof key !== "string") throw new TypeError(`Cannot use a ${typeof key} as a session key`);
  // cbor-x renames "__proto__" on decode, so it could not round-trip.
  if (key === "__proto__" || key === FLASH_KEY) throw new TypeError(`Cannot use ${JSON.stringify(key)} as a session key: it is reserved`);
}

function checkValue(key: string, value: unknown): void {
  if (typeof value === "function" || typeof value === "symbol") {
    throw new TypeError(`Cannot store a ${typeof value} in session key ${JSON.stringify(key)}`);
  }
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
    storedToken: null,
    doomed: [],
    base: new Map(),
    raw: null,
    hash: null,
    expires: null,
    remaining: null,
    rolled: false,
    accessed: false,
    changes: new Map(),
    cleared: false,
    loader: null,
    loading: null,
  };
}

/** State for a stored session whose data is read on first use by `loader`. */
export function storedState(token: string): SessionState {
  return { ...newState(token), storedToken: token, base: null };
}

/** `true` when a save has something to write. */
export function isModified(state: SessionState): boolean {
  return state.cleared || state.changes.size > 0;
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
