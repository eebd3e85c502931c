/**
 * The session of one request: a {@linkcode Session} that commits itself onto the response — the
 * write, then `Set-Cookie` (only when the id changed), the snapshot cookie when snapshots are on,
 * `Vary` and `Cache-Control`.
 *
 * @module
 */

import { cookieAfter, planFor, runCommit } from "./_commit.ts";
import { type ResolvedCookie, serializeCookie } from "./cookie.ts";
import type { Logger } from "./errors.ts";
import { addSessionHeaders } from "./_headers.ts";
import type { SessionRecord } from "./_record.ts";
import { SessionImpl } from "./_session.ts";
import type { SaveResult } from "./session.ts";
import type { CommitOptions, RequestSession } from "./sessions.ts";
import { sign } from "./_signature.ts";
import { sealSnapshot } from "./_snapshot.ts";
import type { StoreInternals } from "./store.ts";

/** What `createSessions` validated once, shared by every request session it opens. */
export interface Settings {
  readonly store: StoreInternals;
  readonly secrets: readonly string[] | undefined;
  readonly header: string | undefined;
  readonly commitOnServerError: boolean;
  readonly logger: Logger;
  /** Snapshots on: their lifetime in seconds. */
  readonly snapshot: { readonly maxAge: number } | null;
}

/** Per request: where the request came from and what it carried. */
export interface RequestContext {
  readonly request: Request;
  readonly cookie: ResolvedCookie;
  /** The request path is within the cookie's path. */
  readonly inPath: boolean;
  /** A `Set-Cookie` clearing express-session's cookie, after a legacy session was moved over. */
  readonly clearLegacy: string | null;
  /** The request carried a snapshot cookie (fresh or not). */
  readonly snapshotSent: boolean;
  /** The edge clock when the request was opened: snapshots sealed now are at least this fresh. */
  readonly openedAt: number;
}

/** Deno prints a notice whenever a `Deno.serve` request's `signal` is read, and aborts it on success. */
const readsSignal = typeof (globalThis as { Deno?: unknown }).Deno === "undefined";

/** The session of one request: a {@linkcode Session} that commits itself onto the response. */
export class RequestSessionImpl<Data extends object> extends SessionImpl<Data> implements RequestSession<Data> {
  readonly #record: SessionRecord;
  readonly #settings: Settings;
  readonly #context: RequestContext;
  #done = false;

  constructor(record: SessionRecord, settings: Settings, context: RequestContext) {
    super(record, settings.store.users);
    this.#record = record;
    this.#settings = settings;
    this.#context = context;
  }

  get outcome(): SaveResult | null {
    return this.#record.outcome;
  }

  async commit(response: Response, options: CommitOptions = {}): Promise<Response> {
    this.#once("commit");
    if (response.status === 101) return response; // an upgraded socket carries no cookies
    const failed = response.status >= 500 && !this.#settings.commitOnServerError;
    // Outside the cookie's path the browser would never send the cookie back: store nothing.
    const plan = await planFor(this.#record, failed || !this.#context.inPath);
    // With snapshots, the response carries the data it wrote: an update runs before it.
    let touchedLater = false;
    if (plan.kind !== "none") {
      const signal = readsSignal ? this.#context.request.signal : undefined;
      // The client went away: abandon the session work.
      if (signal?.aborted) return response;
      const { waitUntil } = options;
      if (waitUntil && !plan.critical && !(this.#settings.snapshot && plan.kind === "update")) {
        touchedLater = plan.kind === "touch";
        waitUntil(
          runCommit(this.#record, plan, this.#record.budget()).then((result) => this.#settle(result), async (error) => {
            if (options.onBackgroundError) await options.onBackgroundError(error);
            else this.#settings.logger.warn("Background session commit failed", { error });
          }),
        );
      } else {
        this.#settle(await runCommit(this.#record, plan, this.#record.budget(signal)));
      }
    } else this.#record.outcome = "unchanged";
    return await this.#decorate(response, plan.accessed, touchedLater);
  }

  async discard(): Promise<void> {
    this.#once("discard");
    const plan = await planFor(this.#record, true);
    this.#settle(await runCommit(this.#record, plan, this.#record.budget()));
  }

  #once(what: string): void {
    if (this.#done) throw new TypeError(`Cannot ${what}: this session was committed already`);
    this.#done = true;
  }

  #settle(result: SaveResult): void {
    if (result === "gone") {
      this.#settings.logger.warn("Session ended by another request while this one ran; its changes were dropped");
    }
  }

  async #decorate(response: Response, accessed: boolean, touchedLater: boolean): Promise<Response> {
    const record = this.#record;
    // A session moved over from express-session is stored but the client does not hold its id yet.
    const result = record.cookiePending && record.rowId === record.id && record.outcome !== "gone"
      ? "created"
      : record.outcome;
    const out = result === null
      ? null
      : cookieAfter(result, record.requestId !== null, record.id, record.deadlineMs, record.nowMs);
    const { secrets, header } = this.#settings;
    const value = out === null ? null : out.id && secrets ? await sign(out.id, secrets[0]!) : out.id;
    const extra: string[] = [];
    if (this.#context.clearLegacy) extra.push(this.#context.clearLegacy);
    const snapshot = await this.#snapshotCookie(touchedLater);
    if (snapshot) extra.push(snapshot);
    return addSessionHeaders(response, {
      setCookie: out === null ? null : serializeCookie(this.#context.cookie, value!, out.maxAge),
      idHeader: header && value !== null ? [header, value] : null,
      vary: header ? [header] : [],
      accessed,
      extraCookies: extra,
    });
  }

  /**
   * The snapshot cookie after the commit: sealed from what the database said in this request
   * (read or written), cleared when the session ended or no longer fits, and left as the client
   * holds it when this request read only the snapshot and wrote nothing.
   */
  async #snapshotCookie(touchedLater: boolean): Promise<string | null> {
    const snapshot = this.#settings.snapshot;
    if (!snapshot) return null;
    const record = this.#record;
    const cookie = { ...this.#context.cookie, name: `${this.#context.cookie.name}.s` };
    const clear = this.#context.snapshotSent ? serializeCookie(cookie, "", 0) : null;
    if (record.outcome === "gone" || record.rowId === null) return clear;
    const wrote = record.outcome !== null && record.outcome !== "unchanged";
    if (record.source === "none" || (record.source === "snapshot" && !wrote && !touchedLater)) return null;
    const content = record.snapshotContent(touchedLater);
    const value = content &&
      await sealSnapshot(content, {
        id: record.id,
        secrets: this.#settings.secrets!,
        now: this.#context.openedAt,
      });
    return value ? serializeCookie(cookie, value, snapshot.maxAge) : clear;
  }
}

/**
 * Runs a handler around a request's session: commits onto its response, or, when it throws,
 * commits only a pending `destroy()` (a sign-out is never lost) and rethrows. A handler that
 * returns `null` failed with a response made elsewhere (Hono's `app.onError`): the same.
 *
 * @returns The committed response, or `null` after such a failure.
 */
export async function aroundHandler<Data extends object>(
  session: RequestSession<Data>,
  handler: () => Promise<Response | null>,
  commit: CommitOptions,
  logger: Logger,
): Promise<Response | null> {
  let response: Response | null;
  try {
    response = await handler();
  } catch (error) {
    await session.discard().catch((e) => logger.warn("Cannot commit the sign-out of a failed request", { error: e }));
    throw error;
  }
  if (response === null) {
    await session.discard();
    return null;
  }
  return await session.commit(response, commit);
}
