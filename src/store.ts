/**
 * PostgresStore: beego's PostgreSQL session provider, one statement per operation.
 *
 * @module
 */

import { type Connection, type QueryFn, type Row, toQueryFn } from "./client.ts";
import { decodeData, encodeData } from "./codec.ts";
import { SessionError } from "./errors.ts";
import { gc, type GcOptions, type GcResult } from "./gc.ts";
import { buildStatements, HEADER_BYTES, type Statements } from "./_sql.ts";
import {
  createSession,
  isModified,
  loadSession,
  mergedData,
  newState,
  type Session,
  type SessionData,
  type SessionState,
  stateOf,
  storedState,
} from "./session.ts";
import { generateToken, hashToken, isToken, sha256 } from "./token.ts";

/** Where the store reports what it recovered from, such as corrupt stored data. */
export interface Logger {
  /** Called with a message and details; never with a raw token. */
  warn(message: string, details?: Record<string, unknown>): void;
}

/** How sessions live and how much they may hold. */
export interface StoreOptions {
  /**
   * The table, optionally schema-qualified (`"auth.session"`); used exactly as written (quoted).
   * @default {"session"}
   */
  table?: string;
  /**
   * Idle timeout in seconds: a session not used for this long expires.
   * @default {604800} (7 days)
   */
  ttl?: number;
  /**
   * Absolute lifetime in seconds from creation (or the last regenerate), however active the
   * session; `null` for none.
   * @default {2592000} (30 days)
   */
  absoluteTtl?: number | null;
  /**
   * How many seconds the stored expiry may lag behind `now + ttl` before a read or write rolls it
   * forward. Larger means fewer writes on read-only requests; `0` rolls on every request.
   * @default {3600}, or half of `ttl` when that is smaller
   */
  touchAfter?: number;
  /**
   * The largest encoded session in bytes; saving more is a `DATA_TOO_LARGE` error and stored data
   * over it reads as empty.
   * @default {65536}
   */
  maxDataBytes?: number;
  /**
   * Receives warnings.
   * @default {console}
   */
  logger?: Logger;
}

/** Everything `new PostgresStore()` takes: one connection plus store options. */
export type PostgresStoreOptions = Connection & StoreOptions;

/** The store's options after defaults were applied. */
export interface ResolvedStoreOptions {
  /** See {@linkcode StoreOptions.table}. */
  readonly table: string;
  /** See {@linkcode StoreOptions.ttl}. */
  readonly ttl: number;
  /** See {@linkcode StoreOptions.absoluteTtl}. */
  readonly absoluteTtl: number | null;
  /** See {@linkcode StoreOptions.touchAfter}. */
  readonly touchAfter: number;
  /** See {@linkcode StoreOptions.maxDataBytes}. */
  readonly maxDataBytes: number;
}

/**
 * What `save()` did.
 *
 * - `created`: a new session was inserted (also after `destroy()` when the request then stored data).
 * - `updated`: the stored session was updated.
 * - `regenerated`: the stored session moved to its new token (after `regenerate()`).
 * - `destroyed`: the stored session was deleted (after `destroy()`).
 * - `unchanged`: nothing to write; no statement was sent.
 * - `gone`: the session was destroyed or expired meanwhile; it was NOT re-created.
 */
export type SaveResult = "created" | "updated" | "regenerated" | "destroyed" | "unchanged" | "gone";

/** Defaults for {@linkcode StoreOptions}. */
export const STORE_DEFAULTS: Readonly<Required<Omit<StoreOptions, "logger" | "touchAfter">>> = Object.freeze({
  table: "session",
  ttl: 604_800,
  absoluteTtl: 2_592_000,
  maxDataBytes: 65_536,
});

const MAX_SAVE_ATTEMPTS = 10;
const NO_HASH = new Uint8Array(0);

let internals: {
  fetch: (store: PostgresStore<SessionData>, state: SessionState) => Promise<boolean>;
  run: (store: PostgresStore<SessionData>, what: string, text: string, params: unknown[]) => Promise<Row[]>;
};

/**
 * Sessions in a PostgreSQL table, over Neon's HTTP transport, a Neon `Pool`/`Client`, `pg` or
 * PGlite. Every method sends at most one statement (one HTTP round trip over `neon()`), and none
 * for an id that is not a well-formed token.
 *
 * @typeParam Data The shape of session data.
 * @example
 * ```ts ignore
 * import { PostgresStore } from "pgsession";
 *
 * const store = new PostgresStore({ connectionString: "postgres://user:password@host/db" });
 * const session = store.create();
 * session.set("user", "ada");
 * await store.save(session);                 // INSERT
 * const again = await store.read(session.id); // one SELECT (expiry refresh inside it when due)
 * console.log(await again?.get("user"));      // "ada"
 * ```
 */
export class PostgresStore<Data extends SessionData = SessionData> {
  /** The options in force, defaults applied. */
  readonly options: ResolvedStoreOptions;
  #query: QueryFn;
  #sql: Statements;
  #logger: Logger;

  static {
    internals = {
      fetch: (store, state) => store.#fetch(state),
      run: (store, what, text, params) => store.#run(what, text, params),
    };
  }

  /**
   * Makes a store. Nothing connects until the first statement.
   *
   * @param options One of `connectionString`, `sql` or `client`, and the {@linkcode StoreOptions}.
   * @throws {TypeError} For a missing connection or a bad table name.
   * @throws {RangeError} For durations or sizes out of range.
   */
  constructor(options: PostgresStoreOptions) {
    this.#query = toQueryFn(options);
    const ttl = wholeNumber("ttl", options.ttl ?? STORE_DEFAULTS.ttl, 1);
    const absoluteTtl = options.absoluteTtl === null ? null : wholeNumber("absoluteTtl", options.absoluteTtl ?? STORE_DEFAULTS.absoluteTtl ?? 0, 1);
    const touchAfter = wholeNumber("touchAfter", options.touchAfter ?? Math.min(3600, Math.floor(ttl / 2)), 0);
    if (touchAfter >= ttl) throw new RangeError(`Cannot use touchAfter ${touchAfter}: it must be less than ttl (${ttl})`);
    this.options = Object.freeze({
      table: options.table ?? STORE_DEFAULTS.table,
      ttl,
      absoluteTtl,
      touchAfter,
      maxDataBytes: wholeNumber("maxDataBytes", options.maxDataBytes ?? STORE_DEFAULTS.maxDataBytes, 1),
    });
    this.#sql = buildStatements(this.options);
    this.#logger = options.logger ?? console;
  }

  /**
   * Starts a new session with a fresh token. Nothing is written until it is saved.
   *
   * @returns An empty, new session.
   */
  create(): Session<Data> {
    return createSession<Data>(newState(generateToken()));
  }

  /**
   * Reads a live session. Never creates a row. When the stored expiry is staler than
   * `touchAfter`, the same statement rolls it forward.
   *
   * @param id The token the client sent.
   * @returns The session, or `null` when the id is malformed (no SQL sent), unknown or expired.
   * @throws {SessionError} `DATABASE_ERROR` when the database fails.
   */
  async read(id: string): Promise<Session<Data> | null> {
    if (!isToken(id)) return null;
    const state = storedState(id);
    return (await this.#fetch(state)) ? createSession<Data>(state) : null;
  }

  /**
   * Tells whether a live session has this id, without reading its data or rolling its expiry.
   *
   * @param id The token the client sent.
   * @returns Whether a live session has this id; `false` without SQL for a malformed id.
   * @throws {SessionError} `DATABASE_ERROR` when the database fails.
   */
  async exists(id: string): Promise<boolean> {
    if (!isToken(id)) return false;
    const rows = await this.#run("check session", this.#sql.exists, [await hashToken(id)]);
    return rows[0]?.found === true;
  }

  /**
   * Deletes a session.
   *
   * @param id The token the client sent.
   * @returns Whether a row was deleted; `false` without SQL for a malformed id.
   * @throws {SessionError} `DATABASE_ERROR` when the database fails.
   */
  async destroy(id: string): Promise<boolean> {
    if (!isToken(id)) return false;
    const rows = await this.#run("destroy session", this.#sql.destroy, [await hashToken(id)]);
    return rows.length > 0;
  }

  /**
   * Counts live sessions (beego's `SessionAll`, which also counted expired rows).
   *
   * @returns How many live sessions there are (expired rows not yet collected do not count).
   * @throws {SessionError} `DATABASE_ERROR` when the database fails.
   */
  async count(): Promise<number> {
    const rows = await this.#run("count sessions", this.#sql.count, []);
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Writes what happened to a session: its row deleted after `destroy()`, moved to the new token
   * after `regenerate()`, an INSERT for a new session with data, an UPDATE for a changed stored
   * one, and nothing at all when nothing changed.
   *
   * A stored session that was destroyed or expired meanwhile is NOT re-created (`"gone"`). When
   * another request changed the session since it was read, this one's changed keys are applied
   * on top of the other's data and the write retried, so no key is lost.
   *
   * @param session A session from this store or from `withSession`.
   * @returns What was done.
   * @throws {SessionError} `DATA_TOO_LARGE` or `UNENCODABLE_DATA` with the stored data unchanged;
   *   `DATABASE_ERROR` when the database fails; `CONFLICT` when other writers kept winning.
   */
  async save(session: Session<Data>): Promise<SaveResult> {
    const state = stateOf(session);
    let result: SaveResult = "unchanged";
    while (state.doomed.length) {
      await this.#run("destroy session", this.#sql.destroy, [await hashToken(state.doomed[0]!)]);
      state.doomed.shift();
      result = "destroyed";
    }
    if (state.storedToken !== null && !isModified(state) && state.token === state.storedToken) return result;
    if (state.storedToken !== null && isModified(state)) await loadSession(state);
    if (state.storedToken === null) return (await this.#insert(state)) ?? result;
    if (state.token !== state.storedToken) return this.#move(state);
    return this.#update(state);
  }

  /**
   * Moves a session to a new id, data kept, the old id deleted, the lifetime restarted; one atomic
   * statement. Use it on sign-in against session fixation.
   *
   * @param id The current token.
   * @returns The session under its new id, or `null` when the id is malformed, unknown or expired.
   * @throws {SessionError} `DATABASE_ERROR` when the database fails.
   */
  async regenerate(id: string): Promise<Session<Data> | null> {
    if (!isToken(id)) return null;
    const state = storedState(id);
    state.token = generateToken();
    return (await this.#move(state)) === "regenerated" ? createSession<Data>(state) : null;
  }

  /**
   * Deletes expired sessions in short batches until none are left or the time budget is spent;
   * the same as the {@linkcode gc} function, which has the details.
   *
   * @param options Batch size (default 1000), time budget (default 25 s), abort signal, progress.
   * @returns Rows deleted, batches sent, and `done: false` when more may remain.
   * @throws {RangeError} For options out of range.
   * @throws {SessionError} `DATABASE_ERROR` when the database fails.
   * @example
   * ```ts ignore
   * const { deleted, done } = await store.gc({ maxDurationMs: 10_000 });
   * ```
   */
  gc(options?: GcOptions): Promise<GcResult> {
    return gc(this, options);
  }

  /** Reads the row for `state.storedToken` into `state`; `false` when there is no live row. */
  async #fetch(state: SessionState): Promise<boolean> {
    const key = await hashToken(state.storedToken!);
    const [row] = await this.#run("read session", this.#sql.read, [key]);
    if (!row) return false;
    this.#apply(state, row, key);
    return true;
  }

  /** INSERTs a session that has no row; `undefined` when there is nothing to store. */
  async #insert(state: SessionState): Promise<SaveResult | undefined> {
    const data = mergedData(state);
    if (data.size === 0) {
      settle(state, data);
      return undefined;
    }
    const [row] = await this.#run("save session", this.#sql.insert, [await hashToken(state.token), this.#encode(data)]);
    state.storedToken = state.token;
    settle(state, data, row);
    return "created";
  }

  /** Moves a stored session to `state.token` (after `regenerate()`), with its changes if any. */
  async #move(state: SessionState): Promise<SaveResult> {
    const from = await hashToken(state.storedToken!);
    const to = await hashToken(state.token);
    if (!isModified(state)) {
      const [row] = await this.#run("regenerate session", this.#sql.regenerate, [from, to]);
      if (!row) return gone(state);
      state.storedToken = state.token;
      this.#apply(state, row, to);
      state.rolled = true;
      return "regenerated";
    }
    const moved = await this.#writeWithMerge(state, from, (payload, expected) =>
      this.#run("regenerate session", this.#sql.rekey, [from, to, payload, expected])
    );
    if (moved !== "written") return moved;
    state.storedToken = state.token;
    state.rolled = true;
    return "regenerated";
  }

  /**
   * Writes the merged data with compare-and-set; on a conflict takes the current data as the base,
   * applies this request's changes again and retries.
   */
  async #writeWithMerge(
    state: SessionState,
    key: string,
    write: (payload: Uint8Array, expected: Uint8Array) => Promise<Row[]>,
  ): Promise<"written" | "gone"> {
    for (let attempt = 0; attempt < MAX_SAVE_ATTEMPTS; attempt++) {
      const data = mergedData(state);
      const payload = this.#encode(data);
      const expected = state.hash ?? (state.raw ? await sha256(state.raw) : NO_HASH);
      const [row] = await write(payload, expected);
      if (row?.expires != null) {
        settle(state, data, row);
        return "written";
      }
      if (row?.present !== true) {
        gone(state);
        return "gone";
      }
      // Someone else wrote first: take their data as the base and apply our changes again.
      this.#rebase(state, row.current, key);
    }
    throw new SessionError("CONFLICT", `Cannot save session: it changed concurrently ${MAX_SAVE_ATTEMPTS} times in a row`);
  }

  /** UPDATEs a stored session with compare-and-set, merging with concurrent writers. */
  async #update(state: SessionState): Promise<SaveResult> {
    const key = await hashToken(state.token);
    const result = await this.#writeWithMerge(state, key, (payload, expected) =>
      this.#run("save session", this.#sql.update, [key, payload, expected])
    );
    return result === "written" ? "updated" : result;
  }

  #apply(state: SessionState, row: Row, key: string): void {
    this.#rebase(state, row.data, key);
    setExpiry(state, row);
  }

  /** Takes stored column bytes as the session's base; corrupt data becomes an empty session. */
  #rebase(state: SessionState, stored: unknown, key: string): void {
    const raw = toBytes(stored);
    state.raw = raw;
    state.hash = null;
    try {
      if (!raw) throw new RangeError(stored == null ? "Session data is NULL" : `Session data is a ${typeof stored}, not bytes`);
      if (raw.byteLength < HEADER_BYTES) throw new RangeError(`Session data is ${raw.byteLength} bytes, shorter than its header`);
      state.base = decodeData(raw.subarray(HEADER_BYTES), this.options.maxDataBytes);
    } catch (error) {
      state.base = new Map();
      // A prefix of the row's key (a hash) lets an operator find it; tokens never reach logs.
      this.#logger.warn("Session data is corrupt and was read as empty", { key: `${key.slice(0, 12)}…`, reason: (error as Error).message });
    }
  }

  #encode(data: Map<string, unknown>): Uint8Array {
    let payload: Uint8Array;
    try {
      payload = encodeData(data);
    } catch (error) {
      throw new SessionError("UNENCODABLE_DATA", (error as Error).message.replace(/^Cannot encode/, "Cannot save"), { cause: error });
    }
    if (payload.byteLength > this.options.maxDataBytes) {
      throw new SessionError(
        "DATA_TOO_LARGE",
        `Cannot save session: encoded data is ${payload.byteLength} bytes, over the ${this.options.maxDataBytes}-byte limit`,
      );
    }
    return payload;
  }

  async #run(what: string, text: string, params: unknown[]): Promise<Row[]> {
    try {
      return await this.#query(text, params);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new SessionError("DATABASE_ERROR", `Cannot ${what}: ${reason}`, { cause: error });
    }
  }
}

/**
 * Reads a lazy session's row into its state; used by `withSession`.
 *
 * @returns `false` when there is no live row.
 */
export function fetchInto<Data extends SessionData>(store: PostgresStore<Data>, state: SessionState): Promise<boolean> {
  return internals.fetch(store as unknown as PostgresStore<SessionData>, state);
}

/**
 * Runs one statement on a store's connection; failures become `SessionError("DATABASE_ERROR")`
 * with the driver's error as `cause`. For package code (gc, the CLI) that needs the store's
 * connection.
 *
 * @param what Completes "Cannot …" in the error message, e.g. `"collect expired sessions"`.
 */
export function runQuery<Data extends SessionData>(store: PostgresStore<Data>, what: string, text: string, params: unknown[]): Promise<Row[]> {
  return internals.run(store as unknown as PostgresStore<SessionData>, what, text, params);
}

/** Records a successful write. */
function settle(state: SessionState, data: Map<string, unknown>, row?: Row): void {
  state.base = data;
  state.changes.clear();
  state.cleared = false;
  if (!row) return;
  state.raw = null;
  state.hash = toBytes(row.hash);
  setExpiry(state, row);
}

function setExpiry(state: SessionState, row: Row): void {
  state.expires = new Date(Number(row.expires));
  state.remaining = Number(row.remaining);
  state.rolled ||= row.rolled === true;
}

/** The stored row vanished (destroyed or expired meanwhile): this request's writes are dropped. */
function gone(state: SessionState): SaveResult {
  state.storedToken = null;
  state.base ??= new Map();
  return "gone";
}

/** Drivers return bytea as Buffer or Uint8Array; anything else is not bytes. */
function toBytes(value: unknown): Uint8Array | null {
  if (value instanceof Uint8Array) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

function wholeNumber(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`Cannot use ${name} ${value}: expected a whole number of at least ${min}`);
  }
  return value;
}
