/**
 * The session cookie: its attributes, checked once against what browsers accept; reading it
 * from a request without trusting it; and telling whether the request came over HTTPS.
 *
 * @module
 */

/** The session cookie's attributes. */
export interface CookieOptions {
  /**
   * The cookie's name. Generic on purpose (it tells nothing about the stack). A name starting with
   * `__Host-` needs `secure: true`, `path: "/"` and no `domain`; one starting with `__Secure-` needs
   * `secure: true` (browsers match both prefixes case-insensitively and drop cookies that break
   * them, so {@linkcode compileCookie} refuses such options).
   * @default {"__Host-session"} when secure with `path: "/"` and no domain, `"__Secure-session"`
   *   when secure otherwise, `"session"` when not secure
   */
  name?: string | undefined;
  /**
   * The `Domain` attribute; leave it unset (or `""`) so the cookie stays on the exact host.
   * @default {undefined}
   */
  domain?: string | undefined;
  /**
   * The `Path` attribute; it must start with `/`.
   * @default {"/"}
   */
  path?: string | undefined;
  /**
   * The `SameSite` attribute. `"None"` needs `secure: true`.
   * @default {"Lax"}
   */
  sameSite?: "Strict" | "Lax" | "None" | undefined;
  /**
   * The `Secure` attribute; `"auto"` sets it when the request came over HTTPS (see
   * {@linkcode requestIsSecure}). `"auto"` cannot be combined with a `__Host-`/`__Secure-` name,
   * `sameSite: "None"` or `partitioned`, which browsers accept only with `Secure`: use `true`
   * (browsers also keep `Secure` cookies from `http://localhost`).
   * @default {true}
   */
  secure?: boolean | "auto" | undefined;
  /**
   * The `HttpOnly` attribute.
   * @default {true}
   */
  httpOnly?: boolean | undefined;
  /**
   * The `Partitioned` attribute (CHIPS), for sessions inside third-party iframes; needs
   * `secure: true`.
   * @default {false}
   */
  partitioned?: boolean | undefined;
}

/** Cookie attributes resolved for one scheme; frozen, shared by every request. */
export interface ResolvedCookie {
  /** The cookie's name. */
  readonly name: string;
  /** The `Domain` attribute, or `undefined` for a host-only cookie. */
  readonly domain: string | undefined;
  /** The `Path` attribute. */
  readonly path: string;
  /** The `SameSite` attribute. */
  readonly sameSite: "Strict" | "Lax" | "None";
  /** Whether `Secure` is set. */
  readonly secure: boolean;
  /** Whether `HttpOnly` is set. */
  readonly httpOnly: boolean;
  /** Whether `Partitioned` is set. */
  readonly partitioned: boolean;
}

// RFC 6265 id characters for the name; attribute values may not break out of the attribute.
const NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// deno-lint-ignore no-control-regex
const ATTRIBUTE = /^[^\x00-\x1f\x7f;,]*$/;
// RFC 6265bis: browsers match the prefixes case-insensitively.
const HOST_PREFIX = /^__Host-/i;
const SECURE_PREFIX = /^__Secure-/i;
const SAME_SITE: readonly string[] = ["Strict", "Lax", "None"];
const SP = 0x20;
const HTAB = 0x09;
const DQUOTE = 0x22;
const EQUALS = 0x3d;

/**
 * Browsers cap a cookie (name + value) at 4096 bytes; {@linkcode readCookies} ignores anything
 * longer.
 *
 * @example
 * ```ts
 * import { MAX_COOKIE_BYTES, readCookies } from "./cookie.ts";
 *
 * console.assert(readCookies(`id=${"a".repeat(MAX_COOKIE_BYTES)}`, "id").length === 0);
 * ```
 */
export const MAX_COOKIE_BYTES = 4096;

/**
 * Checks cookie options once and returns the function that picks their resolved attributes for a
 * request. Call it when the options are read (once per options object), then call the result per
 * request with {@linkcode requestIsSecure}'s answer: it returns one of at most two frozen objects
 * computed up front, so a request costs no validation and no allocation. The options are copied:
 * changing the object afterwards has no effect.
 *
 * With `secure: true` or `false` the argument is ignored. With `secure: "auto"` it sets `Secure`,
 * and the default name follows it (`__Host-session` over HTTPS, `session` over HTTP).
 *
 * @param options The cookie options; every field has a default.
 * @returns `(secure) => ResolvedCookie`.
 * @throws {TypeError} For options a browser would refuse or that would corrupt the header: a name
 *   that is not an RFC 6265 id; a path not starting with `/`; a path or domain with `;`, `,` or a
 *   control character; an unknown `sameSite` or `secure`; a `__Host-` name without `secure: true`,
 *   `path: "/"` and no domain; a `__Secure-` name without `secure: true`; `sameSite: "None"` or
 *   `partitioned` without `secure: true`.
 * @example Resolve once, pick per request
 * ```ts
 * import { compileCookie, requestIsSecure, serializeCookie } from "./cookie.ts";
 *
 * const cookieFor = compileCookie({ secure: "auto" });
 * const request = new Request("http://localhost:8000/");
 * const cookie = cookieFor(requestIsSecure(request));
 * console.assert(cookie.name === "session" && cookieFor(true).name === "__Host-session");
 * console.assert(serializeCookie(cookie, "v", 60) === "session=v; Max-Age=60; Path=/; HttpOnly; SameSite=Lax");
 * ```
 * @example Options browsers would reject fail at once
 * ```ts
 * import { compileCookie } from "./cookie.ts";
 *
 * try {
 *   compileCookie({ name: "__Host-sid", domain: "example.com" });
 *   throw new Error("unreachable");
 * } catch (error) {
 *   console.assert(error instanceof TypeError);
 * }
 * ```
 */
export function compileCookie(options: CookieOptions = {}): (secure: boolean) => ResolvedCookie {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`Cannot use cookie options: expected an object, got ${describe(options)}`);
  }
  const { name, path = "/", sameSite = "Lax", secure = true, httpOnly = true, partitioned = false } = options;
  const domain = options.domain === "" ? undefined : options.domain;
  if (name !== undefined && (typeof name !== "string" || !NAME.test(name))) {
    throw new TypeError(`Cannot use cookie name ${describe(name)}: it must be RFC 6265 id characters`);
  }
  if (typeof path !== "string" || !path.startsWith("/") || !ATTRIBUTE.test(path)) {
    throw new TypeError(
      `Cannot use cookie path ${describe(path)}: it must start with "/" and hold no ";", "," or control character`,
    );
  }
  if (domain !== undefined && (typeof domain !== "string" || !ATTRIBUTE.test(domain))) {
    throw new TypeError(`Cannot use cookie domain ${describe(domain)}: it must hold no ";", "," or control character`);
  }
  if (!SAME_SITE.includes(sameSite)) {
    throw new TypeError(`Cannot use cookie sameSite ${describe(sameSite)}: it must be "Strict", "Lax" or "None"`);
  }
  if (secure !== true && secure !== false && secure !== "auto") {
    throw new TypeError(`Cannot use cookie secure ${describe(secure)}: it must be true, false or "auto"`);
  }
  for (const [field, value] of [["httpOnly", httpOnly], ["partitioned", partitioned]] as const) {
    if (typeof value !== "boolean") {
      throw new TypeError(`Cannot use cookie ${field} ${describe(value)}: it must be a boolean`);
    }
  }
  const insecure = secure === "auto" ? `secure is "auto", so it would lack Secure over HTTP` : "secure is false";
  if (name !== undefined && HOST_PREFIX.test(name)) {
    if (secure !== true) {
      throw new TypeError(
        `Cannot use cookie name ${describe(name)}: browsers require Secure for __Host- cookies and ${insecure}`,
      );
    }
    if (path !== "/") {
      throw new TypeError(
        `Cannot use cookie name ${describe(name)} with path ${
          describe(path)
        }: browsers require Path=/ for __Host- cookies`,
      );
    }
    if (domain !== undefined) {
      throw new TypeError(
        `Cannot use cookie name ${describe(name)} with domain ${
          describe(domain)
        }: browsers refuse a Domain on __Host- cookies`,
      );
    }
  } else if (name !== undefined && SECURE_PREFIX.test(name) && secure !== true) {
    throw new TypeError(
      `Cannot use cookie name ${describe(name)}: browsers require Secure for __Secure- cookies and ${insecure}`,
    );
  }
  if (sameSite === "None" && secure !== true) {
    throw new TypeError(`Cannot use cookie sameSite "None": browsers require Secure with it and ${insecure}`);
  }
  if (partitioned && secure !== true) {
    throw new TypeError(`Cannot use cookie partitioned true: browsers require Secure with it and ${insecure}`);
  }

  const resolve = (isSecure: boolean): ResolvedCookie =>
    Object.freeze({
      name: name ??
        (isSecure ? (path === "/" && domain === undefined ? "__Host-session" : "__Secure-session") : "session"),
      domain,
      path,
      sameSite,
      secure: isSecure,
      httpOnly,
      partitioned,
    });
  if (secure !== "auto") {
    const fixed = resolve(secure);
    return function cookieFor(): ResolvedCookie {
      return fixed;
    };
  }
  const overHttps = resolve(true);
  const overHttp = resolve(false);
  return function cookieFor(isSecure: boolean): ResolvedCookie {
    return isSecure ? overHttps : overHttp;
  };
}

/**
 * The values sent for a cookie name, in header order, at most `limit` of them: however many
 * cookies a request forges, the caller verifies at most `limit`.
 *
 * Parsing is strict on purpose. Pairs are split at `;`; a pair starts after any SP (browsers send
 * `"; "`), and any other leading character (a TAB, a no-break space, U+2000, U+FEFF…) is part of
 * the name. Names are compared code unit for code unit, after dropping only SP and HTAB before
 * `=`; so a cookie named `"\u2000__Host-session"` (which a sibling subdomain can plant, since it
 * does not carry the prefix) never matches `"__Host-session"`. Values lose only SP and HTAB at
 * either end, then one pair of surrounding double quotes; they are not percent-decoded (a session
 * value never needs it, and a broken escape must not throw). A pair without `=` is skipped, and so
 * is a cookie whose name and value are longer than {@linkcode MAX_COOKIE_BYTES} (counted in UTF-16
 * code units, which equal bytes for the ASCII values a session can have); skipped pairs do not
 * count toward `limit`.
 *
 * @param header The request's `Cookie` header.
 * @param name The cookie name.
 * @param limit The most values to return; a positive integer.
 * @returns The values, possibly empty.
 * @throws {RangeError} When `limit` is not a positive integer.
 * @example
 * ```ts
 * import { readCookies } from "./cookie.ts";
 *
 * const header = 'theme=dark; sid="a"; \u2000sid=planted; sid=b';
 * console.assert(readCookies(header, "sid").join() === "a,b");
 * console.assert(readCookies("sid=1; sid=2; sid=3", "sid", 2).join() === "1,2");
 * ```
 */
export function readCookies(header: string | null, name: string, limit: number = 4): string[] {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`Cannot read cookies: limit must be a positive integer, got ${limit}`);
  }
  const values: string[] = [];
  if (!header || !name) return values;
  for (let start = 0; start <= header.length && values.length < limit;) {
    let end = header.indexOf(";", start);
    if (end < 0) end = header.length;
    let i = start;
    while (i < end && header.charCodeAt(i) === SP) i++;
    // Only the bytes right after the name are looked at, so every pair costs O(name length) and a
    // header full of pairs without "=" is still read in linear time.
    if (i + name.length < end && header.startsWith(name, i)) {
      let eq = i + name.length;
      while (eq < end && isWsp(header.charCodeAt(eq))) eq++;
      if (eq < end && header.charCodeAt(eq) === EQUALS) {
        let from = eq + 1;
        let to = end;
        while (from < to && isWsp(header.charCodeAt(from))) from++;
        while (to > from && isWsp(header.charCodeAt(to - 1))) to--;
        if (to - from >= 2 && header.charCodeAt(from) === DQUOTE && header.charCodeAt(to - 1) === DQUOTE) {
          from++;
          to--;
        }
        if (name.length + to - from <= MAX_COOKIE_BYTES) values.push(header.slice(from, to));
      }
    }
    start = end + 1;
  }
  return values;
}

/**
 * A `Set-Cookie` header value.
 *
 * @param cookie Resolved attributes, from {@linkcode compileCookie}.
 * @param value The value (an id, possibly signed); `""` with `maxAge` 0 clears the cookie.
 * @param maxAge Seconds until the browser drops the cookie; floored, at least 0.
 * @returns The header value.
 * @example Clearing a cookie repeats its attributes
 * ```ts
 * import { compileCookie, serializeCookie } from "./cookie.ts";
 *
 * const cookie = compileCookie()(true);
 * console.assert(serializeCookie(cookie, "", 0) === "__Host-session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax");
 * ```
 */
export function serializeCookie(cookie: ResolvedCookie, value: string, maxAge: number): string {
  let out = `${cookie.name}=${value}; Max-Age=${Math.max(0, Math.floor(maxAge))}; Path=${cookie.path}`;
  if (cookie.domain) out += `; Domain=${cookie.domain}`;
  if (cookie.httpOnly) out += "; HttpOnly";
  if (cookie.secure) out += "; Secure";
  out += `; SameSite=${cookie.sameSite}`;
  if (cookie.partitioned) out += "; Partitioned";
  return out;
}

/**
 * Tells whether a request came over HTTPS: its URL's scheme, or, when `trustProxy` is set, what
 * the proxy in front says. Then the first value of `X-Forwarded-Proto` decides when present,
 * else the `proto` of the first element of `Forwarded` (RFC 7239, quoted or not), else the URL.
 * Only set `trustProxy` behind a proxy that overwrites these headers: otherwise a client chooses
 * the answer. Values are compared case-insensitively after dropping only SP and HTAB.
 *
 * @param request The incoming request.
 * @param trustProxy Believe `X-Forwarded-Proto` / `Forwarded`.
 * @returns `true` for HTTPS.
 * @example
 * ```ts
 * import { requestIsSecure } from "./cookie.ts";
 *
 * const request = new Request("http://10.0.0.5/", { headers: { "x-forwarded-proto": "https" } });
 * console.assert(requestIsSecure(request) === false);
 * console.assert(requestIsSecure(request, true) === true);
 * const forwarded = new Request("http://10.0.0.5/", { headers: { forwarded: 'for=192.0.2.60;proto="https"' } });
 * console.assert(requestIsSecure(forwarded, true) === true);
 * ```
 */
export function requestIsSecure(request: Request, trustProxy: boolean = false): boolean {
  if (trustProxy) {
    const forwardedProto = request.headers.get("x-forwarded-proto");
    const first = forwardedProto === null ? "" : trimWsp(forwardedProto.split(",", 1)[0]!);
    if (first) return HTTPS.test(first);
    const forwarded = request.headers.get("forwarded");
    const proto = forwarded === null ? null : protoOfForwarded(forwarded);
    if (proto) return HTTPS.test(proto);
  }
  return request.url.startsWith("https:");
}

// Without the `u` flag, /i folds no non-ASCII character onto an ASCII one (no "ſ" for "s").
const HTTPS = /^https$/i;

/**
 * The `proto` parameter of the first element of a `Forwarded` header, unquoted; `null` when that
 * element has none or does not parse.
 */
function protoOfForwarded(header: string): string | null {
  let i = 0;
  const n = header.length;
  for (;;) {
    while (i < n && isWsp(header.charCodeAt(i))) i++;
    const eq = header.indexOf("=", i);
    if (eq < 0) return null;
    const key = trimWsp(header.slice(i, eq));
    if (/[;,"]/.test(key)) return null;
    i = eq + 1;
    while (i < n && isWsp(header.charCodeAt(i))) i++;
    let value = "";
    if (header.charCodeAt(i) === DQUOTE) {
      for (i++;; i++) {
        if (i >= n) return null; // unterminated quoted-string
        const c = header[i]!;
        if (c === '"') break;
        if (c === "\\") i++;
        if (i < n) value += header[i]!;
      }
      i++;
    } else {
      const stop = header.slice(i).search(/[;,]/);
      const end = stop < 0 ? n : i + stop;
      value = header.slice(i, end);
      i = end;
    }
    if (key.toLowerCase() === "proto") return trimWsp(value);
    while (i < n && isWsp(header.charCodeAt(i))) i++;
    if (i >= n || header[i] === ",") return null; // the first element ended without a proto
    if (header[i] !== ";") return null;
    i++;
  }
}

function isWsp(code: number): boolean {
  return code === SP || code === HTAB;
}

/** Drops SP and HTAB at both ends, and nothing else (unlike `String.prototype.trim`). */
function trimWsp(text: string): string {
  let from = 0;
  let to = text.length;
  while (from < to && isWsp(text.charCodeAt(from))) from++;
  while (to > from && isWsp(text.charCodeAt(to - 1))) to--;
  return text.slice(from, to);
}

function describe(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}
