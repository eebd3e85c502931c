/**
 * The session cookie: its attributes, and reading it from a request without trusting it.
 *
 * @module
 */

/** The session cookie's attributes. */
export interface CookieOptions {
  /**
   * The cookie's name. Generic on purpose (it tells nothing about the stack).
   * @default {"__Host-session"} when secure with `path: "/"` and no domain, `"__Secure-session"`
   *   when secure otherwise, `"session"` when not secure
   */
  name?: string;
  /**
   * The `Domain` attribute; leave it unset so the cookie stays on the exact host.
   * @default {undefined}
   */
  domain?: string;
  /**
   * The `Path` attribute.
   * @default {"/"}
   */
  path?: string;
  /**
   * The `SameSite` attribute.
   * @default {"Lax"}
   */
  sameSite?: "Strict" | "Lax" | "None";
  /**
   * The `Secure` attribute; `"auto"` sets it when the request URL is `https:`.
   * @default {true}
   */
  secure?: boolean | "auto";
  /**
   * The `HttpOnly` attribute.
   * @default {true}
   */
  httpOnly?: boolean;
  /**
   * The `Partitioned` attribute (CHIPS), for sessions inside third-party iframes.
   * @default {false}
   */
  partitioned?: boolean;
}

/** Cookie attributes resolved for one request. */
export interface ResolvedCookie {
  name: string;
  domain: string | undefined;
  path: string;
  sameSite: "Strict" | "Lax" | "None";
  secure: boolean;
  httpOnly: boolean;
  partitioned: boolean;
}

// RFC 6265 token characters for the name; attribute values may not break out of the attribute.
const NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// deno-lint-ignore no-control-regex
const ATTRIBUTE = /^[^\x00-\x1f\x7f;,]*$/;
/** Browsers cap a cookie (name + value) at 4096 bytes; we ignore anything longer. */
export const MAX_COOKIE_BYTES = 4096;

/**
 * Applies defaults to cookie options for a request.
 *
 * @throws {TypeError} For a name or attribute that would corrupt the header.
 */
export function resolveCookie(options: CookieOptions = {}, requestSecure: boolean = true): ResolvedCookie {
  const secure = options.secure === "auto" ? requestSecure : options.secure ?? true;
  const path = options.path ?? "/";
  const domain = options.domain;
  const name = options.name ??
    (secure ? (path === "/" && domain === undefined ? "__Host-session" : "__Secure-session") : "session");
  if (!NAME.test(name)) throw new TypeError(`Cannot use cookie name ${JSON.stringify(name)}`);
  for (const [attr, value] of [["path", path], ["domain", domain ?? ""]] as const) {
    if (!ATTRIBUTE.test(value)) throw new TypeError(`Cannot use cookie ${attr} ${JSON.stringify(value)}`);
  }
  const sameSite = options.sameSite ?? "Lax";
  if (!["Strict", "Lax", "None"].includes(sameSite)) throw new TypeError(`Cannot use cookie sameSite ${JSON.stringify(sameSite)}`);
  return { name, domain, path, sameSite, secure, httpOnly: options.httpOnly ?? true, partitioned: options.partitioned ?? false };
}

/**
 * Every value sent for a cookie name, in header order. Values are not percent-decoded: a session
 * value never needs it, and a broken escape must not throw.
 *
 * @param header The request's `Cookie` header.
 * @param name The cookie name.
 * @returns The values, possibly empty.
 */
export function readCookies(header: string | null, name: string, limit: number = Infinity): string[] {
  if (!header) return [];
  const values: string[] = [];
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (name.length + value.length <= MAX_COOKIE_BYTES) values.push(value);
    if (values.length >= limit) break;
  }
  return values;
}

/**
 * A `Set-Cookie` header value.
 *
 * @param cookie Resolved attributes.
 * @param value The value (a token, possibly signed); `""` with `maxAge` 0 clears the cookie.
 * @param maxAge Seconds until the browser drops the cookie.
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
 * Whether a request arrived over HTTPS: its URL's scheme, or with `trustProxy` the first
 * `X-Forwarded-Proto` value or `Forwarded: proto=`.
 *
 * @param request The request.
 * @param trustProxy Believe the proxy headers.
 * @returns `true` for HTTPS.
 */
export function requestIsSecure(request: Request, trustProxy: boolean): boolean {
  if (trustProxy) {
    const forwarded = /(?:^|[;,\s])proto="?([A-Za-z]+)"?/i.exec(request.headers.get("forwarded") ?? "")?.[1] ??
      request.headers.get("x-forwarded-proto")?.split(",")[0]?.trim();
    if (forwarded) return forwarded.toLowerCase() === "https";
  }
  return request.url.startsWith("https:");
}
