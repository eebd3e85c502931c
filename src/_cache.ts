/**
 * A small least-recently-used map, for memoizing pure results (a token's hash, a verified
 * signature) across requests in one isolate or process. No timers, no I/O.
 *
 * @module
 */

/** A bounded map that forgets the least recently used entry first. */
export class LruCache<K, V> {
  #max: number;
  #map = new Map<K, V>();

  /** @param max How many entries to keep. */
  constructor(max: number) {
    this.#max = max;
  }

  /** @returns The value, or `undefined`; a hit becomes the most recently used. */
  get(key: K): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }

  /** Stores a value, evicting the least recently used entry when full. */
  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as K);
  }
}
