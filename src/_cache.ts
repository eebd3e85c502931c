/**
 * A small bounded cache that forgets the least recently used entries first, for memoizing pure
 * results (an id's hash, a verified signature) across requests in one isolate or process. No
 * timers, no I/O.
 *
 * @module
 */

/**
 * Two generations of `max / 2` entries: new and used entries go to the young one; when it is full
 * it becomes the old one and the previous old one is dropped whole. Every operation is O(1).
 * (Evicting one entry at a time from a single `Map`, its first key, costs time linear in the
 * deleted slots the `Map` has not compacted yet: 4–15 µs per insertion once full, in trials.)
 * An entry used within the last `max / 2` insertions is always kept.
 */
export class LruCache<K, V> {
  #half: number;
  #young = new Map<K, V>();
  #old = new Map<K, V>();

  /** @param max At most this many entries are kept. */
  constructor(max: number) {
    this.#half = Math.max(1, Math.floor(max / 2));
  }

  /** @returns The value, or `undefined`; a hit becomes the most recently used. */
  get(key: K): V | undefined {
    const young = this.#young.get(key);
    if (young !== undefined) return young;
    const old = this.#old.get(key);
    if (old !== undefined) this.set(key, old);
    return old;
  }

  /** Stores a value as the most recently used. */
  set(key: K, value: V): void {
    this.#young.set(key, value);
    if (this.#young.size >= this.#half) {
      this.#old = this.#young;
      this.#young = new Map();
    }
  }
}
