/**
 * PostgresStore: sessions in one PostgreSQL table, one statement per operation. It holds the
 * validated options and the calls applications make; the table's statements live in
 * `_table.ts`, a session's state in `_record.ts`, committing in `_commit.ts`.
 *
 * @module
 */

import { planFor, runCommit } from "./_commit.ts";
import { Budget } from "./_budget.ts";
import { type Connection, type Driver, toDriver } from "./client.ts";
import type { Logger } from "./errors.ts";
import { readRow, toBytes } from "./_format.ts";
import { collectGarbage, type GcOptions, type GcResult } from "./gc.ts";
import { checkUser, type RecordPolicy, SessionRecord } from "./_record.ts";
import { SessionImpl, type UserCalls } from "./_session.ts";
import type { RegenerateOptions, SaveResult, Session, SessionData, UserSession } from "./session.ts";
import { SessionTable } from "./_table.ts";
import { generateId, handleOf, isId } from "./id.ts";

/** How sessions live and how much they may hold. */
export interface StoreOptions {
  /**
   * The table, optionally schema-qualified (`"auth.session"`); used exactly as written (quoted).
   * @default {"session"}
   */
  table?: string | undefined;
  /**
   * Idle timeout in seconds: a session not used for this long expires. Because the stored expiry
   * moves forward at most once per `touchAfter`, an idle session expires between
   * `ttl - touchAfter` and `ttl` seconds after its last use.
   * @default {604800} (7 days)
   */
  ttl?: number | undefined;
  /**
   * Absolute lifetime in seconds from creation, however active the session and however often it
   * is regenerated; `null` for none.
   * @default {2592000} (30 days)
   */
  absoluteTtl?: number | null | undefined;
  /**
   * How many seconds the stored expiry may lag behind `now + ttl` before a request moves it
   * forward (one UPDATE, after the response when `waitUntil` is given). Larger means fewer
   * writes on read-only requests; `0` touches on every request.
   * @default {3600}, or a tenth of `ttl` when that is smaller (so the real idle timeout is at least 90% of `ttl`)
   */
  touchAfter?: number | undefined;
  /**
   * The largest encoded session in bytes; saving more is a `DATA_TOO_LARGE` error and stored data
   * over it reads as empty.
   * @default {65536}
   */
  maxDataBytes?: number | undefined;
  /**
   * How long one store operation may wait for the database, in milliseconds: each statement, and
   * the retries of a save that races other writers. A call that waits longer fails with
   * `SessionError("TIMEOUT")`; a row lock held by another transaction is waited out on the server
   * (`lock_timeout`), so the connection stays usable. `0` waits forever.
   * @default {5000}
   */
  timeoutMs?: number | undefined;
  /**
   * Receives warnings.
   * @default {console}
   */
  logger?: Logger | undefined;
}

/** What the package's own modules reach of a store (not for applications). */
export interface StoreInternals {
  readonly policy: RecordPolicy;
  readonly users: UserCalls;
}

const internals = new WeakMap<object, StoreInternals>();

/** The table, lifetimes and user calls of a store; for the request layer and the CLI. */
export function internalsOf(store: object): StoreInternals {
  const found = internals.get(store);
  if (!found) throw new TypeError("Cannot use this object as a session store: it is not a PostgresStore");
  return found;
}

// One SessionTable per (connection, table, lifetimes): stores on the same pool share the per-row
// write lanes; stores on different databases never share anything.
const tablesByClient = new WeakMap<object, Map<string, SessionTable>>();
const tablesByUrl = new Map<string, Map<string, SessionTable>>();

function tableFor(connection: Connection, driver: Driver, options: SessionTable["options"]): SessionTable {
  const key = `${options.table}|${options.ttl}|${options.absoluteTtl}|${options.touchAfter}`;
  const owner: unknown = (connection as { client?: unknown }).client ?? (connection as { sql?: unknown }).sql;
  let tables: Map<string, SessionTable> | undefined;
  if (owner !== null && (typeof owner === "object" || typeof owner === "function")) {
    tables = tablesByClient.get(owner);
    if (!tables) tablesByClient.set(owner, tables = new Map());
  } else {
    const url = `${(connection as { connectionString?: string }).connectionString}|${
      (connection as { fetchEndpoint?: string }).fetchEndpoint ?? ""
    }`;
    tables = tablesByUrl.get(url);
    if (!tables) {
      if (tablesByUrl.size >= 64) tablesByUrl.clear();
      tablesByUrl.set(url, tables = new Map());
    }
  }
  let table = tables.get(key);
  if (!table) tables.set(key, table = new SessionTable(driver, options));
  return table;
}

/**
 * Sessions in a PostgreSQL table, over Neon's HTTP transport, a Neon `Pool`/`Client`, `pg` or
 * PGlite. A read is one indexed `SELECT`; a write one `INSERT`/`UPDATE`/`DELETE`; nothing is sent
 * for an id that is not a well-formed id.
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
  readonly #policy: RecordPolicy;

  /**
   * Makes a store. Nothing connects until the first statement.
   *
   * @param options One of `connectionString`, `sql` or `client`, and the {@linkcode StoreOptions}.
   * @throws {TypeError} For a missing or unsafe connection or a bad table name.
   * @throws {RangeError} For durations or sizes out of range.
   */
  constructor(options: Connection & StoreOptions) {
    if (!options || typeof options !== "object") {
      throw new TypeError("Cannot create a session store: options must be an object with a connection");
    }
    const ttl = wholeNumber("ttl", options.ttl ?? 604_800, 1);
    const absoluteTtl = options.absoluteTtl === null
      ? null
      : wholeNumber("absoluteTtl", options.absoluteTtl ?? 2_592_000, 1);
    const touchAfter = wholeNumber("touchAfter", options.touchAfter ?? Math.min(3600, Math.floor(ttl / 10)), 0);
    if (touchAfter >= ttl) {
      throw new RangeError(`Cannot use touchAfter ${touchAfter}: it must be less than ttl (${ttl})`);
    }
    const logger = options.logger ?? console;
    const sqlOptions = { table: options.table ?? "session", ttl, absoluteTtl, touchAfter };
    const table = tableFor(options, toDriver(options, logger), sqlOptions);
    this.#policy = Object.freeze({
      table,
      ttl,
      absoluteTtl,
      touchAfter,
      maxDataBytes: wholeNumber("maxDataBytes", options.maxDataBytes ?? 65_536, 1),
      timeoutMs: wholeNumber("timeoutMs", options.timeoutMs ?? 5_000, 0),
      logger,
    });
    internals.set(this, { policy: this.#policy, users: this });
  }

  /**
   * Starts a new session with a fresh id. Nothing is written until it is saved.
   *
   * @returns An empty, new session.
   */
  create(): Session<Data> {
    return new SessionImpl<Data>(new SessionRecord(this.#policy, generateId(), false), this);
  }

  /**
   * A session for an id the client sent, read from the database on first use (`get`, `has`,
   * `keys`, `entries`, `user`) or on save; no statement until then. An unknown, expired or
   * malformed id becomes a new session with a new id: a row is never created for an id the
   * store did not issue.
   *
   * @param id The client's id, or `null` for a new session.
   * @param options `signal`: abandons this session's statements when aborted.
   * @returns The session.
   */
  open(id: string | null, options: { signal?: AbortSignal | undefined } = {}): Session<Data> {
    const stored = id !== null && isId(id);
    const record = new SessionRecord(this.#policy, stored ? id : generateId(), stored, options.signal);
    return new SessionImpl<Data>(record, this);
  }

  /**
   * Reads a live session. Never creates a row. When the stored expiry lags more than
   * `touchAfter`, it is moved forward right away (a second statement).
   *
   * @param id The id the client sent.
   * @returns The session, or `null` when the id is malformed (no SQL sent), unknown or expired.
   * @throws {SessionError} `DATABASE_ERROR`, `TABLE_MISSING` or `TIMEOUT` when the database fails.
   */
  async read(id: string): Promise<Session<Data> | null> {
    if (!isId(id)) return null;
    const record = new SessionRecord(this.#policy, id, true);
    if (!(await record.fetch(record.budget()))) return null;
    if (record.touchDue) {
      const result = await runCommit(
        record,
        { kind: "touch", critical: false, cookie: null, accessed: true },
        record.budget(),
      );
      if (result === "gone") return null;
    }
    return new SessionImpl<Data>(record, this);
  }

  /**
   * Tells whether a live session has this id, without reading its data into a session or moving
   * its expiry.
   *
   * @param id The id the client sent.
   * @returns Whether a live session has this id; `false` without SQL for a malformed id.
   */
  async exists(id: string): Promise<boolean> {
    if (!isId(id)) return false;
    const row = await this.#policy.table.read(await handleOf(id), this.#budget());
    return row !== undefined && readRow(row.data, row.expires, row.now, this.#policy).live;
  }

  /**
   * Deletes a session.
   *
   * @param id The id the client sent.
   * @returns Whether a row was deleted; `false` without SQL for a malformed id.
   */
  async destroy(id: string): Promise<boolean> {
    if (!isId(id)) return false;
    return this.#policy.table.destroy(await handleOf(id), this.#budget());
  }

  /**
   * Counts live sessions.
   *
   * @returns How many live sessions there are (expired rows not yet collected do not count).
   */
  count(): Promise<number> {
    return this.#policy.table.count(this.#budget());
  }

  /**
   * Moves a session to a new id, data kept, the old id dead; one atomic statement. Use it on
   * sign-in against session fixation. The absolute deadline is kept unless `restart` is set.
   *
   * @param id The current id.
   * @param options `restart: true` starts a new absolute lifetime; `user` binds a user.
   * @returns The session under its new id, or `null` when the id is malformed, unknown or expired.
   */
  async regenerate(id: string, options: RegenerateOptions = {}): Promise<Session<Data> | null> {
    if (!isId(id)) return null;
    const session = this.open(id);
    session.regenerate(options);
    return (await this.save(session)) === "regenerated" ? session : null;
  }

  /**
   * Writes what happened to a session: its row deleted after `destroy()`, moved to the new id
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
    const record = SessionImpl.recordOf(session);
    if (!record || record.policy.table !== this.#policy.table) {
      throw new TypeError("Cannot save a session that did not come from a PostgresStore of this table");
    }
    return runCommit(record, await planFor(record), this.#budget());
  }

  /**
   * Deletes expired sessions in short batches until none are left or the time budget is spent.
   * Each batch is one short statement in its own transaction; only rows expired by the database
   * clock go; concurrent runs skip each other's rows. Call it from a scheduled trigger.
   *
   * @param options Batch size (default 1000), time budget (default 25 s), abort signal, progress.
   * @returns Rows deleted, batches sent, and `done: false` when more may remain.
   * @example
   * ```ts ignore
   * const { deleted, done } = await store.gc({ maxDurationMs: 10_000 });
   * ```
   */
  gc(options?: GcOptions): Promise<GcResult> {
    return collectGarbage(this.#policy.table, this.#policy.timeoutMs, options);
  }

  /**
   * Lists a user's live sessions, newest expiry first (at most 1000): one statement.
   *
   * @param user The application's user id, as bound with `regenerate({ user })`.
   * @param options `current`: the id of the request's session, to mark it.
   * @returns Each session's opaque handle, times and label.
   * @throws {SessionError} `MIGRATION_REQUIRED` on a table without the user columns.
   * @example
   * ```ts ignore
   * for (const s of await store.sessionsOf("42")) console.log(s.handle, s.label, s.lastActive);
   * ```
   */
  async sessionsOf(user: string, options: { current?: string | null | undefined } = {}): Promise<UserSession[]> {
    checkUser(user);
    const rows = await this.#policy.table.sessionsOf(user, this.#budget());
    const current = options.current && isId(options.current) ? await handleOf(options.current) : null;
    const list: UserSession[] = [];
    for (const row of rows) {
      const state = readRow(toBytes(row.header), row.expires, row.now, this.#policy);
      if (!state.live) continue;
      const createdMs = state.createdMs;
      // The expiry was last set to "last use + ttl" (within touchAfter), unless capped by the deadline.
      const lastActive = Math.min(state.nowMs, Math.max(createdMs ?? 0, state.expiresMs - this.#policy.ttl * 1000));
      const handle = String(row.key).trim();
      list.push({
        handle,
        created: new Date(createdMs ?? lastActive),
        expires: new Date(state.expiresMs),
        lastActive: new Date(lastActive),
        label: typeof row.label === "string" ? row.label : null,
        current: handle === current,
      });
    }
    return list;
  }

  /**
   * Ends one session by its handle (from {@linkcode sessionsOf}): one statement. With `user`, only
   * a session of that user is ended, so a handle from a request cannot end someone else's. A
   * session that regenerates while this runs is ended under its new id too.
   *
   * @param handle The session's handle.
   * @param options `user`: only end it if it belongs to this user.
   * @returns How many live sessions ended (0 or 1).
   * @throws {SessionError} `MIGRATION_REQUIRED` on a table without the user columns.
   */
  revoke(handle: string, options: { user?: string | undefined } = {}): Promise<number> {
    if (options.user !== undefined) checkUser(options.user);
    if (!HANDLE.test(handle)) return Promise.resolve(0);
    return this.#policy.table.revoke(handle, options.user ?? null, this.#budget());
  }

  /**
   * Ends every session of a user, for example after a password change; `except` keeps one (the
   * request's own: sign out everywhere else). One statement. When it returns, no session of the
   * user that existed when it was called is live, including one that regenerated meanwhile, and a
   * request of an ended session that is still running can neither write it nor bring it back.
   *
   * @param user The application's user id.
   * @param options `except`: the handle of a session to keep.
   * @returns How many live sessions ended.
   * @throws {SessionError} `MIGRATION_REQUIRED` on a table without the user columns.
   * @example After a password change
   * ```ts ignore
   * await store.revokeAll(user.id, { except: currentHandle });
   * ```
   */
  revokeAll(user: string, options: { except?: string | null | undefined } = {}): Promise<number> {
    checkUser(user);
    const except = options.except && HANDLE.test(options.except) ? options.except : null;
    return this.#policy.table.revokeAll(user, except, this.#budget());
  }

  #budget(): Budget {
    return new Budget(this.#policy.timeoutMs);
  }
}

/** A session's handle: the hex SHA-256 of its id, as stored. */
const HANDLE = /^[0-9a-f]{64}$/;

function wholeNumber(name: string, value: unknown, min: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    const shown = typeof value === "string" ? `${JSON.stringify(value)} (a string)` : String(value);
    throw new RangeError(
      `Cannot use ${name} ${shown}: expected a whole number${
        name.endsWith("Ms") ? " of milliseconds" : name.endsWith("Bytes") ? " of bytes" : " of seconds"
      }, at least ${min}${typeof value === "string" ? "; pass a number, e.g. Number(env.SESSION_TTL)" : ""}`,
    );
  }
  return value;
}
