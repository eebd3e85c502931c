/**
 * Garbage collection of expired sessions in short batches, for scheduled triggers and large
 * tables.
 *
 * @module
 */

import { Budget } from "./_budget.ts";
import { gcBatchSql } from "./_sql.ts";
import type { SessionTable } from "./_table.ts";

/** How `store.gc()` works through the table. */
export interface GcOptions {
  /**
   * The most rows one batch (one statement, one transaction) deletes, from 1 to 100000. Smaller
   * batches hold their row locks for less time; larger ones need fewer round trips.
   * @default {1000}
   */
  batchSize?: number | undefined;
  /**
   * The time budget in milliseconds. No batch starts once the budget is spent, or when the
   * slowest batch so far would not fit in what is left, so the run ends within it. Sized for a
   * cron trigger with a 30-second limit; `Infinity` for no limit, `0` to run no batch at all.
   * Measured with the monotonic `performance.now()`; which rows have expired is decided by the
   * database clock only.
   * @default {25000}
   */
  maxDurationMs?: number | undefined;
  /**
   * Stops the run before its next batch once aborted; the batch in flight completes.
   * @default {undefined}
   */
  signal?: AbortSignal | undefined;
  /**
   * Called after each batch, for progress reports. An exception thrown here ends the run.
   * @default {undefined}
   */
  onBatch?: ((progress: GcProgress) => void) | undefined;
}

/** What a `store.gc()` run did. */
export interface GcResult {
  /** Rows deleted, over all batches. */
  deleted: number;
  /** Statements sent. */
  batches: number;
  /**
   * `true` when the last batch found fewer expired rows than `batchSize`: nothing was left that
   * another collector running at the same time was not already deleting. `false` when the budget
   * or the signal stopped the run first: more rows may remain, run again.
   */
  done: boolean;
}

/** Progress after one batch, passed to {@linkcode GcOptions.onBatch}. */
export interface GcProgress extends GcResult {
  /** Rows deleted by this batch. */
  batchDeleted: number;
  /** How long this batch took, in milliseconds. */
  batchMs: number;
  /** Milliseconds since the run started. */
  elapsedMs: number;
}

/** Defaults for {@linkcode GcOptions}. */
export const GC_DEFAULTS: Readonly<{ batchSize: number; maxDurationMs: number }> = Object.freeze({
  batchSize: 1000,
  maxDurationMs: 25_000,
});

/** The largest `batchSize`. */
export const MAX_BATCH_SIZE = 100_000;

/**
 * Deletes expired sessions in batches, each one short statement in its own transaction, until
 * none are left, the time budget is spent, or the signal aborts. Only rows whose expiry has
 * passed by the database clock go; a live session, or one a request is writing at that moment,
 * stays. Safe to run from several places at once: concurrent runs skip each other's rows. Over
 * Neon's HTTP transport each batch is one round trip.
 *
 * @param table The table to clean; its connection sends the statements.
 * @param timeoutMs The store's bound for each statement.
 * @param options Batch size, time budget, abort signal and progress callback.
 * @returns Rows deleted, batches sent, and whether the run got to the end.
 * @throws {RangeError} For a `batchSize` or `maxDurationMs` out of range.
 * @throws {SessionError} `DATABASE_ERROR` when the database fails; batches already done stay done.
 */
export async function collectGarbage(
  table: SessionTable,
  timeoutMs: number,
  options: GcOptions = {},
): Promise<GcResult> {
  const batchSize = options.batchSize ?? GC_DEFAULTS.batchSize;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new RangeError(`Cannot use batchSize ${batchSize}: expected a whole number from 1 to ${MAX_BATCH_SIZE}`);
  }
  const budget = options.maxDurationMs ?? GC_DEFAULTS.maxDurationMs;
  if (typeof budget !== "number" || Number.isNaN(budget) || budget < 0) {
    throw new RangeError(`Cannot use maxDurationMs ${budget}: expected a number of milliseconds, 0 or more`);
  }
  const { signal, onBatch } = options;
  const text = gcBatchSql(table.options.table);
  const start = performance.now();
  let slowest = 0;
  let last = "-infinity";
  const result: GcResult = { deleted: 0, batches: 0, done: false };
  while (!signal?.aborted && performance.now() - start + slowest < budget) {
    const batchStart = performance.now();
    const rows = await table.run("collect expired sessions", text, [batchSize, last], new Budget(timeoutMs));
    const now = performance.now();
    const batchDeleted = Number(rows[0]?.n ?? 0);
    // The next batch starts where this one ended (ties included: a skipped row is tried again).
    if (typeof rows[0]?.last === "string") last = rows[0].last;
    const batchMs = now - batchStart;
    slowest = Math.max(slowest, batchMs);
    result.deleted += batchDeleted;
    result.batches++;
    result.done = batchDeleted < batchSize;
    onBatch?.({ ...result, batchDeleted, batchMs, elapsedMs: now - start });
    if (result.done) break;
  }
  return result;
}
