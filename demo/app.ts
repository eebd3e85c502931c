// The demo's web app: one fetch handler, server-rendered HTML forms, no build step, web standards
// only. It gets its store from the caller (demo/database.ts), so the same app runs under Node
// (demo/main.ts) and Deno (demo/deno.ts).
//
//   GET  /                      the visit counter, a flash message, and the sign-in or sign-out form
//   GET  /session               what the session holds
//   GET  /sessions              "Your sessions": every session of the signed-in user
//   POST /sign-in               regenerate the session bound to the name, flash "Welcome"
//   POST /sign-out              destroy the session, flash "Signed out"
//   POST /sessions/revoke       sign out one other device (a handle from /sessions)
//   POST /sessions/revoke-others sign out everywhere else, keep this session
import { type PostgresStore, type RequestSession, type SessionError, type UserSession, withSession } from "../mod.ts";

/** What the demo keeps in a session. The user is not in here: it is bound with `regenerate({ user })`. */
export interface DemoData {
  visits: number;
  signedInAt: Date;
}

export interface DemoOptions {
  store: PostgresStore<DemoData>;
  /** Shown in the footer, e.g. "embedded PostgreSQL (PGlite) in .data/demo". */
  database: string;
  /** HMAC secrets for the cookie; the demo works without (the bare token is unguessable). */
  secrets?: readonly string[];
  /** Where failures are logged, one line each. Default: `console.error`. */
  log?: (line: string) => void;
}

type DemoSession = RequestSession<DemoData>;

const MAX_NAME_LENGTH = 40;
/** Handles are short opaque strings; anything longer is not one. */
const MAX_HANDLE_LENGTH = 200;

/** Builds the demo's fetch handler. */
export function createDemo(options: DemoOptions): (req: Request) => Promise<Response> {
  const log = options.log ?? console.error;
  return withSession<DemoData>(
    function demo(req: Request, session: DemoSession): Promise<Response> {
      return route(req, session, options);
    },
    {
      store: options.store,
      secrets: options.secrets,
      // Over plain http://localhost a Secure cookie would be refused by some browsers; "auto"
      // sets Secure (and the __Host- name) only when the request came over https.
      cookie: { secure: "auto" },
      onError: (error: SessionError, req: Request): Response => {
        log(
          `demo: ${req.method} ${new URL(req.url).pathname} answered 503: ${error.code}: ${error.message}${
            causeOf(error)
          }`,
        );
        return page("Database unavailable", failure(error), options, 503);
      },
    },
  );
}

async function route(req: Request, session: DemoSession, options: DemoOptions): Promise<Response> {
  const url = new URL(req.url);
  if (req.method === "POST" && !sameOrigin(req, url)) {
    return new Response("Forbidden: this form must be posted from the demo's own pages\n", {
      status: 403,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  }
  switch (`${req.method} ${url.pathname}`) {
    case "GET /":
    case "HEAD /":
      return home(req, session, options);
    case "GET /session":
    case "HEAD /session":
      return contents(req, session, options);
    case "GET /sessions":
    case "HEAD /sessions":
      return devices(req, session, options);
    case "POST /sign-in": {
      const form = await req.formData();
      const name = String(form.get("name") ?? "").trim();
      if (!name || name.length > MAX_NAME_LENGTH) {
        session.flash("error", `Please enter a name of 1 to ${MAX_NAME_LENGTH} characters`);
        return seeOther("/");
      }
      // A new id on every privilege change, against session fixation; the data (visits) stays.
      // The name becomes the session's user (a column, never in the cookie), so "Your sessions"
      // can find every session of that name; the label says which device this one is.
      // restart: the signed-in session's absolute lifetime counts from the sign-in, not from the
      // anonymous visit before it, and so does the "signed in" time that "Your sessions" shows.
      session.regenerate({ user: name, label: deviceLabel(req.headers.get("user-agent")), restart: true });
      session.set("signedInAt", new Date());
      session.flash("notice", `Welcome, ${name}! You are signed in.`);
      return seeOther("/");
    }
    case "POST /sign-out":
      // The row is deleted and the cookie cleared; the flash goes into a fresh session.
      session.destroy();
      session.flash("notice", "You are signed out. Your session was destroyed.");
      return seeOther("/");
    case "POST /sessions/revoke": {
      if (!(await session.user())) return signInFirst(session);
      const handle = (await req.formData()).get("handle");
      // revoke() ends only a session of this session's user: a handle of anyone else's is 0.
      const revoked = typeof handle === "string" && handle.length > 0 && handle.length <= MAX_HANDLE_LENGTH
        ? await session.revoke(handle)
        : 0;
      session.flash(
        revoked ? "notice" : "error",
        revoked
          ? "That device is signed out. Its next request starts a new, anonymous session."
          : "That session had already ended.",
      );
      return seeOther("/sessions");
    }
    case "POST /sessions/revoke-others": {
      if (!(await session.user())) return signInFirst(session);
      const revoked = await session.revokeOthers();
      session.flash(
        "notice",
        `Signed out everywhere else: ${revoked} other session${revoked === 1 ? "" : "s"} ended. This one stays.`,
      );
      return seeOther("/sessions");
    }
    default:
      if (["GET", "HEAD", "POST"].includes(req.method)) {
        return page("Not found", `<p>Nothing at ${escape(url.pathname)}.</p>`, options, 404);
      }
      return new Response("Method Not Allowed\n", { status: 405, headers: { allow: "GET, HEAD, POST" } });
  }
}

/**
 * CSRF defence: browsers send `Origin` on every form POST, and a cross-site page cannot forge
 * it. SameSite=Lax already keeps the cookie off cross-site POSTs; this check covers the rest
 * (same-site subdomains, older browsers).
 */
function sameOrigin(req: Request, url: URL): boolean {
  const origin = req.headers.get("origin");
  return origin !== null && origin === url.origin;
}

function signInFirst(session: DemoSession): Response {
  session.flash("error", "Sign in first to manage your sessions");
  return seeOther("/");
}

async function flashes(session: DemoSession): Promise<string> {
  const notice = await session.getFlash("notice");
  const error = await session.getFlash("error");
  return `${notice ? `<p class="flash notice" role="status">${escape(String(notice))}</p>` : ""}
${error ? `<p class="flash error" role="alert">${escape(String(error))}</p>` : ""}`;
}

async function home(req: Request, session: DemoSession, options: DemoOptions): Promise<Response> {
  const visits = ((await session.get("visits")) ?? 0) + 1;
  session.set("visits", visits);
  const user = await session.user();
  const secure = new URL(req.url).protocol === "https:";
  const body = `
${await flashes(session)}
${
    user
      ? `<p class="who">Signed in as <strong id="user">${
        escape(user)
      }</strong>. <a href="/sessions">Your sessions</a></p>
<form method="post" action="/sign-out"><button type="submit">Sign out</button></form>`
      : `<form method="post" action="/sign-in" class="sign-in">
  <label for="name">Your name</label>
  <input id="name" name="name" required maxlength="${MAX_NAME_LENGTH}" autocomplete="nickname" placeholder="Ada">
  <button type="submit">Sign in</button>
</form>`
  }
<p class="visits">You have opened this page <strong id="visits">${visits}</strong> time${
    visits === 1 ? "" : "s"
  } in this session.</p>
<p><a href="/session">See what the session holds</a></p>
<aside>
  <h2>About the cookie</h2>
  <p>${
    secure
      ? "This page came over https, so the cookie is <code>__Host-session</code> with <code>Secure; HttpOnly; SameSite=Lax; Path=/</code>."
      : 'This page came over plain http, so the cookie is <code>session</code> with <code>HttpOnly; SameSite=Lax; Path=/</code> and <em>without</em> <code>Secure</code> (<code>cookie: { secure: "auto" }</code>); over https it becomes <code>__Host-session</code> with <code>Secure</code>.'
  } It holds a random 256-bit token; the database stores only its SHA-256.</p>
</aside>`;
  return page("pgsession demo", body, options);
}

async function contents(_req: Request, session: DemoSession, options: DemoOptions): Promise<Response> {
  const entries = await session.entries();
  const user = await session.user();
  const rows = entries.map(([key, value]) =>
    `<tr><th scope="row"><code>${escape(key)}</code></th><td>${escape(describe(value))}</td></tr>`
  ).join("\n");
  const body = `
<h2>What the session holds</h2>
${
    entries.length
      ? `<table id="contents"><thead><tr><th>key</th><th>value</th></tr></thead><tbody>\n${rows}\n</tbody></table>`
      : `<p id="contents">Nothing yet: this is a new session.</p>`
  }
<p>User: ${
    user
      ? `<strong id="bound-user">${
        escape(user)
      }</strong>, in the table's <code>session_user_id</code> column (not in the data, never in the cookie)`
      : "none (anonymous)"
  }.</p>
<p>${
    session.isNew
      ? "No row is stored for this session yet."
      : `Stored in PostgreSQL; expires ${
        escape(session.expires?.toISOString() ?? "(unknown)")
      } (database clock, sliding).`
  }</p>
<p><a href="/">Back</a></p>`;
  return page("Session contents · pgsession demo", body, options);
}

/** "Your sessions": every live session of the signed-in user, with buttons to end them. */
async function devices(_req: Request, session: DemoSession, options: DemoOptions): Promise<Response> {
  const user = await session.user();
  if (!user) {
    return page(
      "Your sessions · pgsession demo",
      `${await flashes(
        session,
      )}<p id="not-signed-in">Sign in on the <a href="/">home page</a> to see where you are signed in.</p>`,
      options,
    );
  }
  // This device first, then the most recently active.
  const list = (await session.sessions()).sort((a, b) =>
    Number(b.current) - Number(a.current) || b.lastActive.getTime() - a.lastActive.getTime()
  );
  const now = Date.now();
  const others = list.filter((s) => !s.current).length;
  const rows = list.map((s) => row(s, now)).join("\n");
  const body = `
${await flashes(session)}
<h2>Your sessions</h2>
<p>Where <strong id="user">${
    escape(user)
  }</strong> is signed in. Anyone who signs in with the same name is the same user here: the demo has no passwords.</p>
<table id="sessions"><thead><tr><th>device</th><th>signed in (UTC)</th><th>last active (UTC)</th><th></th></tr></thead><tbody>
${rows}
</tbody></table>
${
    others
      ? `<form method="post" action="/sessions/revoke-others" class="revoke-others"><button type="submit">Sign out everywhere else</button></form>`
      : `<p id="only-session">This is your only session.</p>`
  }
<p class="note">"Last active" is approximate: a session's expiry moves forward at most every few minutes, not on every request.</p>
<p><a href="/">Back</a></p>`;
  return page("Your sessions · pgsession demo", body, options);
}

function row(s: UserSession, now: number): string {
  const label = escape(s.label ?? "Unknown device");
  // Every row's button says "Sign out": the row says which device. Screen readers, which may
  // announce the button alone, hear the device's name too.
  const action = s.current
    ? `<form method="post" action="/sign-out"><button type="submit">Sign out</button></form>`
    : `<form method="post" action="/sessions/revoke"><input type="hidden" name="handle" value="${
      escape(s.handle)
    }"><button type="submit" aria-label="Sign out ${label}">Sign out</button></form>`;
  return `<tr class="${s.current ? "current" : "other"}"><td class="label">${label}${
    s.current ? ` <strong class="this-device">(this device)</strong>` : ""
  }</td>` +
    `<td class="created" data-label="Signed in">${time(s.created, now)}</td>` +
    `<td class="last-active" data-label="Last active">${time(s.lastActive, now)}</td>` +
    `<td class="action">${action}</td></tr>`;
}

/** An instant in UTC to the minute, with how long ago it was. */
function time(date: Date, now: number): string {
  const iso = date.toISOString();
  // " UTC" is hidden where the column's header says it (CSS), and shown on a phone's cards.
  return `<time datetime="${iso}">${
    iso.slice(0, 16).replace("T", " ")
  }<span class="utc"> UTC</span></time> <span class="ago">(${ago(now - date.getTime())})</span>`;
}

function ago(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 1) return "just now";
  if (minutes < 120) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h ago` : `${Math.round(hours / 24)} days ago`;
}

/**
 * A short label for a session from its User-Agent, e.g. "Chrome on Linux": enough for a person
 * to recognise their own device, and nothing more (the full string would be stored for no use).
 */
export function deviceLabel(userAgent: string | null): string {
  const ua = userAgent ?? "";
  const browser = /Edg(e|A|iOS)?\//.test(ua)
    ? "Edge"
    : /OPR\/|Opera/.test(ua)
    ? "Opera"
    : /Firefox\/|FxiOS\//.test(ua)
    ? "Firefox"
    : /Chrom(e|ium)\/|CriOS\//.test(ua)
    ? "Chrome"
    : /Safari\//.test(ua)
    ? "Safari"
    : /^curl\//.test(ua)
    ? "curl"
    : "A browser";
  const system = /Android/.test(ua)
    ? "Android"
    : /iPhone|iPad|iPod/.test(ua)
    ? "iOS"
    : /Windows/.test(ua)
    ? "Windows"
    : /Mac OS X|Macintosh/.test(ua)
    ? "macOS"
    : /CrOS/.test(ua)
    ? "ChromeOS"
    : /Linux|X11/.test(ua)
    ? "Linux"
    : "";
  return system ? `${browser} on ${system}` : browser;
}

/** The error page's text: what the reader can do about it. */
function failure(error: SessionError): string {
  const code = (error.cause as { code?: string } | undefined)?.code;
  if (error.code === "MIGRATION_REQUIRED" || code === "42P01" || code === "42703") {
    return `<p class="error">The session table is missing or out of date (${
      escape(error.code)
    }). Run <code>npx pgsession migrate</code> against this database, then reload.</p>`;
  }
  return `<p class="error">The session store failed: ${escape(error.code)}. Try again later.</p>`;
}

/** The driver's error code and message, for the log line. */
function causeOf(error: SessionError): string {
  const cause = error.cause as { code?: string; message?: string } | undefined;
  if (!cause || typeof cause !== "object") return "";
  const message = String(cause.message ?? "").split("\n")[0]!;
  // The error's own message usually quotes the driver's already: then the code is what is new.
  const parts = [cause.code, error.message.includes(message) ? "" : message].filter(Boolean);
  return parts.length ? ` (cause: ${parts.join(" ")})` : "";
}

function describe(value: unknown): string {
  if (value instanceof Date) return `${value.toISOString()} (a Date, kept as a Date by CBOR)`;
  if (typeof value === "string") return JSON.stringify(value);
  return String(value);
}

function seeOther(location: string): Response {
  return new Response(null, { status: 303, headers: { location } });
}

function page(title: string, body: string, options: DemoOptions, status = 200): Response {
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #1d232a; }
  header { display: flex; align-items: baseline; gap: 1rem; border-bottom: 1px solid #d0d7de; margin-bottom: 1rem; }
  header h1 { font-size: 1.4rem; margin: 0.5rem 0; }
  .flash { padding: 0.6rem 0.9rem; border-radius: 6px; }
  .notice { background: #dafbe1; border: 1px solid #4ac26b; }
  .error { background: #ffebe9; border: 1px solid #ff8182; }
  form { margin: 1rem 0; display: flex; gap: 0.5rem; align-items: center; flex-wrap: wrap; }
  input { font: inherit; padding: 0.3rem 0.5rem; }
  button { font: inherit; padding: 0.3rem 0.9rem; cursor: pointer; white-space: nowrap; }
  aside { margin-top: 2rem; padding: 0.5rem 1rem; background: #f6f8fa; border-radius: 6px; font-size: 0.9rem; }
  aside h2 { font-size: 1rem; margin: 0.3rem 0; }
  table { border-collapse: collapse; } th, td { text-align: left; padding: 0.25rem 0.75rem; border-bottom: 1px solid #d0d7de; }
  td form { margin: 0; } time { white-space: nowrap; } .ago { display: block; color: #57606a; font-size: 0.85rem; }
  p { overflow-wrap: anywhere; }
  /* Your sessions: each cell a value with a small grey line under it, the table as wide as the text. */
  #sessions { width: 100%; }
  #sessions th, #sessions td { padding: 0.4rem 0.5rem; vertical-align: top; }
  #sessions th:first-child, #sessions td:first-child { padding-left: 0; }
  #sessions td.action { padding-right: 0; text-align: right; vertical-align: middle; }
  #sessions td.action form { justify-content: flex-end; }
  .this-device { display: block; color: #57606a; font-size: 0.85rem; font-weight: normal; }
  #sessions .utc { display: none; }
  /* Below the full column width four columns do not fit: each session is a card, device and button on top. */
  @media (max-width: 42rem) {
    #sessions thead { display: none; }
    #sessions, #sessions tbody { display: block; }
    #sessions tr { display: grid; grid-template-columns: 1fr auto; column-gap: 0.75rem; padding: 0.5rem 0; border-bottom: 1px solid #d0d7de; }
    #sessions td { display: block; padding: 0; border: 0; }
    #sessions td.created, #sessions td.last-active { grid-column: 1 / -1; }
    #sessions td.action { grid-column: 2; grid-row: 1; align-self: center; }
    #sessions td[data-label]::before { content: attr(data-label) " "; color: #57606a; }
    #sessions .ago, #sessions .utc { display: inline; }
  }
  footer { margin-top: 2rem; color: #57606a; font-size: 0.85rem; }
</style>
</head>
<body>
<header><h1>pgsession demo</h1><nav><a href="/">Home</a> · <a href="/session">Session contents</a> · <a href="/sessions">Your sessions</a></nav></header>
<main>${body}</main>
<footer>Sessions stored in ${escape(options.database)}.</footer>
</body>
</html>
`;
  return new Response(html, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      // No scripts at all; forms may only post back here.
      "content-security-policy":
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      "x-content-type-options": "nosniff",
      "referrer-policy": "same-origin",
    },
  });
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
