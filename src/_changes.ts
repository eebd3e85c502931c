/**
 * What a request changed in a session, applied on top of the stored data when it is committed.
 *
 * @module
 */

/** Marks a deleted key among the changes. */
export const DELETED: unique symbol = Symbol("deleted");
/** Where flash messages live in the data; hidden from `keys()` and `entries()`. */
export const FLASH_KEY = "__flash";

/** Flash messages added and taken this request, merged with the stored ones on commit. */
export class FlashUpdate {
  /** Messages added, by key. */
  readonly added: Map<string, unknown> = new Map();
  /** Keys read (and so removed). */
  readonly taken: Set<string> = new Set();
}

/** Changes a request made to a session. */
export class Changes {
  /** Set or deleted keys since load; flash updates under {@linkcode FLASH_KEY}. */
  readonly entries: Map<string, unknown> = new Map();
  /** `clear()` was called: the stored data does not count. */
  cleared = false;
  /** Session data was read (the response depends on the session). */
  accessed = false;

  /** `true` when a commit has something to write. */
  get modified(): boolean {
    return this.cleared || this.entries.size > 0;
  }

  /** The data as it would be written: `base` with these changes applied. */
  apply(base: ReadonlyMap<string, unknown> | null): Map<string, unknown> {
    const data = this.cleared || !base ? new Map<string, unknown>() : new Map(base);
    for (const [key, value] of this.entries) {
      if (value === DELETED) data.delete(key);
      else if (value instanceof FlashUpdate) {
        const stored = data.get(FLASH_KEY);
        const flashes = new Map(stored instanceof Map ? stored : []);
        for (const k of value.taken) flashes.delete(k);
        for (const [k, v] of value.added) flashes.set(k, v);
        if (flashes.size) data.set(FLASH_KEY, flashes);
        else data.delete(FLASH_KEY);
      } else data.set(key, value);
    }
    return data;
  }

  /** The data as it reads now, for reading only: `base` itself while nothing changed (no copy). */
  view(base: ReadonlyMap<string, unknown>): ReadonlyMap<string, unknown> {
    return this.cleared || this.entries.size > 0 ? this.apply(base) : base;
  }

  /** Forgets every change (after a commit, or when the session was destroyed). */
  reset(): void {
    this.entries.clear();
    this.cleared = false;
  }

  /** The flash messages added and taken this request. */
  flash(): FlashUpdate {
    const pending = this.entries.get(FLASH_KEY);
    if (pending instanceof FlashUpdate) return pending;
    const update = new FlashUpdate();
    this.entries.set(FLASH_KEY, update);
    return update;
  }
}
