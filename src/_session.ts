/**
 * The class behind {@linkcode Session}: data reads and writes over one {@linkcode SessionRecord}.
 *
 * @module
 */

import { DELETED, FLASH_KEY } from "./_changes.ts";
import type { SessionRecord } from "./_record.ts";
import type { RegenerateOptions, Session, SessionData, UserSession } from "./session.ts";
import { handleOf } from "./id.ts";

/** The store calls a session's user operations go through. */
export interface UserCalls {
  sessionsOf(user: string, options: { current?: string | null }): Promise<UserSession[]>;
  revoke(handle: string, options: { user?: string }): Promise<number>;
  revokeAll(user: string, options: { except?: string | null }): Promise<number>;
}

/** A session over its record. */
export class SessionImpl<Data extends object = SessionData> implements Session<Data> {
  readonly #record: SessionRecord;
  readonly #users: UserCalls;

  /**
   * @param record The session's state.
   * @param users The store, for the user operations.
   */
  constructor(record: SessionRecord, users: UserCalls) {
    this.#record = record;
    this.#users = users;
  }

  /** The record behind a session of this package; `undefined` for anything else. */
  static recordOf(session: unknown): SessionRecord | undefined {
    return session instanceof SessionImpl ? session.#record : undefined;
  }

  get id(): string {
    return this.#record.id;
  }

  get isNew(): boolean {
    return this.#record.rowId === null;
  }

  get expires(): Date | null {
    const expiresMs = this.#record.expiresMs;
    return expiresMs === null ? null : new Date(expiresMs);
  }

  get isModified(): boolean {
    return this.#record.changes.modified;
  }

  get changedKeys(): (keyof Data & string)[] {
    return [...this.#record.changes.entries.keys()].filter((k) => k !== FLASH_KEY) as (keyof Data & string)[];
  }

  async get<K extends keyof Data & string>(key: K): Promise<Data[K] | undefined> {
    checkKey(key);
    return (await this.#current()).get(key) as Data[K] | undefined;
  }

  async has(key: keyof Data & string): Promise<boolean> {
    checkKey(key);
    return (await this.#current()).has(key);
  }

  async keys(): Promise<(keyof Data & string)[]> {
    return [...(await this.#current()).keys()].filter((k) => k !== FLASH_KEY) as (keyof Data & string)[];
  }

  async entries(): Promise<[keyof Data & string, Data[keyof Data]][]> {
    return [...(await this.#current()).entries()].filter(([k]) => k !== FLASH_KEY) as [
      keyof Data & string,
      Data[keyof Data],
    ][];
  }

  set<K extends keyof Data & string>(key: K, value: Data[K]): void {
    checkKey(key);
    checkValue(key, value);
    this.#record.changes.entries.set(key, value);
  }

  delete(key: keyof Data & string): void {
    checkKey(key);
    this.#record.changes.entries.set(key, DELETED);
  }

  clear(): void {
    this.#record.changes.entries.clear();
    this.#record.changes.cleared = true;
  }

  regenerate(options: RegenerateOptions = {}): void {
    this.#record.regenerate(options);
  }

  destroy(): void {
    this.#record.destroy();
  }

  user(): Promise<string | null> {
    this.#record.changes.accessed = true;
    return this.#record.currentUser();
  }

  async sessions(): Promise<UserSession[]> {
    this.#record.changes.accessed = true;
    const user = await this.#record.currentUser();
    return user === null ? [] : this.#users.sessionsOf(user, { current: this.#record.rowId ?? this.#record.id });
  }

  async revoke(handle: string): Promise<number> {
    const user = await this.#record.currentUser();
    return user === null ? 0 : this.#users.revoke(handle, { user });
  }

  async revokeOthers(): Promise<number> {
    const record = this.#record;
    const user = await record.currentUser();
    if (user === null) return 0;
    return this.#users.revokeAll(user, { except: record.rowId === null ? null : await handleOf(record.rowId) });
  }

  fresh(): Promise<void> {
    this.#record.changes.accessed = true;
    return this.#record.refresh();
  }

  flash(key: string, value: unknown): void {
    checkValue(key, value);
    this.#record.changes.flash().added.set(key, value);
  }

  async getFlash(key: string): Promise<unknown> {
    const flashes = (await this.#current()).get(FLASH_KEY);
    if (!(flashes instanceof Map) || !flashes.has(key)) return undefined;
    const update = this.#record.changes.flash();
    update.added.delete(key);
    update.taken.add(key);
    return flashes.get(key);
  }

  async #current(): Promise<ReadonlyMap<string, unknown>> {
    this.#record.changes.accessed = true;
    return this.#record.changes.view(await this.#record.load());
  }
}

function checkKey(key: unknown): void {
  if (typeof key !== "string") throw new TypeError(`Cannot use a ${typeof key} as a session key`);
  if (key === "__proto__" || key === FLASH_KEY) {
    throw new TypeError(`Cannot use ${JSON.stringify(key)} as a session key: it is reserved`);
  }
}

function checkValue(key: string, value: unknown): void {
  if (typeof value === "function" || typeof value === "symbol") {
    throw new TypeError(`Cannot store a ${typeof value} in session key ${JSON.stringify(key)}`);
  }
}
