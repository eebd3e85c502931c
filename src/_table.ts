/**
 * One session table on one connection: its statements as named operations, each one round trip
 * within a time budget, with driver failures turned into `SessionError`s; and the per-row write
 * lanes that make writers of one row in this process take turns.
 *
 * @module
 */

import type { Budget } from "./_budget.ts";
import { type Driver, type Row, TimeoutReached } from "./client.ts";
import { SessionError } from "./errors.ts";
import { buildStatements, type SqlOptions, type Statements, USER_COLUMNS } from "./_sql.ts";

/** A user to bind on a write (`regenerate({ user })`). */
export interface UserBinding {
  readonly user: string;
  readonly label: string | null;
}

/** One chain of writers per stored row in this process, so they take turns instead of racing. */
interface Lane {
  tail: Promise<void>;
  /** Writes completed on this lane; a writer that waited sees whether the row moved on. */
  version: number;
  /** The row as the lane's last writer left it. */
  latest: { storedBytes: Uint8Array; storedData: Map<string, unknown> } | null;
  waiting: number;
}

/** What a writer that waited in a lane learns: the row as the writer before it left it. */
export type LaneState = Lane["latest"];

/** The statements of one table on one connection. */
export class SessionTable {
  readonly #driver: Driver;
  readonly #sql: Statements;
  readonly #lanes = new Map<string, Lane>();

  /**
   * @param driver Where statements go.
   * @param options The table and the lifetimes baked into its SQL.
   */
  constructor(driver: Driver, readonly options: SqlOptions) {
    this.#driver = driver;
    this.#sql = buildStatements(options);
  }

  /** `data`, `expires`, `now`, `user_id`, `label` of a row, live or not; `undefined` when none. */
  async read(handle: string, budget: Budget): Promise<Row | undefined> {
    return (await this.run("read session", this.#sql.read, [handle], budget))[0];
  }

  /** Inserts a new row; binds a user when given. */
  async insert(handle: string, payload: Uint8Array, bind: UserBinding | null, budget: Budget): Promise<Row> {
    const rows = bind
      ? await this.#withUsers("save session", this.#sql.insertUser, [handle, payload, bind.user, bind.label], budget)
      : await this.run("save session", this.#sql.insert, [handle, payload], budget);
    return rows[0]!;
  }

  /** Compare-and-set of a row's data; `undefined` when it changed meanwhile or is gone. */
  async update(
    handle: string,
    data: Uint8Array,
    expected: Uint8Array | null,
    deadlineMs: number | null,
    budget: Budget,
  ): Promise<Row | undefined> {
    const params = [handle, data, expected, deadlineMs, budget.lockMs()];
    return (await this.run("save session", this.#sql.update, params, budget))[0];
  }

  /** Moves the expiry forward; `undefined` when the session is gone. */
  async touch(handle: string, deadlineMs: number | null, budget: Budget): Promise<Row | undefined> {
    return (await this.run("touch session", this.#sql.touch, [handle, deadlineMs, budget.lockMs()], budget))[0];
  }

  /** Moves a row to a new handle, data kept; `undefined` when it was not live. */
  async move(
    from: string,
    to: string,
    restart: boolean,
    bind: UserBinding | null,
    budget: Budget,
  ): Promise<Row | undefined> {
    const params = [from, to, restart, budget.lockMs()];
    const rows = bind
      ? await this.#withUsers("regenerate session", this.#sql.moveUser, [...params, bind.user, bind.label], budget)
      : await this.run("regenerate session", this.#sql.move, params, budget);
    return rows[0];
  }

  /** Moves a row to a new handle with new data, compare-and-set; `undefined` when it changed or is gone. */
  async moveChanged(
    from: string,
    to: string,
    data: Uint8Array,
    expected: Uint8Array | null,
    restart: boolean,
    deadlineMs: number | null,
    bind: UserBinding | null,
    budget: Budget,
  ): Promise<Row | undefined> {
    const params = [from, to, data, expected, restart, budget.lockMs(), deadlineMs];
    const rows = bind
      ? await this.#withUsers(
        "regenerate session",
        this.#sql.moveChangedUser,
        [...params, bind.user, bind.label],
        budget,
      )
      : await this.run("regenerate session", this.#sql.moveChanged, params, budget);
    return rows[0];
  }

  /** Deletes a row; whether one was deleted. */
  async destroy(handle: string, budget: Budget): Promise<boolean> {
    return (await this.run("destroy session", this.#sql.destroy, [handle, budget.lockMs()], budget)).length > 0;
  }

  /** How many live sessions there are. */
  async count(budget: Budget): Promise<number> {
    return Number((await this.run("count sessions", this.#sql.count, [], budget))[0]?.n ?? 0);
  }

  /** A user's live sessions: `handle`, `header`, `expires`, `now`, `label`. */
  sessionsOf(user: string, budget: Budget): Promise<Row[]> {
    return this.#withUsers("list a user's sessions", this.#sql.sessionsOf, [user], budget);
  }

  /** Ends one session (of `user`, when given); how many live sessions ended. */
  async revoke(handle: string, user: string | null, budget: Budget): Promise<number> {
    const rows = await this.#withUsers("end a session", this.#sql.revoke, [handle, user, budget.lockMs()], budget);
    return rows.filter((row) => row.live === true).length;
  }

  /** Ends a user's sessions but `except`; how many live sessions ended. */
  async revokeAll(user: string, except: string | null, budget: Budget): Promise<number> {
    const params = [user, except, budget.lockMs()];
    const rows = await this.#withUsers("end a user's sessions", this.#sql.revokeAll, params, budget);
    return rows.filter((row) => row.live === true).length;
  }

  /**
   * Runs `write` after the other writers of the same row in this process. When one finished while
   * this one waited, `write` gets the row as it left it, to start from.
   */
  async inLane<T>(handle: string, write: (latest: LaneState) => Promise<{ result: T; latest: LaneState }>): Promise<T> {
    let lane = this.#lanes.get(handle);
    if (!lane) this.#lanes.set(handle, lane = { tail: Promise.resolve(), version: 0, latest: null, waiting: 0 });
    const seen = lane.version;
    const previous = lane.tail;
    let release!: () => void;
    lane.tail = new Promise<void>((resolve) => (release = resolve));
    lane.waiting++;
    try {
      await previous;
      const { result, latest } = await write(lane.version !== seen ? lane.latest : null);
      if (latest) {
        lane.version++;
        lane.latest = latest;
      }
      return result;
    } finally {
      release();
      if (--lane.waiting === 0) this.#lanes.delete(handle);
    }
  }

  /**
   * Runs one statement within the budget; failures become `SessionError`s with the driver's
   * error as `cause`.
   *
   * @param what Completes "Cannot …" in the error message, e.g. `"read session"`.
   */
  async run(what: string, text: string, params: unknown[], budget: Budget): Promise<Row[]> {
    if (budget.signal?.aborted) {
      throw new SessionError("ABORTED", `Cannot ${what}: the request was aborted`, { cause: budget.signal.reason });
    }
    const timeoutMs = budget.remaining();
    if (budget.bounded && timeoutMs <= 0) throw this.#timeout(what, budget);
    try {
      return await this.#driver.run(text, params, { timeoutMs, signal: budget.signal });
    } catch (error) {
      const code = (error as { code?: unknown })?.code;
      if (error instanceof TimeoutReached || code === "55P03") throw this.#timeout(what, budget, error);
      if (budget.signal?.aborted) {
        throw new SessionError("ABORTED", `Cannot ${what}: the request was aborted`, { cause: error });
      }
      if (code === "42P01") {
        const table = this.options.table;
        throw new SessionError(
          "TABLE_MISSING",
          `Cannot ${what}: table ${table} does not exist; create it with npx pgsession migrate --table ${table}`,
          { cause: error },
        );
      }
      const reason = error instanceof Error ? error.message : String(error);
      throw new SessionError("DATABASE_ERROR", `Cannot ${what}: ${reason}`, { cause: error });
    }
  }

  /** Runs a statement that needs the user columns: `MIGRATION_REQUIRED` on a table without them. */
  async #withUsers(what: string, text: string, params: unknown[], budget: Budget): Promise<Row[]> {
    try {
      return await this.run(what, text, params, budget);
    } catch (error) {
      const cause = (error as SessionError).cause as { code?: unknown; message?: unknown } | undefined;
      if (cause?.code === "42703" && USER_COLUMNS.some((c) => String(cause.message).includes(c))) {
        throw new SessionError(
          "MIGRATION_REQUIRED",
          `Cannot ${what}: table ${this.options.table} has no user columns; add them with npx pgsession migrate --table ${this.options.table}`,
          { cause },
        );
      }
      throw error;
    }
  }

  #timeout(what: string, budget: Budget, cause?: unknown): SessionError {
    return new SessionError(
      "TIMEOUT",
      `Cannot ${what}: no answer from the database within ${Math.round(budget.elapsed())} ms`,
      cause === undefined ? undefined : { cause },
    );
  }
}
