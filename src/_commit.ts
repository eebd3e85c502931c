/**
 * Committing a session: what to do is decided by a pure function ({@linkcode planCommit}) from
 * what was read and what changed; {@linkcode runCommit} then does it, one statement per write,
 * merging with concurrent writers by compare-and-set; {@linkcode cookieAfter} says, again as a
 * pure function, what the client's cookie becomes.
 *
 * The cookie rule: a cookie is sent only when its id changes — a new session is stored, a
 * session is regenerated, a session is destroyed — and those writes always finish before the
 * response. Its lifetime is the session's absolute deadline (at most 400 days, the browsers'
 * cap), fixed when the id is issued, so plain updates and touches never send `Set-Cookie` and
 * a late response can never put back an id another request replaced.
 *
 * @module
 */

import { sameBytes, writeStored } from "./_format.ts";
import type { SessionRecord } from "./_record.ts";
import type { Budget } from "./_budget.ts";
import type { Row } from "./client.ts";
import { SessionError } from "./errors.ts";
import type { SaveResult } from "./session.ts";
import { handleOf } from "./id.ts";

/** What a commit writes, in the words of {@linkcode SaveResult} (`create` → `created`, …). */
export type CommitKind = "none" | "create" | "update" | "touch" | "regenerate" | "destroy";

/** The facts a plan is made from, read off a session record. */
export interface PlanInput {
  /** The id whose row is believed stored, or `null`. */
  readonly rowId: string | null;
  /** The id the client should hold after this request. */
  readonly id: string;
  /** Rows a `destroy()` left to delete. */
  readonly pendingDestroys: number;
  /** The request changed the data. */
  readonly modified: boolean;
  /** A new session would store something (data, or a user to bind). */
  readonly hasContent: boolean;
  /** The stored expiry lags enough to move it forward. */
  readonly touchDue: boolean;
  /** The request read the session: the response depends on it. */
  readonly accessed: boolean;
}

/** A commit decision, as data. */
export interface CommitPlan {
  /** The write after any pending deletions: `none`, `create`, `update`, `touch`, `regenerate` or `destroy`. */
  readonly kind: CommitKind;
  /**
   * The client's cookie depends on this write (a create, a regenerate, a destroy): it runs before the
   * response. Plain updates and touches may run after it.
   */
  readonly critical: boolean;
  /** What the client's cookie becomes if the write succeeds: set to the id, cleared, or left alone. */
  readonly cookie: "set" | "clear" | null;
  /** The response depends on the session (it was read). */
  readonly accessed: boolean;
}

/**
 * Decides what committing means. Pure: same input, same plan.
 *
 * @param input What was read and what changed.
 * @param onlyDestroy The request failed (or ran outside the cookie's path): only a pending
 *   `destroy()` is written, never anything else.
 */
export function planCommit(input: PlanInput, onlyDestroy = false): CommitPlan {
  let kind: CommitKind;
  if (onlyDestroy) kind = input.pendingDestroys > 0 ? "destroy" : "none";
  else if (input.rowId !== null && input.id !== input.rowId) kind = "regenerate";
  else if (input.rowId !== null && input.modified) kind = "update";
  else if (input.rowId === null && input.hasContent) kind = "create";
  else if (input.rowId !== null && input.touchDue) kind = "touch";
  else kind = input.pendingDestroys > 0 ? "destroy" : "none";
  const critical = kind === "create" || kind === "regenerate" || kind === "destroy";
  const cookie = kind === "create" || kind === "regenerate" ? "set" : kind === "destroy" ? "clear" : null;
  return { kind, critical, cookie, accessed: input.accessed };
}

/** The browsers' cap on a cookie's lifetime (RFC 6265bis): 400 days. */
export const MAX_COOKIE_SECONDS: number = 400 * 86_400;

/**
 * The cookie after a commit: the id with the session's remaining absolute lifetime, a clearing
 * cookie, or nothing. Pure.
 *
 * @param result What the commit did.
 * @param hadCookie The client sent a cookie for a stored session.
 * @param id The session's id after the commit.
 * @param deadlineMs The absolute deadline (database clock), or `null` for none.
 * @param nowMs The database's `now()` of the write.
 */
export function cookieAfter(
  result: SaveResult,
  hadCookie: boolean,
  id: string,
  deadlineMs: number | null,
  nowMs: number | null,
): { id: string; maxAge: number } | null {
  if (result === "created" || result === "regenerated") {
    const left = deadlineMs === null || nowMs === null ? MAX_COOKIE_SECONDS : (deadlineMs - nowMs) / 1000;
    return { id, maxAge: Math.max(0, Math.min(MAX_COOKIE_SECONDS, Math.floor(left))) };
  }
  if (result === "destroyed" && hadCookie) return { id: "", maxAge: 0 };
  return null;
}

/**
 * Plans a record's commit: drops every change but a pending `destroy()` when `onlyDestroy`, and
 * loads data not read yet under changes, so the write merges with what is stored.
 */
export async function planFor(record: SessionRecord, onlyDestroy = false): Promise<CommitPlan> {
  if (onlyDestroy) {
    record.changes.reset();
    record.id = record.rowId ?? record.id;
    record.touchDue = false;
    record.pendingUser = null;
  } else if (record.rowId !== null && record.changes.modified && !record.storedData) {
    await record.load();
  }
  const changes = record.changes;
  return planCommit({
    rowId: record.rowId,
    id: record.id,
    pendingDestroys: record.toDelete.length,
    modified: changes.modified,
    hasContent: record.rowId === null &&
      (record.pendingUser !== null || (changes.modified && changes.apply(record.storedData).size > 0)),
    touchDue: record.touchDue,
    accessed: changes.accessed,
  }, onlyDestroy);
}

// Without a time budget, a write gives up after this many lost races in a row.
const MAX_UNBOUNDED_ATTEMPTS = 1000;

/**
 * Runs a plan: pending deletions, then its write. Sets `record.outcome`.
 *
 * @returns What was done; `"gone"` when the stored session vanished meanwhile (nothing re-created).
 * @throws {SessionError} When the database fails or the data cannot be stored.
 */
export async function runCommit(record: SessionRecord, plan: CommitPlan, budget: Budget): Promise<SaveResult> {
  let result: SaveResult = "unchanged";
  while (record.toDelete.length) {
    await record.policy.table.destroy(await handleOf(record.toDelete[0]!), budget);
    record.toDelete.shift();
    result = "destroyed";
  }
  switch (plan.kind) {
    case "create":
      result = (await create(record, budget)) ?? result;
      break;
    case "update": {
      const handle = await handleOf(record.rowId!);
      result = await record.policy.table.inLane(handle, async (latest) => {
        if (latest) {
          record.storedBytes = latest.storedBytes;
          record.storedData = new Map(latest.storedData);
        }
        const updated = await update(record, handle, budget);
        const stored = record.rowId !== null && record.storedBytes && record.storedData;
        return {
          result: updated,
          latest: stored ? { storedBytes: record.storedBytes!, storedData: record.storedData! } : null,
        };
      });
      break;
    }
    case "touch":
      result = await touch(record, budget);
      break;
    case "regenerate":
      result = await regenerate(record, budget);
      break;
  }
  record.outcome = result;
  return result;
}

/** INSERTs a session that has no row; `undefined` when there is nothing to store. */
async function create(record: SessionRecord, budget: Budget): Promise<SaveResult | undefined> {
  const data = record.changes.apply(record.storedData);
  if (data.size === 0 && !record.pendingUser) {
    record.changes.reset();
    return undefined;
  }
  const payload = record.encode(data);
  const row = await record.policy.table.insert(await handleOf(record.id), payload, record.pendingUser, budget);
  record.bound();
  record.rowId = record.id;
  record.written(data, row);
  return "created";
}

/** UPDATEs a stored session with compare-and-set, merging with concurrent writers. */
async function update(record: SessionRecord, handle: string, budget: Budget): Promise<SaveResult> {
  // Changes that leave the encoded data as it was read (a set of an identical value) write nothing.
  const data = record.changes.apply(record.storedData);
  const bytes = writeStored(record.header!, record.encode(data));
  if (record.storedBytes && sameBytes(bytes, record.storedBytes)) {
    record.changes.reset();
    return record.touchDue ? touch(record, budget) : "unchanged";
  }
  const table = record.policy.table;
  const written = await writeWithMerge(
    record,
    handle,
    budget,
    (data, expected) => table.update(handle, data, expected, record.deadlineMs, budget),
    { data, bytes },
  );
  return written ? "updated" : "gone";
}

/** Moves the expiry forward; `"gone"` when the session no longer is live. */
async function touch(record: SessionRecord, budget: Budget): Promise<SaveResult> {
  const row = await record.policy.table.touch(await handleOf(record.rowId!), record.deadlineMs, budget);
  record.touchDue = false;
  if (!row) return record.gone();
  record.expiresMs = Number(row.expires);
  record.nowMs = Number(row.now);
  return "touched";
}

/** Moves a stored session to `record.id` (after `regenerate()`), with its changes if any. */
async function regenerate(record: SessionRecord, budget: Budget): Promise<SaveResult> {
  const table = record.policy.table;
  const from = await handleOf(record.rowId!);
  const to = await handleOf(record.id);
  if (!record.changes.modified) {
    const row = await table.move(from, to, record.restart, record.pendingUser, budget);
    if (!row) return record.gone();
    record.rowId = record.id;
    record.applyRow(row.data, row.expires, row.now, to, row);
    record.pendingUser = null;
    return "regenerated";
  }
  const written = await writeWithMerge(
    record,
    from,
    budget,
    (data, expected) =>
      table.moveChanged(from, to, data, expected, record.restart, record.deadlineMs, record.pendingUser, budget),
  );
  if (!written) return "gone";
  record.rowId = record.id;
  record.bound();
  return "regenerated";
}

/**
 * Writes the merged data with compare-and-set; when another writer won, reads the row it left as
 * the base, applies this request's changes again and retries, for as long as the time budget
 * allows. `false` when the session is gone.
 */
async function writeWithMerge(
  record: SessionRecord,
  handle: string,
  budget: Budget,
  write: (data: Uint8Array, expected: Uint8Array | null) => Promise<Row | undefined>,
  first?: { data: Map<string, unknown>; bytes: Uint8Array },
): Promise<boolean> {
  for (let attempt = 1;; attempt++) {
    const data = attempt === 1 && first ? first.data : record.changes.apply(record.storedData);
    const bytes = attempt === 1 && first ? first.bytes : writeStored(record.header!, record.encode(data));
    const row = await write(bytes, record.storedBytes);
    if (row) {
      record.written(data, row, bytes);
      return true;
    }
    // Changed meanwhile, or gone: the row as it is now decides (only a lost race costs this read).
    const current = await record.policy.table.read(handle, budget);
    if (!current || !record.applyRow(current.data, current.expires, current.now, handle, current)) {
      record.gone();
      return false;
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
