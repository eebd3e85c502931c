/**
 * The response headers a session adds: `Set-Cookie` (and the id header in header mode), `Vary`
 * and a `Cache-Control` no shared cache may store; on a response whose headers may be immutable.
 *
 * @module
 */

/** What to add to a response. */
export interface SessionHeaders {
  /** A serialized `Set-Cookie` value, or `null`. */
  setCookie: string | null;
  /** The id header's name and value in header mode, or `null`. */
  idHeader: [name: string, value: string] | null;
  /** Extra names for `Vary` beside `Cookie` (the id header in header mode). */
  vary: readonly string[];
  /** The response depends on the session (it was read). */
  accessed: boolean;
  /** Extra `Set-Cookie` values (clearing an old cookie). */
  extraCookies?: readonly string[] | undefined;
}

/**
 * Adds the session's headers; returns the same response, or a copy when its headers are immutable
 * (`fetch()` responses, `Response.redirect()`), the body stream moved over.
 */
export function addSessionHeaders(response: Response, add: SessionHeaders): Response {
  const setsCookie = add.setCookie !== null || (add.extraCookies?.length ?? 0) > 0;
  if (!setsCookie && !add.accessed) return response;
  let res = response;
  const edit = (change: (headers: Headers) => void): void => {
    try {
      change(res.headers);
    } catch {
      res = new Response(res.body, res);
      change(res.headers);
    }
  };
  const before = res.headers.get("Vary");
  const vary = mergeVary(before, ["Cookie", ...add.vary]);
  if (vary !== before) edit((h) => h.set("Vary", vary));
  if (add.setCookie !== null) edit((h) => h.append("Set-Cookie", add.setCookie!));
  for (const extra of add.extraCookies ?? []) edit((h) => h.append("Set-Cookie", extra));
  if (add.idHeader) edit((h) => h.set(add.idHeader![0], add.idHeader![1]));
  const cacheControl = res.headers.get("Cache-Control");
  const privateOne = privateCacheControl(cacheControl, setsCookie);
  if (privateOne !== cacheControl) edit((h) => h.set("Cache-Control", privateOne));
  return res;
}

/**
 * A Cache-Control value no shared cache may store: `public` and `s-maxage` go, `private` comes in
 * unless the response is `private` or `no-store` already; a response that sets the cookie and
 * said nothing gets `private, no-store`.
 */
function privateCacheControl(existing: string | null, setsCookie: boolean): string {
  if (!existing) return setsCookie ? "private, no-store" : "private";
  const kept = existing.split(",").map((p) => p.trim()).filter((p) =>
    p && !/^(public|s-maxage\s*=.*|proxy-revalidate)$/i.test(p)
  );
  if (!kept.some((p) => /^(private|no-store)$/i.test(p))) kept.unshift("private");
  return kept.join(", ");
}

/** A Vary value with `names` added once each, case-insensitively. */
function mergeVary(existing: string | null, names: readonly string[]): string {
  if (!existing) return names.join(", ");
  const parts = existing.split(",").map((p) => p.trim()).filter(Boolean);
  const seen = new Set(parts.map((p) => p.toLowerCase()));
  if (seen.has("*")) return existing;
  for (const name of names) if (!seen.has(name.toLowerCase())) parts.push(name);
  return parts.join(", ");
}
