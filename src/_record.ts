/**
 * The per-session record: what the client holds, what the table holds, what this request changed.
 * Only this module, the commit runner (`_commit.ts`) and the store write its fields.
 *
 * @module
 */

import { Budget } from "./_budget.ts";
import { decodeData, encodeData } from "./_codec.ts";
import { deadlineOf, HEADER_BYTES, headerFor, idealExpiry, type Lifetimes, readRow, readStored } from "./_format.ts";
import type { OpenedSnapshot, SnapshotContent } from "./_snapshot.ts";
import type { Row } from "./client.ts";
import { type Logger, SessionError } from "./errors.ts";
import type { RegenerateOptions, SaveResult } from "./session.ts";
import { Changes } from "./_changes.ts";
import type { SessionTable, UserBinding } from "./_table.ts";
import { generateId, handleOf } from "./id.ts";

/** What a record needs from its store: the table, the lifetimes and limits, where to log. */
export interface RecordPolicy extends Lifetimes {
  readonly table: SessionTable;
  readonly maxDataBytes: number;
  readonly timeoutMs: number;
  readonly logger: Logger;
}

const MAX_USER = 1024;
const MAX_LABEL = 200;

/**
 * Checks a user id: a non-empty string of at most 1024 characters.
 *
 * @throws {TypeError} Otherwise.
 */
export function checkUser(user: unknown): asserts user is string {
  if (typeof user !== "string" || user.length === 0 || user.length > MAX_USER) {
    throw new TypeError(
      `Cannot use a user id of type ${typeof user}${
        typeof user === "string" ? ` and length ${user.length}` : ""
      }: expected a non-empty string of at most ${MAX_USER} characters`,
    );
  }
}

/** The state of one session. */
export class SessionRecord {
  /** The id the request came with and whose row was believed stored; `null` for a new session. */
  readonly requestId: string | null;
  /** The id the client should hold after this request. */
  id: string;
  /** The id whose row is believed stored, or `null`. */
  rowId: string | null;
  /** Tokens whose rows a commit deletes (after `destroy()`). */
  readonly toDelete: string[] = [];
  /** The stored data, decoded; `null` until loaded. */
  storedData: Map<string, unknown> | null;
  /** The stored column as last read or written: the compare-and-set's expected value. */
  storedBytes: Uint8Array | null = null;
  /** The header an update keeps. */
  header: Uint8Array | null = null;
  /** Absolute deadline in ms (database clock), or `null` for none or unknown. */
  deadlineMs: number | null = null;
  expiresMs: number | null = null;
  /** The database's `now()` at the last read or write, in ms. */
  nowMs: number | null = null;
  /** The stored expiry lags enough that this request should move it forward. */
  touchDue = false;
  /** `regenerate({ restart: true })` was asked for. */
  restart = false;
  /** The user the stored session belongs to, read with the row. */
  user: string | null = null;
  label: string | null = null;
  /** A user to bind on commit (`regenerate({ user })`). */
  pendingUser: UserBinding | null = null;
  /** The row is stored but the client does not hold its id yet (a session moved over from express-session). */
  cookiePending = false;
  /** Where this request's copy of the stored data came from. */
  source: "none" | "database" | "snapshot" = "none";
  /** What the last commit did; `null` before. */
  outcome: SaveResult | null = null;
  readonly changes: Changes = new Changes();
  #loading: Promise<void> | null = null;

  /**
   * @param policy The store's side.
   * @param id The id: the client's (`stored` true) or a new one.
   * @param stored Whether a row is believed stored for `id`.
   * @param signal Abandons this session's statements.
   */
  constructor(
    readonly policy: RecordPolicy,
    id: string,
    stored: boolean,
    readonly signal?: AbortSignal | undefined,
  ) {
    this.requestId = stored ? id : null;
    this.id = id;
    this.rowId = stored ? id : null;
    this.storedData = stored ? null : new Map();
  }

  /** A budget for one operation on this session. */
  budget(signal: AbortSignal | undefined = this.signal): Budget {
    return new Budget(this.policy.timeoutMs, signal);
  }

  /** Loads the stored data once; strict mode: an unknown or expired id becomes a new session. */
  load(): Promise<ReadonlyMap<string, unknown>> {
    if (this.storedData) return Promise.resolve(this.storedData);
    this.#loading ??= this.#load().finally(() => {
      this.#loading = null;
    });
    return this.#loading.then(() => this.storedData!);
  }

  async #load(): Promise<void> {
    const id = this.rowId!;
    if (await this.fetch(this.budget())) return;
    this.rowId = null;
    this.storedData = new Map();
    if (this.id === id) this.id = generateId();
  }

  /** Reads the row of `rowId` into the record; `false` when there is no live row. */
  async fetch(budget: Budget): Promise<boolean> {
    const handle = await handleOf(this.rowId!);
    const row = await this.policy.table.read(handle, budget);
    return row !== undefined && this.applyRow(row.data, row.expires, row.now, handle, row);
  }

  /** Takes a row as what is stored; `false` when it is not live. */
  applyRow(data: unknown, expires: unknown, now: unknown, handle: string, row?: Row): boolean {
    const state = readRow(data, expires, now, this.policy);
    if (state.corruptExpiry) {
      this.policy.logger.warn("Session expiry is out of range and was read as expired", {
        handle: `${handle.slice(0, 12)}…`,
      });
    }
    if (!state.live) return false;
    if (row) {
      this.user = typeof row.user_id === "string" ? row.user_id : null;
      this.label = typeof row.label === "string" ? row.label : null;
    }
    this.storedBytes = state.storedBytes;
    this.header = state.header ?? headerFor(state.nowMs);
    this.deadlineMs = state.deadlineMs;
    this.expiresMs = state.expiresMs;
    this.nowMs = state.nowMs;
    this.touchDue = state.touchDue;
    this.storedData = this.decode(state.storedBytes, handle);
    this.source = "database";
    return true;
  }

  /**
   * Takes an opened snapshot as what is stored: no statement. The deadline comes from the
   * header on the database clock, as for a row; the database's `now` is estimated from it and the
   * snapshot's durations, so durations taken later stay on one clock.
   */
  applySnapshot(snapshot: OpenedSnapshot): void {
    const data = snapshot.data;
    this.storedBytes = data;
    this.header = data.subarray(0, HEADER_BYTES);
    this.deadlineMs = deadlineOf(readRow(data, 0, 0, this.policy).createdMs, this.policy);
    this.nowMs = this.deadlineMs !== null && snapshot.deadlineInMs !== null
      ? this.deadlineMs - snapshot.deadlineInMs
      : Date.now();
    this.expiresMs = this.nowMs + snapshot.expiresInMs;
    this.touchDue = snapshot.touchDue;
    this.user = snapshot.user;
    this.label = snapshot.label;
    this.storedData = this.decode(data, "snapshot");
    this.source = "snapshot";
  }

  /**
   * What a snapshot of the stored session holds now, or `null` when nothing is stored or loaded.
   *
   * @param touched A touch runs after the response: seal the expiry it will set, and no touch due.
   */
  snapshotContent(touched = false): SnapshotContent | null {
    if (this.rowId === null || !this.storedBytes || this.expiresMs === null || this.nowMs === null) return null;
    const expiresMs = touched ? idealExpiry(this.nowMs, this.deadlineMs, this.policy) : this.expiresMs;
    return {
      data: this.storedBytes,
      expiresInMs: expiresMs - this.nowMs,
      deadlineInMs: this.deadlineMs === null ? null : this.deadlineMs - this.nowMs,
      touchDue: touched ? false : this.touchDue,
      user: this.user,
      label: this.label,
    };
  }

  /** Reads the stored session from the database unless this request already did (changes kept). */
  async refresh(): Promise<void> {
    if (this.rowId === null || this.source === "database") return;
    this.storedData = null;
    this.source = "none";
    await this.load();
  }

  /** Records a successful write of `data` (as `written` bytes, or as the row returned them). */
  written(data: Map<string, unknown>, row: Row, written?: Uint8Array): void {
    this.storedData = data;
    this.source = "database";
    this.changes.reset();
    const state = readRow(written ?? row.data, row.expires, row.now, this.policy);
    this.storedBytes = state.storedBytes;
    if (state.header) this.header = state.header;
    this.deadlineMs = state.deadlineMs ?? this.deadlineMs;
    this.expiresMs = state.expiresMs;
    this.nowMs = state.nowMs;
    this.touchDue = false;
  }

  /** The stored row vanished (destroyed, regenerated or expired meanwhile): nothing is re-created. */
  gone(): "gone" {
    this.rowId = null;
    this.storedData ??= new Map();
    this.touchDue = false;
    return "gone";
  }

  /** A user binding was written: it is the session's user now. */
  bound(): void {
    if (!this.pendingUser) return;
    this.user = this.pendingUser.user;
    this.label = this.pendingUser.label;
    this.pendingUser = null;
  }

  /** Gives the session a new id on commit; binds a user when asked. */
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
      this.pendingUser = { user: options.user, label };
    }
    this.id = generateId();
    this.restart ||= options.restart === true;
  }

  /** Marks the stored session for deletion and starts a new, empty one. */
  destroy(): void {
    if (this.rowId !== null) this.toDelete.push(this.rowId);
    this.id = generateId();
    this.rowId = null;
    this.storedData = new Map();
    this.storedBytes = this.header = null;
    this.deadlineMs = this.expiresMs = null;
    this.touchDue = this.restart = false;
    this.user = this.label = null;
    this.pendingUser = null;
    this.changes.reset();
  }

  /** The user the session is bound to (or will be on commit), loading the row if needed. */
  async currentUser(): Promise<string | null> {
    if (this.pendingUser) return this.pendingUser.user;
    if (this.rowId !== null && !this.storedData) await this.load();
    return this.rowId === null ? null : this.user;
  }

  /** Decodes stored bytes; corrupt data becomes an empty session, logged with a prefix of its handle. */
  decode(storedBytes: Uint8Array | null, handle: string): Map<string, unknown> {
    try {
      if (!storedBytes) throw new RangeError("Session data is NULL or not bytes");
      return decodeData(readStored(storedBytes).payload, this.policy.maxDataBytes);
    } catch (error) {
      // A prefix of the row's handle (a hash of the id) lets an operator find it; ids never reach logs.
      this.policy.logger.warn("Session data is corrupt and was read as empty", {
        handle: `${handle.slice(0, 12)}…`,
        reason: (error as Error).message,
      });
      return new Map();
    }
  }

  /** Encodes data for a write, within the size limit. */
  encode(data: ReadonlyMap<string, unknown>): Uint8Array {
    let payload: Uint8Array;
    try {
      payload = encodeData(data);
    } catch (error) {
      throw new SessionError("UNENCODABLE_DATA", (error as Error).message.replace(/^Cannot encode/, "Cannot save"), {
        cause: error,
      });
    }
    if (payload.byteLength > this.policy.maxDataBytes) {
      throw new SessionError(
        "DATA_TOO_LARGE",
        `Cannot save session: encoded data is ${payload.byteLength} bytes, over the ${this.policy.maxDataBytes}-byte limit`,
      );
    }
    return payload;
  }
}
