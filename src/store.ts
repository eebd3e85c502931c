/**
 * PostgresStore: sessions in one PostgreSQL table, one statement per operation. The store is the
 * only owner of what is stored: it decides what a save does and what the client's cookie must
 * say afterwards.
 *
 * @module
 */

import { type Connection, type Driver, type Row, TimeoutReached, toDriver } from "./client.ts";
import { decodeData, encodeData } from "./_codec.ts";
import { SessionError } from "./errors.ts";
import { headerFor, readStored, writeStored } from "./_format.ts";
import { gc, type GcOptions, type GcResult } from "./gc.ts";
import { buildStatements, type Statements, USER_COLUMNS, type UserStatements } from "./_sql.ts";
import {
  Changes,
  type RegenerateOptions,
  Session,
  type SessionData,
  type SessionHost,
  type UserSession,
} from "./session.ts";
import { generateToken, hashToken, isToken } from "./token.ts";

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
   * Idle timeout in seconds: a session not used for this long expires. Because the stored expiry
   * moves forward at most once per `touchAfter`, an idle session expires between
   * `ttl - touchAfter` and `ttl` seconds after its last use.
   * @default {604800} (7 days)
   */
  ttl?: number;
  /**
   * Absolute lifetime in seconds from creation, however active the session and however often it
   * is regenerated; `null` for none.
   * @default {2592000} (30 days)
   */
  absoluteTtl?: number | null;
  /**
   * How many seconds the stored expiry may lag behind `now + ttl` before a request moves it
   * forward (one UPDATE, after the response when `waitUntil` is given). Larger means fewer
   * writes on read-only requests; `0` touches on every request.
   * @default {3600}, or a tenth of `ttl` when that is smaller (so the real idle timeout is at least 90% of `ttl`)
   */
  touchAfter?: number;
  /**
   * The largest encoded session in bytes; saving more is a `DATA_TOO_LARGE` error and stored data
   * over it reads as empty.
   * @default {65536}
   */
  maxDataBytes?: number;
  /**
   * How long one store operation may wait for the database, in milliseconds: each statement, and
   * the retries of a save that races other writers. A call that waits longer fails with
   * `SessionError("TIMEOUT")`; a row lock held by another transaction is waited out on the server
   * (`lock_timeout`), so the connection stays usable. `0` waits forever.
   * @default {5000}
   */
  timeoutMs?: number;
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
  /** See {@linkcode StoreOptions.timeoutMs}. */
  readonly timeoutMs: number;
}

/**
 * What a save did.
 *
 * - `created`: a new session was inserted (also after `destroy()` when the request then stored data).
 * - `updated`: the stored session was updated.
 * - `touched`: only the stored expiry moved forward (a read-only request whose touch was due).
 * - `regenerated`: the stored session moved to its new token (after `regenerate()`).
 * - `destroyed`: the stored session was deleted (after `destroy()`).
 * - `unchanged`: nothing to write; no statement was sent.
 * - `gone`: the session was destroyed, regenerated or expired by another request meanwhile; it
 *   was NOT re-created and the client's cookie is left alone.
 */
export type SaveResult = "created" | "updated" | "touched" | "regenerated" | "destroyed" | "unchanged" | "gone";

/**
 * What a commit will tell the client: set the cookie to `token` for `maxAge` seconds, clear it
 * (`token: ""`, `maxAge: 0`), or nothing (`null`).
 */
export interface CookieValue {
  /** The token (unsigned), or `""` to clear the cookie. */
  token: string;
  /** Seconds until the browser drops the cookie. */
  maxAge: number;
}

/**
 * The store's decision about one session: what writing it means, whether the client's cookie
 * depends on that write, and the cookie it leads to. Made once; `withSession` and framework
 * adapters only run it and turn {@linkcode CommitPlan.cookie} into a header.
 */
export interface CommitPlan {
  /** The write: `none`, `insert`, `update`, `touch` (expiry only), `move` (regenerate) or `destroy`. */
  readonly kind: "none" | "insert" | "update" | "touch" | "move" | "destroy";
  /**
   * `true` when the client's cookie is only valid once this write is done (an insert, a move, a
   * destroy): run it before answering. Plain updates and touches may run in the background.
   */
  readonly critical: boolean;
  /** The request read the session's data: the response depends on the session. */
  readonly accessed: boolean;
  /**
   * Runs the writes (once; later calls return the same promise), within the store's `timeoutMs`
   * from this call.
   *
   * @param options `signal`: abandons the writes not yet sent when aborted.
   */
  run(options?: { signal?: AbortSignal }): Promise<SaveResult>;
  /**
   * The cookie the client should get: after `run()` settles, from what was written; before, from
   * what the write will do (used when it runs in the background).
   */
  cookie(): CookieValue | null;
}

/** Defaults for {@linkcode StoreOptions}. */
export const STORE_DEFAULTS: Readonly<{
  table: string;
  ttl: number;
  absoluteTtl: number;
  maxDataBytes: number;
  timeoutMs: number;
}> = Object.freeze({
  table: "session",
  ttl: 604_800,
  absoluteTtl: 2_592_000,
  maxDataBytes: 65_536,
  timeoutMs: 5_000,
});

// Without a time budget, a save gives up after this many lost races in a row.
const MAX_UNBOUNDED_ATTEMPTS = 1000;
// The largest instant a JS Date holds; a stored expiry beyond it is corrupt.
const MAX_DATE_MS = 8.64e15;

/** The store's side of one session. Only this module writes these fields. */
class Stored implements SessionHost {
  /** The token the session was opened or read with; `null` for `create()`. */
  readonly origin: string | null;
  token: string;
  /** The token whose row is believed stored, or `null`. */
  stored: string | null;
  /** Tokens whose rows a save deletes (after `destroy()`). */
  toDelete: string[] = [];
  /** Stored data, decoded; `null` until loaded. */
  base: Map<string, unknown> | null;
  /** The stored column as last read or written: the compare-and-set's expected value. */
  raw: Uint8Array | null = null;
  /** The header to keep on update. */
  header: Uint8Array | null = null;
  /** Absolute deadline in ms (database clock), or `null` for none or unknown. */
  deadlineMs: number | null = null;
  expiresMs: number | null = null;
  /** The database's `now()` at the last read or write, in ms. */
  nowMs: number | null = null;
  /** The stored expiry lags enough that this request should move it forward. */
  touchDue = false;
  /** The expiry moved forward this request: the cookie's lifetime follows. */
  rolled = false;
  /** `regenerate({ restart: true })` was asked for. */
  restart = false;
  loading: Promise<void> | null = null;
  outcome: SaveResult | null = null;
  /** The user the stored session belongs to, read with the row. */
  user: string | null = null;
  label: string | null = null;
  /** A user to bind on save (`regenerate({ user })`). */
  bind: { user: string; label: string | null } | null = null;
  readonly changes: Changes = new Changes();

  /** Reads the row on first use, and the user operations; set by the store. */
  loader: (record: Stored) => Promise<void> = () => Promise.resolve();
  hooks!: {
    sessions(record: Stored): Promise<UserSession[]>;
    revoke(record: Stored, handle: string): Promise<number>;
    revokeOthers(record: Stored): Promise<number>;
  };

  constructor(readonly table: string, token: string, stored: string | null, readonly signal?: AbortSignal) {
    this.origin = stored;
    this.token = token;
    this.stored = stored;
    this.base = stored === null ? new Map() : null;
  }

  get isNew(): boolean {
    return this.stored === null;
  }

  get expires(): Date | null {
    return this.expiresMs === null ? null : new Date(this.expiresMs);
  }

  load(): Promise<ReadonlyMap<string, unknown>> {
    if (this.base) return Promise.resolve(this.base);
    this.loading ??= this.loader(this).finally(() => {
      this.loading = null;
    });
    return this.loading.then(() => this.base!);
  }

  regenerate(options: RegenerateOptions): void {
    if (options.user !== undefined) {
      checkUser(options.user);
      const label = options.label ?? null;
      if (label !== null && (typeof label !== "string" || label.length > MAX_LABEL)) {
        throw new TypeError(
          `Cannot use a session label of ${
            typeof label === "string" ? `${label.length} characters` : typeof label
          }: expected a string of at most ${MAX_LABEL}`,
        );
      }
      this.bind = { user: options.user, label };
    }
    this.token = generateToken();
    this.restart ||= options.restart === true;
  }

  async currentUser(): Promise<string | null> {
    if (this.bind) return this.bind.user;
    if (this.stored !== null && !this.base) await this.load();
    return this.stored === null && !this.bind ? null : this.user;
  }

  sessions(): Promise<UserSession[]> {
    return this.hooks.sessions(this);
  }

  revoke(handle: string): Promise<number> {
    return this.hooks.revoke(this, handle);
  }

  revokeOthers(): Promise<number> {
    return this.hooks.revokeOthers(this);
  }

  destroy(): void {
    if (this.stored !== null) this.toDelete.push(this.stored);
    this.token = generateToken();
    this.stored = null;
    this.base = new Map();
    this.raw = this.header = null;
    this.deadlineMs = this.expiresMs = null;
    this.touchDue = this.rolled = this.restart = false;
    this.user = this.label = null;
    this.bind = null;
  }
}

const records = new WeakMap<object, Stored>();
/**
 * Per table name: whether it has the user columns (`undefined` until a statement tells). Only the
 * read path trusts a `false`; anything that needs the columns tries them again.
 */
const userColumns = new Map<string, boolean>();
const MAX_LABEL = 200;

function checkUser(user: unknown): asserts user is string {
  if (typeof user !== "string" || user.length === 0 || user.length > 1024) {
    throw new TypeError(
      `Cannot use a user id of type ${typeof user}${
        typeof user === "string" ? ` and length ${user.length}` : ""
      }: expected a non-empty string`,
    );
  }
}

function missingUserColumn(error: unknown): boolean {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } })?.cause;
  return cause?.code === "42703" && USER_COLUMNS.some((c) => String(cause.message).includes(c));
}

function migrationRequired(what: string): SessionError {
  return new SessionError(
    "MIGRATION_REQUIRED",
    `Cannot ${what}: the session table has no user columns; run npx pgsession migrate (or the second statement of schema.sql)`,
  );
}

/** One chain of writers per stored row in this process, so they take turns instead of racing. */
interface Lane {
  tail: Promise<void>;
  /** Writes completed on this lane; a writer that waited sees whether the row moved on. */
  version: number;
  /** The row as the lane's last writer left it. */
  latest: { raw: Uint8Array; base: Map<string, unknown> } | null;
  waiting: number;
}
const lanes = new Map<string, Lane>();

/**
 * Sessions in a PostgreSQL table, over Neon's HTTP transport, a Neon `Pool`/`Client`, `pg` or
 * PGlite. A read is one indexed `SELECT`; a write one `INSERT`/`UPDATE`/`DELETE`; nothing is sent
 * for an id that is not a well-formed token.
 *
 * @typeParam Data The shape of session data, an `interface` or a `type`.
 * @example
 * ```ts ignore
 * import pg from "pg";
 * import { PostgresStore } from "pgsession";
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * const store = new PostgresStore<{ user: string }>({ client: pool });
 * const session = store.create();
 * session.set("user", "ada");
 * await store.save(session);                  // INSERT
 * const again = await store.read(session.id); // SELECT
 * console.log(await again?.get("user"));      // "ada"
 * ```
 */
export class PostgresStore<Data extends object = SessionData> {
  /** The options in force, defaults applied. */
  readonly options: ResolvedStoreOptions;
  #driver: Driver;
  #sql: { plain: Statements; users: UserStatements };
  #logger: Logger;
  // Shared by every session of this store: no closures per request.
  #loader = (record: Stored): Promise<void> => this.#load(record);
  #hooks: Stored["hooks"] = {
    sessions: async (r) => {
      const user = await r.currentUser();
      return user === null ? [] : this.sessionsOf(user, { current: r.stored ?? r.token });
    },
    revoke: async (r, handle) => {
      const user = await r.currentUser();
      return user === null ? 0 : this.revoke(handle, { user });
    },
    revokeOthers: async (r) => {
      const user = await r.currentUser();
      if (user === null) return 0;
      return this.revokeAll(user, { except: r.stored === null ? null : await hashToken(r.stored) });
    },
  };

  /**
   * Makes a store. Nothing connects until the first statement.
   *
   * @param options One of `connectionString`, `sql` or `client`, and the {@linkcode StoreOptions}.
   * @throws {TypeError} For a missing or unsafe connection or a bad table name.
   * @throws {RangeError} For durations or sizes out of range.
   */
  constructor(options: PostgresStoreOptions) {
    const ttl = wholeNumber("ttl", options.ttl ?? STORE_DEFAULTS.ttl, 1);
    const absoluteTtl = options.absoluteTtl === null
      ? null
      : wholeNumber("absoluteTtl", options.absoluteTtl ?? STORE_DEFAULTS.absoluteTtl, 1);
    const touchAfter = wholeNumber("touchAfter", options.touchAfter ?? Math.min(3600, Math.floor(ttl / 10)), 0);
    if (touchAfter >= ttl) {
      throw new RangeError(`Cannot use touchAfter ${touchAfter}: it must be less than ttl (${ttl})`);
    }
    this.options = Object.freeze({
      table: options.table ?? STORE_DEFAULTS.table,
      ttl,
      absoluteTtl,
      touchAfter,
      maxDataBytes: wholeNumber("maxDataBytes", options.maxDataBytes ?? STORE_DEFAULTS.maxDataBytes, 1),
      timeoutMs: wholeNumber("timeoutMs", options.timeoutMs ?? STORE_DEFAULTS.timeoutMs, 0),
    });
    this.#sql = buildStatements(this.options);
    this.#logger = options.logger ?? console;
    this.#driver = toDriver(options, this.#logger);
  }

  /**
   * Starts a new session with a fresh token. Nothing is written until it is saved.
   *
   * @returns An empty, new session.
   */
  create(): Session<Data> {
    return this.#session(this.#record(generateToken(), null));
  }

  /**
   * A session for a token the client sent, read from the database on first use (`get`, `has`,
   * `keys`, `entries`) or on save; no statement until then. An unknown, expired or malformed
   * token becomes a new session with a new token: a row is never created for an id the store did
   * not issue. This is what `withSession` and the framework adapters use.
   *
   * @param token The client's token, or `null` for a new session.
   * @param options `signal`: abandons this session's statements when aborted.
   * @returns The session.
   */
  open(token: string | null, options: { signal?: AbortSignal } = {}): Session<Data> {
    if (token === null || !isToken(token)) return this.#session(this.#record(generateToken(), null, options.signal));
    return this.#session(this.#record(token, token, options.signal));
  }

  /**
   * Reads a live session. Never creates a row. When the stored expiry lags more than
   * `touchAfter`, it is moved forward right away (a second statement).
   *
   * @param id The token the client sent.
   * @returns The session, or `null` when the id is malformed (no SQL sent), unknown or expired.
   * @throws {SessionError} `DATABASE_ERROR` or `TIMEOUT` when the database fails.
   */
  async read(id: string): Promise<Session<Data> | null> {
    if (!isToken(id)) return null;
    const record = this.#record(id, id);
    if (!(await this.#fetch(record, this.#budget()))) return null;
    if (record.touchDue) await this.#touch(record, this.#budget());
    return this.#session(record);
  }

  /**
   * Tells whether a live session has this id, without reading its data into a session or moving
   * its expiry.
   *
   * @param id The token the client sent.
   * @returns Whether a live session has this id; `false` without SQL for a malformed id.
   * @throws {SessionError} `DATABASE_ERROR` or `TIMEOUT` when the database fails.
   */
  async exists(id: string): Promise<boolean> {
    if (!isToken(id)) return false;
    const [row] = await this.#run("check session", this.#sql.plain.read, [await hashToken(id)], this.#budget());
    return row !== undefined && this.#liveness(row.expires, row.now, row.data, null).live;
  }

  /**
   * Deletes a session.
   *
   * @param id The token the client sent.
   * @returns Whether a row was deleted; `false` without SQL for a malformed id.
   * @throws {SessionError} `DATABASE_ERROR` or `TIMEOUT` when the database fails.
   */
  async destroy(id: string): Promise<boolean> {
    if (!isToken(id)) return false;
    const budget = this.#budget();
    const rows = await this.#run(
      "destroy session",
      this.#sql.plain.destroy,
      [await hashToken(id), lockMs(budget)],
      budget,
    );
    return rows.length > 0;
  }

  /**
   * Counts live sessions.
   *
   * @returns How many live sessions there are (expired rows not yet collected do not count).
   * @throws {SessionError} `DATABASE_ERROR` or `TIMEOUT` when the database fails.
   */
  async count(): Promise<number> {
    const rows = await this.#run("count sessions", this.#sql.plain.count, [], this.#budget());
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Moves a session to a new id, data kept, the old id deleted; one atomic statement. Use it on
   * sign-in against session fixation. The absolute deadline is kept unless `restart` is set.
   *
   * @param id The current token.
   * @param options `restart: true` starts a new absolute lifetime.
   * @returns The session under its new id, or `null` when the id is malformed, unknown or expired.
   * @throws {SessionError} `DATABASE_ERROR` or `TIMEOUT` when the database fails.
   */
  async regenerate(id: string, options: RegenerateOptions = {}): Promise<Session<Data> | null> {
    if (!isToken(id)) return null;
    const record = this.#record(id, id);
    record.regenerate(options);
    return (await this.plan(this.#session(record))).run().then((result) =>
      result === "regenerated" ? this.#session(record) : null
    );
  }

  /**
   * Writes what happened to a session: its row deleted after `destroy()`, moved to the new token
   * after `regenerate()`, an INSERT for a new session with data, an UPDATE for a changed stored
   * one, and nothing at all when nothing changed.
   *
   * A stored session that was destroyed or expired meanwhile is NOT re-created (`"gone"`). When
   * another request changed the session since it was read, this one's changed keys are applied on
   * top of the other's data and the write retried, so no key is lost.
   *
   * @param session A session from this store.
   * @returns What was done.
   * @throws {SessionError} `DATA_TOO_LARGE` or `UNENCODABLE_DATA` with the stored data unchanged;
   *   `DATABASE_ERROR` or `TIMEOUT` when the database fails; `CONFLICT` when other writers kept
   *   winning for the whole time budget.
   */
  async save(session: Session<Data>): Promise<SaveResult> {
    return (await this.plan(session)).run();
  }

  /**
   * Decides what saving a session means, loading it first when it has changes on top of data
   * not read yet. `save()` is `plan()` then `run()`; `withSession` runs critical plans before
   * answering and the others in the background when it can.
   *
   * @param session A session from this store.
   * @param options `onlyDestroy`: drop every change but a pending `destroy()` (a failed request).
   * @returns The plan.
   * @throws {SessionError} When loading the session fails.
   */
  async plan(session: Session<Data>, options: { onlyDestroy?: boolean } = {}): Promise<CommitPlan> {
    const record = this.#recordOf(session);
    if (options.onlyDestroy) {
      record.changes.reset();
      record.token = record.stored ?? record.token;
      record.touchDue = false;
      record.bind = null;
      return this.#makePlan(record, record.toDelete.length ? "destroy" : "none");
    }
    // Changes on top of data never read: read it now, so the write merges with what is stored.
    if (record.stored !== null && record.changes.modified && !record.base) await record.load();
    let kind: CommitPlan["kind"];
    if (record.stored !== null && record.token !== record.stored) kind = "move";
    else if (record.stored !== null && record.changes.modified) kind = "update";
    else if (
      record.stored === null && (record.bind || (record.changes.modified && record.changes.apply(record.base).size > 0))
    ) {
      kind = "insert";
    } else if (record.stored !== null && record.touchDue) kind = "touch";
    else kind = record.toDelete.length ? "destroy" : "none";
    return this.#makePlan(record, kind);
  }

  /**
   * Deletes expired sessions in short batches until none are left or the time budget is spent;
   * the same as the `gc` function, which has the details.
   *
   * @param options Batch size (default 1000), time budget (default 25 s), abort signal, progress.
   * @returns Rows deleted, batches sent, and `done: false` when more may remain.
   * @example
   * ```ts ignore
   * const { deleted, done } = await store.gc({ maxDurationMs: 10_000 });
   * ```
   */
  gc(options?: GcOptions): Promise<GcResult> {
    return gc(this, options);
  }

  /**
   * Runs one statement of package code (GC, the CLI) on this store's connection, within
   * `timeoutMs`; failures become `SessionError` with the driver's error as `cause`.
   *
   * @param what Completes "Cannot …" in the error message, e.g. `"collect expired sessions"`.
   * @param text The SQL text.
   * @param params Its parameters.
   * @returns The rows.
   */
  query(what: string, text: string, params: unknown[]): Promise<Row[]> {
    return this.#run(what, text, params, this.#budget());
  }

  #record(token: string, stored: string | null, signal?: AbortSignal): Stored {
    const record = new Stored(this.options.table, token, stored, signal);
    record.loader = this.#loader;
    record.hooks = this.#hooks;
    return record;
  }

  #session(record: Stored): Session<Data> {
    const session = new Session<Data>(record, record.changes);
    records.set(session, record);
    return session;
  }

  #recordOf(session: Session<Data>): Stored {
    const record = records.get(session);
    if (!record || record.table !== this.options.table) {
      throw new TypeError("Cannot save a session that did not come from a PostgresStore of this table");
    }
    return record;
  }

  /** Loads a lazy session; strict mode: an unknown or expired id becomes a new session. */
  async #load(record: Stored): Promise<void> {
    const token = record.stored!;
    if (await this.#fetch(record, this.#budget(record.signal))) return;
    record.stored = null;
    record.base = new Map();
    if (record.token === token) record.token = generateToken();
  }

  /** Reads the row of `record.stored` into it; `false` when there is no live row. */
  async #fetch(record: Stored, budget: Budget): Promise<boolean> {
    const key = await hashToken(record.stored!);
    const [row] = await this.#flavored(record, "read session", (sql) => [sql.read, [key]], budget);
    if (!row) return false;
    return this.#take(record, row.data, row.expires, row.now, key, row);
  }

  /** Takes a row as the session's base; `false` when it is not live. */
  #take(record: Stored, data: unknown, expires: unknown, now: unknown, key: string, row?: Row): boolean {
    const state = this.#liveness(expires, now, data, key);
    if (!state.live) return false;
    if (row && "user_id" in row) {
      record.user = typeof row.user_id === "string" ? row.user_id : null;
      record.label = typeof row.label === "string" ? row.label : null;
    }
    record.raw = state.raw;
    record.header = state.header ?? headerFor(state.nowMs);
    record.deadlineMs = state.deadlineMs;
    record.expiresMs = state.expiresMs;
    record.nowMs = state.nowMs;
    record.base = this.#decode(state.raw, key);
    const ideal = this.#ideal(state.nowMs, state.deadlineMs);
    record.touchDue = ideal > state.expiresMs + this.options.touchAfter * 1000;
    return true;
  }

  /** Whether a row is live by the database clock, and its parts. */
  #liveness(expires: unknown, now: unknown, data: unknown, key: string | null): {
    live: boolean;
    raw: Uint8Array | null;
    header: Uint8Array | null;
    deadlineMs: number | null;
    expiresMs: number;
    nowMs: number;
  } {
    const expiresMs = Number(expires);
    const nowMs = Number(now);
    const raw = toBytes(data);
    let header: Uint8Array | null = null;
    let deadlineMs: number | null = null;
    if (raw) {
      try {
        const parts = readStored(raw);
        header = parts.header;
        if (this.options.absoluteTtl !== null) deadlineMs = parts.createdMs + this.options.absoluteTtl * 1000;
      } catch {
        // Corrupt header: no deadline is known; the data reads as empty (logged by #decode).
      }
    }
    if (!Number.isFinite(expiresMs) || Math.abs(expiresMs) > MAX_DATE_MS) {
      // An expiry of `infinity` or past what a Date holds is corrupt: read as expired, once logged.
      if (key) {
        this.#logger.warn("Session expiry is out of range and was read as expired", { key: `${key.slice(0, 12)}…` });
      }
      return { live: false, raw, header, deadlineMs, expiresMs: 0, nowMs };
    }
    const live = expiresMs > nowMs && (deadlineMs === null || deadlineMs > nowMs);
    return { live, raw, header, deadlineMs, expiresMs, nowMs };
  }

  /** The expiry a session used at `nowMs` should have: idle timeout, capped by its deadline. */
  #ideal(nowMs: number, deadlineMs: number | null): number {
    return Math.min(nowMs + this.options.ttl * 1000, deadlineMs ?? Infinity);
  }

  #makePlan(record: Stored, kind: CommitPlan["kind"]): CommitPlan {
    let running: Promise<SaveResult> | null = null;
    return {
      kind,
      critical: kind === "insert" || kind === "move" || kind === "destroy",
      accessed: record.changes.accessed,
      run: (options = {}) => {
        running ??= this.#execute(record, kind, this.#budget(options.signal)).then((result) => {
          record.outcome = result;
          return result;
        });
        return running;
      },
      cookie: () => this.#cookie(record, kind, running === null),
    };
  }

  /** The cookie after the plan ran, or, when `predicted`, the one it will lead to. */
  #cookie(record: Stored, kind: CommitPlan["kind"], predicted: boolean): CookieValue | null {
    if (record.outcome === "gone") return null;
    const first = Math.min(this.options.ttl, this.options.absoluteTtl ?? Infinity);
    if (predicted && (kind === "update" || kind === "touch")) {
      // Only plain writes run in the background: same token, and a new lifetime when they roll.
      const nowMs = record.nowMs ?? 0;
      const ideal = this.#ideal(nowMs, record.deadlineMs);
      const rolls = kind === "touch" || ideal > (record.expiresMs ?? 0) + this.options.touchAfter * 1000;
      return rolls ? { token: record.token, maxAge: (ideal - nowMs) / 1000 } : null;
    }
    const remaining = record.expiresMs !== null && record.nowMs !== null
      ? (record.expiresMs - record.nowMs) / 1000
      : first;
    if (record.stored !== null && (record.token !== record.origin || record.rolled)) {
      return { token: record.token, maxAge: remaining };
    }
    if (
      record.stored === null && record.origin !== null && record.toDelete.length === 0 && record.outcome === "destroyed"
    ) {
      return { token: "", maxAge: 0 };
    }
    return null;
  }

  async #execute(record: Stored, kind: CommitPlan["kind"], budget: Budget): Promise<SaveResult> {
    let result: SaveResult = "unchanged";
    while (record.toDelete.length) {
      const key = await hashToken(record.toDelete[0]!);
      await this.#run("destroy session", this.#sql.plain.destroy, [key, lockMs(budget)], budget);
      record.toDelete.shift();
      result = "destroyed";
    }
    switch (kind) {
      case "insert":
        return (await this.#insert(record, budget)) ?? result;
      case "update":
        return this.#serialized(record, () => this.#update(record, budget));
      case "touch":
        return (await this.#touch(record, budget)) ? "touched" : result;
      case "move":
        return this.#move(record, budget);
      default:
        return result;
    }
  }

  /** INSERTs a session that has no row; `undefined` when there is nothing to store. */
  async #insert(record: Stored, budget: Budget): Promise<SaveResult | undefined> {
    const data = record.changes.apply(record.base);
    if (data.size === 0 && !record.bind) {
      record.changes.reset();
      return undefined;
    }
    const payload = this.#encode(data);
    const key = await hashToken(record.token);
    const bind = record.bind;
    const [row] = await this.#flavored(record, "save session", (sql, users) => [
      sql.insert,
      users ? [key, payload, bind?.user ?? null, bind?.label ?? null] : [key, payload],
    ], budget);
    this.#bound(record);
    record.stored = record.token;
    this.#written(record, data, row!);
    return "created";
  }

  /** UPDATEs a stored session with compare-and-set, merging with concurrent writers. */
  async #update(record: Stored, budget: Budget): Promise<SaveResult> {
    // Changes that leave the encoded data as it was read (a set of an identical value) write nothing.
    const data = record.changes.apply(record.base);
    const stored = writeStored(record.header!, this.#encode(data));
    if (record.raw && sameBytes(stored, record.raw)) {
      record.changes.reset();
      if (!record.touchDue) return "unchanged";
      return (await this.#touch(record, budget)) ? "touched" : "unchanged";
    }
    const key = await hashToken(record.token);
    const result = await this.#writeWithMerge(
      record,
      key,
      budget,
      (data, expected) =>
        this.#run(
          "save session",
          this.#sql.plain.update,
          [key, data, expected, record.deadlineMs, lockMs(budget)],
          budget,
        ),
      { data, stored },
    );
    return result === "written" ? "updated" : "gone";
  }

  /** Moves the expiry forward; `false` when the row is gone. */
  async #touch(record: Stored, budget: Budget): Promise<boolean> {
    const key = await hashToken(record.stored!);
    const [row] = await this.#run(
      "touch session",
      this.#sql.plain.touch,
      [key, record.deadlineMs, lockMs(budget)],
      budget,
    );
    record.touchDue = false;
    // Not moved: gone, or moved already by another request. Either way the cookie stays as it is.
    if (!row) return false;
    record.expiresMs = Number(row.expires);
    record.nowMs = Number(row.now);
    record.rolled = true;
    return true;
  }

  /** Moves a stored session to `record.token` (after `regenerate()`), with its changes if any. */
  async #move(record: Stored, budget: Budget): Promise<SaveResult> {
    const from = await hashToken(record.stored!);
    const to = await hashToken(record.token);
    if (!record.changes.modified) {
      const [row] = await this.#flavored(record, "regenerate session", (sql, users) => [
        sql.move,
        [from, to, record.restart, lockMs(budget), ...this.#bindParams(record, users)],
      ], budget);
      if (!row) return this.#gone(record);
      record.stored = record.token;
      this.#bound(record);
      this.#take(record, row.data, row.expires, row.now, to, row);
      record.rolled = true;
      return "regenerated";
    }
    const moved = await this.#writeWithMerge(
      record,
      from,
      budget,
      (data, expected) =>
        this.#flavored(record, "regenerate session", (sql, users) => [
          sql.moveChanged,
          [
            from,
            to,
            data,
            expected,
            record.restart,
            lockMs(budget),
            record.deadlineMs,
            ...this.#bindParams(record, users),
          ],
        ], budget),
    );
    if (moved !== "written") return "gone";
    record.stored = record.token;
    this.#bound(record);
    record.rolled = true;
    return "regenerated";
  }

  /**
   * Runs a statement that has a user-columns flavor: that one while the table is known or
   * presumed to have the columns, the plain one once it is known not to. Finding out costs one
   * failed statement per table and process, and only on tables without the columns.
   */
  async #flavored(
    record: Stored | null,
    what: string,
    pick: (sql: UserStatements, users: boolean) => [string, unknown[]],
    budget: Budget,
  ): Promise<Row[]> {
    const table = this.options.table;
    // A table known to lack the columns reads with the plain statements; binding a user always
    // tries, so a migration made while the process runs takes effect at once.
    if (userColumns.get(table) !== false || record?.bind) {
      const [text, params] = pick(this.#sql.users, true);
      try {
        const rows = await this.#run(what, text, params, budget);
        userColumns.set(table, true);
        return rows;
      } catch (error) {
        if (!missingUserColumn(error)) throw error;
        userColumns.set(table, false);
      }
    }
    if (record?.bind) throw migrationRequired("bind a user to a session");
    // Only the statements both flavors share are picked when `users` is false.
    const [text, params] = pick(this.#sql.plain as UserStatements, false);
    return this.#run(what, text, params, budget);
  }

  /** The user columns' parameters of a move: whether to bind, the user, the label. */
  #bindParams(record: Stored, users: boolean): unknown[] {
    if (!users) return [];
    return [record.bind !== null, record.bind?.user ?? null, record.bind?.label ?? null];
  }

  /** A bind was written: it is the session's user now. */
  #bound(record: Stored): void {
    if (!record.bind) return;
    record.user = record.bind.user;
    record.label = record.bind.label;
    record.bind = null;
  }

  /**
   * Lists a user's live sessions, newest expiry first (at most 1000): one statement.
   *
   * @param user The application's user id, as bound with `regenerate({ user })`.
   * @param options `current`: the token of the request's session, to mark it.
   * @returns Each session's opaque handle, times and label.
   * @throws {SessionError} `MIGRATION_REQUIRED` on a table without the user columns;
   *   `DATABASE_ERROR` or `TIMEOUT` when the database fails.
   * @example
   * ```ts ignore
   * for (const s of await store.sessionsOf("42")) console.log(s.handle, s.label, s.lastActive);
   * ```
   */
  async sessionsOf(user: string, options: { current?: string | null } = {}): Promise<UserSession[]> {
    checkUser(user);
    const rows = await this.#userStatement("list a user's sessions", (sql) => [sql.sessionsOf, [user]]);
    const current = options.current && isToken(options.current) ? await hashToken(options.current) : null;
    const list: UserSession[] = [];
    for (const row of rows) {
      const header = toBytes(row.header);
      let createdMs: number | null = null;
      try {
        if (header) createdMs = readStored(header).createdMs;
      } catch {
        // A corrupt header: the creation time is unknown.
      }
      const expiresMs = Number(row.expires);
      const nowMs = Number(row.now);
      const deadline = createdMs !== null && this.options.absoluteTtl !== null
        ? createdMs + this.options.absoluteTtl * 1000
        : null;
      if (
        !Number.isFinite(expiresMs) || Math.abs(expiresMs) > MAX_DATE_MS || (deadline !== null && deadline <= nowMs)
      ) continue;
      // The expiry was last set to "last use + ttl" (within touchAfter), unless capped by the deadline.
      const lastActive = Math.min(nowMs, Math.max(createdMs ?? 0, expiresMs - this.options.ttl * 1000));
      const key = String(row.key).trim();
      list.push({
        handle: key,
        created: new Date(createdMs ?? lastActive),
        expires: new Date(expiresMs),
        lastActive: new Date(lastActive),
        label: typeof row.label === "string" ? row.label : null,
        current: key === current,
      });
    }
    return list;
  }

  /**
   * Ends one session by its handle (from {@linkcode sessionsOf}): one statement. With `user`, only
   * a session of that user is ended, so a handle from a request cannot end someone else's.
   *
   * @param handle The session's handle.
   * @param options `user`: only end it if it belongs to this user.
   * @returns How many sessions ended (0 or 1).
   * @throws {SessionError} `MIGRATION_REQUIRED` on a table without the user columns.
   */
  async revoke(handle: string, options: { user?: string } = {}): Promise<number> {
    if (options.user !== undefined) checkUser(options.user);
    if (!/^[0-9a-f]{64}$/.test(handle)) return 0;
    const budget = this.#budget();
    const rows = await this.#userStatement(
      "end a session",
      (sql) => [sql.revoke, [handle, options.user ?? null, lockMs(budget)]],
      budget,
    );
    return rows.length;
  }

  /**
   * Ends every session of a user, for example after a password change; `except` keeps one (the
   * request's own: sign out everywhere else). One statement. A request of an ended session that
   * is still running can neither write it nor bring it back.
   *
   * @param user The application's user id.
   * @param options `except`: the handle of a session to keep.
   * @returns How many sessions ended.
   * @throws {SessionError} `MIGRATION_REQUIRED` on a table without the user columns.
   * @example After a password change
   * ```ts ignore
   * await store.revokeAll(user.id, { except: currentHandle });
   * ```
   */
  async revokeAll(user: string, options: { except?: string | null } = {}): Promise<number> {
    checkUser(user);
    const budget = this.#budget();
    const except = options.except && /^[0-9a-f]{64}$/.test(options.except) ? options.except : null;
    const rows = await this.#userStatement(
      "end a user's sessions",
      (sql) => [sql.revokeAll, [user, except, lockMs(budget)]],
      budget,
    );
    return rows.length;
  }

  /** Runs a statement that needs the user columns; `MIGRATION_REQUIRED` when the table lacks them. */
  async #userStatement(
    what: string,
    pick: (sql: UserStatements) => [string, unknown[]],
    budget = this.#budget(),
  ): Promise<Row[]> {
    const [text, params] = pick(this.#sql.users);
    try {
      const rows = await this.#run(what, text, params, budget);
      userColumns.set(this.options.table, true);
      return rows;
    } catch (error) {
      if (!missingUserColumn(error)) throw error;
      userColumns.set(this.options.table, false);
      throw migrationRequired(what);
    }
  }

  /** Runs `fn` after the other writers of the same row in this process. */
  async #serialized<T>(record: Stored, fn: () => Promise<T>): Promise<T> {
    const id = `${this.options.table}|${record.stored}`;
    let lane = lanes.get(id);
    if (!lane) {
      lane = { tail: Promise.resolve(), version: 0, latest: null, waiting: 0 };
      lanes.set(id, lane);
    }
    const seen = lane.version;
    const previous = lane.tail;
    let release!: () => void;
    lane.tail = new Promise<void>((resolve) => (release = resolve));
    lane.waiting++;
    try {
      await previous;
      // A writer of this process finished while this one waited: start from what it wrote.
      if (lane.version !== seen && lane.latest) {
        record.raw = lane.latest.raw;
        record.base = new Map(lane.latest.base);
      }
      const result = await fn();
      if (record.raw && record.base && record.stored !== null) {
        lane.version++;
        lane.latest = { raw: record.raw, base: record.base };
      }
      return result;
    } finally {
      release();
      if (--lane.waiting === 0) lanes.delete(id);
    }
  }

  /**
   * Writes the merged data with compare-and-set; when another writer won, takes the data it left
   * (returned by the same statement) as the base, applies this request's changes again and
   * retries, for as long as the time budget allows.
   */
  async #writeWithMerge(
    record: Stored,
    key: string,
    budget: Budget,
    write: (data: Uint8Array, expected: Uint8Array | null) => Promise<Row[]>,
    first?: { data: Map<string, unknown>; stored: Uint8Array },
  ): Promise<"written" | "gone"> {
    for (let attempt = 1;; attempt++) {
      const data = attempt === 1 && first ? first.data : record.changes.apply(record.base);
      const stored = attempt === 1 && first ? first.stored : writeStored(record.header!, this.#encode(data));
      const [row] = await write(stored, record.raw);
      if (row?.expires != null) {
        this.#written(record, data, row, stored);
        return "written";
      }
      if (row?.current_expires == null || !this.#take(record, row.current, row.current_expires, row.now, key)) {
        this.#gone(record);
        return "gone";
      }
      if (budget.expired() || (!budget.bounded && attempt >= MAX_UNBOUNDED_ATTEMPTS)) {
        throw new SessionError(
          "CONFLICT",
          `Cannot save session: it changed concurrently ${attempt} times in ${Math.round(budget.elapsed())} ms`,
        );
      }
      // Writers in other processes: spread the retries so they stop colliding.
      if (attempt > 2) await sleep(Math.min(50, 2 ** Math.min(attempt, 6)) * Math.random());
    }
  }

  /** Records a successful write. */
  #written(record: Stored, data: Map<string, unknown>, row: Row, written?: Uint8Array): void {
    record.base = data;
    record.changes.reset();
    const raw = written ?? toBytes(row.data);
    record.raw = raw;
    if (raw && !written) {
      try {
        const parts = readStored(raw);
        record.header = parts.header;
        if (this.options.absoluteTtl !== null) record.deadlineMs = parts.createdMs + this.options.absoluteTtl * 1000;
      } catch {
        record.header = null;
      }
    }
    const expiresMs = Number(row.expires);
    if (record.expiresMs !== null && expiresMs > record.expiresMs + 1) record.rolled = true;
    record.expiresMs = expiresMs;
    record.nowMs = Number(row.now);
    record.touchDue = false;
  }

  /** The stored row vanished (destroyed, regenerated or expired meanwhile): this request's writes are dropped. */
  #gone(record: Stored): SaveResult {
    record.stored = null;
    record.base ??= new Map();
    record.outcome = "gone";
    return "gone";
  }

  /** Decodes stored bytes; corrupt data becomes an empty session, logged with a key prefix. */
  #decode(raw: Uint8Array | null, key: string): Map<string, unknown> {
    try {
      if (!raw) throw new RangeError("Session data is NULL or not bytes");
      return decodeData(readStored(raw).payload, this.options.maxDataBytes);
    } catch (error) {
      // A prefix of the row's key (a hash) lets an operator find it; tokens never reach logs.
      this.#logger.warn("Session data is corrupt and was read as empty", {
        key: `${key.slice(0, 12)}…`,
        reason: (error as Error).message,
      });
      return new Map();
    }
  }

  #encode(data: Map<string, unknown>): Uint8Array {
    let payload: Uint8Array;
    try {
      payload = encodeData(data);
    } catch (error) {
      throw new SessionError("UNENCODABLE_DATA", (error as Error).message.replace(/^Cannot encode/, "Cannot save"), {
        cause: error,
      });
    }
    if (payload.byteLength > this.options.maxDataBytes) {
      throw new SessionError(
        "DATA_TOO_LARGE",
        `Cannot save session: encoded data is ${payload.byteLength} bytes, over the ${this.options.maxDataBytes}-byte limit`,
      );
    }
    return payload;
  }

  #budget(signal?: AbortSignal): Budget {
    return new Budget(this.options.timeoutMs, signal);
  }

  async #run(what: string, text: string, params: unknown[], budget: Budget): Promise<Row[]> {
    if (budget.signal?.aborted) {
      throw new SessionError("ABORTED", `Cannot ${what}: the request was aborted`, { cause: budget.signal.reason });
    }
    const timeoutMs = budget.remaining();
    if (budget.bounded && timeoutMs <= 0) {
      throw new SessionError(
        "TIMEOUT",
        `Cannot ${what}: no answer from the database within ${Math.round(budget.elapsed())} ms`,
      );
    }
    try {
      return await this.#driver.run(text, params, { timeoutMs, signal: budget.signal });
    } catch (error) {
      if (error instanceof TimeoutReached || (error as { code?: unknown })?.code === "55P03") {
        throw new SessionError(
          "TIMEOUT",
          `Cannot ${what}: no answer from the database within ${Math.round(budget.elapsed())} ms`,
          { cause: error },
        );
      }
      if (budget.signal?.aborted) {
        throw new SessionError("ABORTED", `Cannot ${what}: the request was aborted`, { cause: error });
      }
      const reason = error instanceof Error ? error.message : String(error);
      throw new SessionError("DATABASE_ERROR", `Cannot ${what}: ${reason}`, { cause: error });
    }
  }
}

/** The time one store operation may take, shared by its statements and retries. */
class Budget {
  readonly #start = performance.now();
  constructor(readonly ms: number, readonly signal?: AbortSignal) {}
  get bounded(): boolean {
    return this.ms > 0;
  }
  elapsed(): number {
    return performance.now() - this.#start;
  }
  remaining(): number {
    return this.bounded ? this.ms - this.elapsed() : 0;
  }
  expired(): boolean {
    return this.bounded && this.remaining() <= 0;
  }
}

/**
 * The server-side lock wait for a statement (`"0"` waits forever): what is left of the budget,
 * less a margin, so that for a lock the server gives up before the client does. The statement
 * then ends on the server, rolled back; had the client given up first, the server would still
 * apply it once the lock was released.
 */
function lockMs(budget: Budget): string {
  if (!budget.bounded) return "0";
  const remaining = budget.remaining();
  const margin = Math.min(500, Math.max(50, remaining / 5));
  return String(Math.max(1, Math.floor(remaining - margin)));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
