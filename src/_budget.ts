/**
 * The time one store operation may take, shared by its statements and its retries.
 *
 * @module
 */

/** A time budget in milliseconds from its creation; `0` is unbounded. */
export class Budget {
  readonly #start = performance.now();

  /**
   * @param ms The bound; `0` waits forever.
   * @param signal Abandons the operation's statements not yet sent.
   */
  constructor(readonly ms: number, readonly signal?: AbortSignal | undefined) {}

  /** Whether there is a bound at all. */
  get bounded(): boolean {
    return this.ms > 0;
  }

  /** Milliseconds since the operation started. */
  elapsed(): number {
    return performance.now() - this.#start;
  }

  /** Milliseconds left (`0` when unbounded). */
  remaining(): number {
    return this.bounded ? this.ms - this.elapsed() : 0;
  }

  /** Whether a bounded budget is spent. */
  expired(): boolean {
    return this.bounded && this.remaining() <= 0;
  }

  /**
   * The server-side lock wait for a statement (`"0"` waits forever): what is left, less a margin,
   * so that for a row lock the server gives up before the client does. The statement then ends on
   * the server, rolled back; had the client given up first, the server would still apply it once
   * the lock was released.
   */
  lockMs(): string {
    if (!this.bounded) return "0";
    const remaining = this.remaining();
    const margin = Math.min(500, Math.max(50, remaining / 5));
    return String(Math.max(1, Math.floor(remaining - margin)));
  }
}
