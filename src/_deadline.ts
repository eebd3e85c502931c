/**
 * The time bound and abort wiring every driver shares: one timer per statement, and at most one
 * abort listener per signal however many statements run under it.
 *
 * @module
 */

import type { RunOptions } from "./client.ts";

/** The rejection of a statement that outlived its time bound. */
export class TimeoutReached extends Error {
  /** @param ms The bound that passed. */
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = "TimeoutReached";
  }
}

/** Whether `timeoutMs` bounds the statement (`0` and `Infinity` do not). */
export function isBounded(timeoutMs: number): boolean {
  return timeoutMs > 0 && Number.isFinite(timeoutMs);
}

/** Why a statement under an aborted signal was not sent or was abandoned. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The operation was aborted", "AbortError");
}

type Stop = (reason: unknown) => void;

// The statements in flight under each signal. A request's statements share one listener, added
// by the first of them and left in place (it goes with the signal), instead of an add and a
// remove on the signal's EventTarget per statement.
const inFlight = new WeakMap<AbortSignal, Set<Stop>>();

function watch(signal: AbortSignal, stop: Stop): Set<Stop> {
  let stops = inFlight.get(signal);
  if (!stops) {
    const own = new Set<Stop>();
    stops = own;
    inFlight.set(signal, own);
    signal.addEventListener("abort", () => {
      const reason = abortReason(signal);
      for (const each of own) each(reason);
      own.clear();
    }, { once: true });
  }
  stops.add(stop);
  return stops;
}

/**
 * Settles with the statement, or rejects with {@linkcode TimeoutReached} once the bound passes,
 * or with the signal's reason once it aborts, whichever comes first.
 *
 * @param work The statement's result.
 * @param options Its bound and signal (check `aborted` before sending: the statement is sent by then).
 * @param cancel Called when the statement is abandoned (to abort a fetch); its later failure is ignored.
 * @returns The statement's result within the bound.
 */
export function settle<T>(work: Promise<T>, options: RunOptions, cancel?: (reason: unknown) => void): Promise<T> {
  const bounded = isBounded(options.timeoutMs);
  const signal = options.signal;
  if (!bounded && !signal) return work;
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stops: Set<Stop> | undefined;
    const stop: Stop = (reason) => {
      clearTimeout(timer);
      stops?.delete(stop);
      reject(reason);
      cancel?.(reason);
    };
    if (bounded) timer = setTimeout(() => stop(new TimeoutReached(options.timeoutMs)), options.timeoutMs);
    if (signal) {
      if (signal.aborted) return stop(abortReason(signal));
      stops = watch(signal, stop);
    }
    work.then(
      (value) => {
        clearTimeout(timer);
        stops?.delete(stop);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        stops?.delete(stop);
        reject(error);
      },
    );
  });
}
