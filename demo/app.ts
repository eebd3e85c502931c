// The demo's web app: one fetch handler, server-rendered HTML forms, no build step, web standards
// only. It gets its store from the caller (demo/database.ts), so the same app runs under Node
// (demo/main.ts) and Deno (demo/deno.ts).
//
//   GET  /          the visit counter, a flash message, and the sign-in or sign-out form
//   GET  /session   what the session holds
//   POST /sign-in   regenerate the session, remember the name, flash "Welcome"
//   POST /sign-out  destroy the session, flash "Signed out"
import { type PostgresStore, type Session, SessionError, withSession } from "../mod.ts";

/** What the demo keeps in a session. */
export interface DemoData extends Record<string, unknown> {
  user: string;
  visits: number;
  signedInAt: Date;
}

export interface DemoOptions {
  store: PostgresStore<DemoData>;
  /** Shown in the footer, e.g. "embedded PostgreSQL (PGlite) in .data/demo". */
  database: string;
  /** HMAC secrets for the cookie; the demo works without (the bare token is unguessable). */
  secrets?: readonly string[];
}

const MAX_NAME_LENGTH = 40;

/** Builds the demo's fetch handler. */
export function createDemo(options: DemoOptions): (req: Request) => Promise<Response> {
  return withSession<DemoData, []>(
    function demo(req: Request, session: Session<DemoData>): Promise<Response> {
      return route(req, session, options);
    },
    {
      store: options.store,
      secrets: options.secrets,
      // Over plain http://localhost a Secure cookie would be refused by some browsers; "auto"
      // sets Secure (and the __Host- name) only when the request came over https.
      cookie: { secure: "auto" },
      onError: (error: SessionError): Response =>
        page("Database unavailable", `<p class="error">The session store failed: ${escape(error.code)}. Try again later.</p>`, options, 503),
    },
  );
}

async function route(req: Request, session: Session<DemoData>, options: DemoOptions): Promise<Response> {
  const url = new URL(req.url);
  if (req.method === "POST" && !sameOrigin(req, url)) {
    return new Response("Forbidden: this form must be posted from the demo's own pages\n", { status: 403, headers: { "content-type": "text/plain; charset=utf-8" } });
  }
  switch (`${req.method} ${url.pathname}`) {
    case "GET /":
    case "HEAD /":
      return home(req, session, options);
    case "GET /session":
    case "HEAD /session":
      return contents(req, session, options);
    case "POST /sign-in": {
      const form = await req.formData();
      const name = String(form.get("name") ?? "").trim();
      if (!name || name.length > MAX_NAME_LENGTH) {
        session.flash("error", `Please enter a name of 1 to ${MAX_NAME_LENGTH} characters`);
        return seeOther("/");
      }
      // A new id on every privilege change, against session fixation; the data (visits) stays.
      session.regenerate();
      session.set("user", name);
      session.set("signedInAt", new Date());
      session.flash("notice", `Welcome, ${name}! You are signed in.`);
      return seeOther("/");
    }
    case "POST /sign-out":
      // The row is deleted and the cookie cleared; the flash goes into a fresh session.
      session.destroy();
      session.flash("notice", "You are signed out. Your session was destroyed.");
      return seeOther("/");
    default:
      if (["GET", "HEAD", "POST"].includes(req.method)) return page("Not found", `<p>Nothing at ${escape(url.pathname)}.</p>`, options, 404);
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

async function home(req: Request, session: Session<DemoData>, options: DemoOptions): Promise<Response> {
  const visits = ((await session.get("visits")) ?? 0) + 1;
  session.set("visits", visits);
  const user = await session.get("user");
  const notice = await session.getFlash("notice");
  const error = await session.getFlash("error");
  const secure = new URL(req.url).protocol === "https:";
  const body = `
${notice ? `<p class="flash notice" role="status">${escape(String(notice))}</p>` : ""}
${error ? `<p class="flash error" role="alert">${escape(String(error))}</p>` : ""}
${
    user
      ? `<p class="who">Signed in as <strong id="user">${escape(user)}</strong>.</p>
<form method="post" action="/sign-out"><button type="submit">Sign out</button></form>`
      : `<form method="post" action="/sign-in" class="sign-in">
  <label for="name">Your name</label>
  <input id="name" name="name" required maxlength="${MAX_NAME_LENGTH}" autocomplete="nickname" placeholder="Ada">
  <button type="submit">Sign in</button>
</form>`
  }
<p class="visits">You have opened this page <strong id="visits">${visits}</strong> time${visits === 1 ? "" : "s"} in this session.</p>
<p><a href="/session">See what the session holds</a></p>
<aside>
  <h2>About the cookie</h2>
  <p>${
    secure
      ? "This page came over https, so the cookie is <code>__Host-session</code> with <code>Secure; HttpOnly; SameSite=Lax; Path=/</code>."
      : "This page came over plain http, so the cookie is <code>session</code> with <code>HttpOnly; SameSite=Lax; Path=/</code> and <em>without</em> <code>Secure</code> (<code>cookie: { secure: \"auto\" }</code>); over https it becomes <code>__Host-session</code> with <code>Secure</code>."
  } It holds a random 256-bit token; the database stores only its SHA-256.</p>
</aside>`;
  return page("pgsession demo", body, options);
}

async function contents(_req: Request, session: Session<DemoData>, options: DemoOptions): Promise<Response> {
  const entries = await session.entries();
  const rows = entries.map(([key, value]) => `<tr><th scope="row"><code>${escape(key)}</code></th><td>${escape(describe(value))}</td></tr>`).join("\n");
  const body = `
<h2>What the session holds</h2>
${entries.length ? `<table id="contents"><thead><tr><th>key</th><th>value</th></tr></thead><tbody>\n${rows}\n</tbody></table>` : `<p id="contents">Nothing yet: this is a new session.</p>`}
<p>${session.isNew ? "No row is stored for this session yet." : `Stored in PostgreSQL; expires ${escape(session.expires?.toISOString() ?? "(unknown)")} (database clock, sliding).`}</p>
<p><a href="/">Back</a></p>`;
  return page("Session contents · pgsession demo", body, options);
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
  button { font: inherit; padding: 0.3rem 0.9rem; cursor: pointer; }
  aside { margin-top: 2rem; padding: 0.5rem 1rem; background: #f6f8fa; border-radius: 6px; font-size: 0.9rem; }
  aside h2 { font-size: 1rem; margin: 0.3rem 0; }
  table { border-collapse: collapse; } th, td { text-align: left; padding: 0.25rem 0.75rem; border-bottom: 1px solid #d0d7de; }
  footer { margin-top: 2rem; color: #57606a; font-size: 0.85rem; }
</style>
</head>
<body>
<header><h1>pgsession demo</h1><nav><a href="/">Home</a> · <a href="/session">Session contents</a></nav></header>
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
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      "x-content-type-options": "nosniff",
      "referrer-policy": "same-origin",
    },
  });
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
