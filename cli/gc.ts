/**
 * `pgsession gc`: the batched garbage collection, with a progress line on a terminal and one
 * quiet line otherwise (cron logs).
 *
 * @module
 */

import type { Client } from "pg";
import type { GcProgress, GcResult } from "../src/gc.ts";
import { PostgresStore } from "../src/store.ts";
import { EXIT } from "./_fail.ts";
import type { Output } from "./_output.ts";

/** What `pgsession gc` takes. */
export interface GcCommand {
  table: string;
  batchSize: number;
  maxDurationMs: number;
  /** Aborted on Ctrl-C: the batch in flight finishes, no other starts. */
  signal: AbortSignal;
}

const NUMBER = new Intl.NumberFormat("en-US");
const PROGRESS_EVERY_MS = 100;

/**
 * Runs the collection and reports it.
 *
 * @param client An open connection.
 * @param command Table, batch size, budget and the interrupt signal.
 * @param out Where to print.
 * @returns 0 when done, 3 when the budget ran out first, 130 when interrupted.
 */
export async function runGc(client: Client, command: GcCommand, out: Output): Promise<number> {
  const store = new PostgresStore({ client, table: command.table });
  const tty = out.isTTY === true;
  let longest = 0;
  let shown = -Infinity;
  const onBatch = (p: GcProgress): void => {
    longest = Math.max(longest, p.batchMs);
    if (!tty || p.elapsedMs - shown < PROGRESS_EVERY_MS) return;
    shown = p.elapsedMs;
    out.write(
      `\r\x1b[2KCollecting: ${NUMBER.format(p.deleted)} deleted, ${rate(p)} rows/s, ${
        NUMBER.format(p.batches)
      } batches, ${seconds(p.elapsedMs)} s`,
    );
  };
  const started = performance.now();
  let result: GcResult;
  try {
    result = await store.gc({
      batchSize: command.batchSize,
      maxDurationMs: command.maxDurationMs,
      signal: command.signal,
      onBatch,
    });
  } finally {
    if (tty && shown > -Infinity) out.write("\r\x1b[2K");
  }
  const elapsedMs = performance.now() - started;
  const interrupted = !result.done && command.signal.aborted;
  const summary = { ...result, elapsedMs };
  if (tty) {
    const outcome = result.done
      ? "no expired sessions left"
      : interrupted
      ? "interrupted; expired sessions may remain"
      : `stopped at the ${seconds(command.maxDurationMs)} s budget; expired sessions may remain, run again`;
    out.write(
      `Deleted ${NUMBER.format(result.deleted)} expired sessions in ${NUMBER.format(result.batches)} batches, ` +
        `${seconds(elapsedMs)} s (${rate(summary)} rows/s, longest batch ${Math.round(longest)} ms): ${outcome}\n`,
    );
  } else {
    const stopped = result.done ? "" : interrupted ? " stopped=interrupted" : " stopped=budget";
    out.write(
      `pgsession gc: deleted=${result.deleted} batches=${result.batches} seconds=${seconds(elapsedMs)} ` +
        `rate=${Math.round(perSecond(summary))} longest_batch_ms=${
          Math.round(longest)
        } done=${result.done}${stopped}\n`,
    );
  }
  return result.done ? EXIT.OK : interrupted ? EXIT.INTERRUPTED : EXIT.MORE_LEFT;
}

function perSecond(p: { deleted: number; elapsedMs: number }): number {
  return p.elapsedMs > 0 ? (p.deleted * 1000) / p.elapsedMs : 0;
}

function rate(p: { deleted: number; elapsedMs: number }): string {
  return NUMBER.format(Math.round(perSecond(p)));
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);
}
