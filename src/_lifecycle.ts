/**
 * Sessions built once per distinct options, for the adapters whose options may come from per-request
 * bindings (`withSession`'s options function, Hono's `c.env`). The lifecycle itself is
 * `Sessions.handle` (`aroundHandler` in `_request_session.ts`).
 *
 * @module
 */

import { LruCache } from "./_cache.ts";
import { SessionError } from "./errors.ts";
import type { SessionData } from "./session.ts";
import { createSessions, type Sessions, type SessionsOptions } from "./sessions.ts";

/** Options as given, or sessions made already. */
export type SessionsSource<Data extends object> = SessionsOptions<Data> | Sessions<Data>;

/**
 * Sessions per distinct options: by a binding object when the adapter has one (Hono's `c.env`),
 * else by the options' values (an options function usually returns a new object with the same
 * values on every request). Invalid options are `SessionError("CONFIG")`.
 */
export class SessionsCache<Data extends object = SessionData> {
  readonly #byBinding = new WeakMap<object, Sessions<Data>>();
  readonly #byValues = new LruCache<string, Sessions<Data>>(32);

  /**
   * @param binding An object the options depend on alone, or `null`.
   * @param build Returns the options (called only when `binding` is not known yet).
   */
  get(binding: object | null, build: () => SessionsSource<Data>): Sessions<Data> {
    if (binding) {
      let sessions = this.#byBinding.get(binding);
      if (!sessions) this.#byBinding.set(binding, sessions = this.#make(build()));
      return sessions;
    }
    const source = build();
    if (isSessions(source)) return source;
    const key = optionsKey(source);
    let sessions = this.#byValues.get(key);
    if (!sessions) this.#byValues.set(key, sessions = this.#make(source));
    return sessions;
  }

  #make(source: SessionsSource<Data>): Sessions<Data> {
    if (isSessions(source)) return source;
    try {
      return createSessions(source);
    } catch (error) {
      throw new SessionError("CONFIG", `Cannot use the session options: ${(error as Error).message}`, { cause: error });
    }
  }
}

/** Whether a source is sessions made already. */
export function isSessions<Data extends object>(source: SessionsSource<Data>): source is Sessions<Data> {
  return typeof (source as Partial<Sessions<Data>>).open === "function";
}

// Objects that are not plain data (a pool, a store, a logger) count by identity.
const identities = new WeakMap<object, number>();
let nextIdentity = 0;

/** A key equal for options that would make the same sessions; per-request hooks do not count. */
function optionsKey(options: object): string {
  const { waitUntil: _w, release: _r, onError: _e, ...rest } = options as Record<string, unknown>;
  return JSON.stringify(rest, (_key, value: unknown) => {
    if (typeof value === "function") return `#fn${identityOf(value)}`;
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return `#obj${identityOf(value)}`;
    }
    return value;
  });
}

function identityOf(value: object): number {
  let id = identities.get(value);
  if (id === undefined) identities.set(value, id = nextIdentity++);
  return id;
}
