// The demo (`npm start`) driven in a real browser: Debian's Chromium through playwright-core.
// The demo runs as a child process on a free port with its embedded PostgreSQL (PGlite) in a
// temporary folder, exactly as a user starts it, only with PORT=0 and DEMO_DATA_DIR set.
// "Your sessions" is driven from two browsers signed in with the same name (one of them claims to
// be Firefox on Windows). A second suite starts the demo the ways it must fail politely: a port in
// use (Node and Deno), DATABASE_URL without the table, and the database going down while it runs.
//
// Node only: `node --import tsx --test tests/browser.test.ts`. Chromium is installed with
// apt-get when /usr/bin/chromium is missing (.ci/run does the same on a fresh machine).
// A screenshot of each page lands in tests/.artifacts/ (git-ignored).
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { databaseUrl, dbSkip, randomSchema } from "./_db.ts";

const IN_DENO = "Deno" in globalThis;
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const ARTIFACTS = join(ROOT, "tests/.artifacts");
const CHROMIUM = "/usr/bin/chromium";
// Without the background-networking flags Chromium keeps dialing Google on this closed network.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
// The cookie lives until the absolute deadline (30 days by default), fixed when the id is issued.
const THIRTY_DAYS_S = 30 * 24 * 3600;
const FIREFOX_ON_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
const VIEWPORT = { width: 900, height: 700 };
/** A laptop window and a phone (an iPhone 12 to 15 is 390 CSS pixels wide). */
const WIDE = { width: 1200, height: 800 };
const PHONE = { width: 390, height: 844 };

/** Installs Debian's Chromium when it is missing (the test machine is root with apt). */
function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  console.log(`browser.test: ${CHROMIUM} is missing; installing Debian's chromium with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  execFileSync("apt-get", ["install", "-y", "-qq", "chromium"], { stdio: "inherit", env });
  assert.ok(existsSync(CHROMIUM), `apt-get install chromium did not provide ${CHROMIUM}`);
}

interface Demo {
  url: string;
  output(): string;
  stop(): Promise<number | null>;
}

/**
 * The demo's command and environment: `node --import tsx demo/main.ts` (what `npm start` runs) or
 * `deno run -A demo/deno.ts` (`deno task start`), on PORT=0 with PGlite in `dataDir` unless
 * `overrides` say otherwise.
 */
function demoCommand(dataDir: string, overrides: Record<string, string> = {}, runtime: "node" | "deno" = "node") {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: "0", DEMO_DATA_DIR: dataDir };
  // The test command exports DATABASE_URL for the other suites; the demo uses PGlite unless told.
  delete env.DATABASE_URL;
  delete env.SESSION_SECRET;
  Object.assign(env, overrides);
  const [command, args] = runtime === "node"
    ? [process.execPath, ["--import", "tsx", "demo/main.ts"]]
    : [join(ROOT, "node_modules/.bin/deno"), ["run", "-A", "demo/deno.ts"]];
  return {
    command,
    args,
    options: { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] as ["ignore", "pipe", "pipe"] },
  };
}

/** Runs the demo until it exits by itself (a start-up failure): its exit code and output. */
function runDemoToExit(
  dataDir: string,
  overrides: Record<string, string>,
  runtime: "node" | "deno" = "node",
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { command, args, options } = demoCommand(dataDir, overrides, runtime);
  const child = spawn(command, args, options);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  // A demo that listened after all is a failure of the test: do not leave it running.
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts the demo and waits for its startup line. */
function startDemo(dataDir: string, overrides: Record<string, string> = {}): Promise<Demo> {
  const { command, args, options } = demoCommand(dataDir, overrides);
  const child: ChildProcess = spawn(command, args, options);
  let output = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    const code = await exited;
    clearTimeout(killer);
    return code;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`the demo printed no URL within 60 s:\n${output}`));
    }, 60_000);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the demo exited with ${code} before listening:\n${output}`));
    });
    child.stdout!.on("data", () => {
      const match = /open (http:\/\/\S+?)\/?$/m.exec(output);
      if (!match) return;
      clearTimeout(timer);
      resolve({ url: match[1]!, output: () => output, stop });
    });
  });
}

describe("demo in Chromium", { skip: IN_DENO && "runs under Node only (it drives Chromium)" }, () => {
  // playwright-core types, loaded lazily so Deno's test run never imports it.
  let pw: typeof import("playwright-core");
  let context: import("playwright-core").BrowserContext;
  let page: import("playwright-core").Page;
  // The second device: another browser process, announcing itself as Firefox on Windows.
  let browser: import("playwright-core").Browser;
  let other: import("playwright-core").BrowserContext;
  let otherPage: import("playwright-core").Page;
  let demo: Demo;
  let tmp: string;
  let dataDir: string;
  let cookieBeforeSignIn: string;
  let malloryToken: string;

  const sessionCookie = async (from = context) => {
    const cookies = await from.cookies(demo.url);
    return cookies.find((c) => c.name === "session");
  };
  const visits = async (on = page) => Number(await on.locator("#visits").textContent());
  const signIn = async (on: import("playwright-core").Page, name: string) => {
    await on.goto(demo.url + "/");
    await on.fill("#name", name);
    await Promise.all([on.waitForURL(demo.url + "/"), on.click("form.sign-in button")]);
    assert.equal(await on.locator("#user").textContent(), name);
  };
  const openSessions = async (on: import("playwright-core").Page) => {
    await on.goto(demo.url + "/sessions");
    return on.locator("#sessions tbody tr");
  };
  /**
   * How far the page and the sessions table stick out sideways (0 when they fit), and every piece
   * of text in the device cells with the number of lines it is drawn on.
   */
  const layout = (on: import("playwright-core").Page) =>
    on.evaluate(() => {
      const root = document.documentElement;
      const table = document.querySelector<HTMLElement>("#sessions")!;
      const container = table.parentElement!;
      const texts: Record<string, number> = {};
      for (const cell of table.querySelectorAll("td.label")) {
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
          const text = node.textContent!.trim();
          if (!text) continue;
          const range = document.createRange();
          range.selectNodeContents(node);
          const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
          texts[text] = tops.size;
        }
      }
      return {
        page: Math.max(0, root.scrollWidth - root.clientWidth),
        table: Math.max(0, Math.max(table.offsetWidth, table.scrollWidth) - container.clientWidth),
        texts,
      };
    });

  before(async () => {
    ensureChromium();
    pw = await import("playwright-core");
    tmp = await mkdtemp(join(tmpdir(), "pgsession-browser-"));
    dataDir = join(tmp, "data");
    await mkdir(ARTIFACTS, { recursive: true });
    demo = await startDemo(dataDir);
    // A fresh, empty --user-data-dir for every run.
    context = await pw.chromium.launchPersistentContext(join(tmp, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: VIEWPORT,
    });
    page = context.pages()[0] ?? (await context.newPage());
    browser = await pw.chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    other = await browser.newContext({ userAgent: FIREFOX_ON_WINDOWS, viewport: VIEWPORT });
    otherPage = await other.newPage();
  });

  after(async () => {
    await context?.close();
    await other?.close();
    await browser?.close();
    await demo?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test("the startup line names the embedded database and a localhost URL", () => {
    assert.match(
      demo.output(),
      /sessions in embedded PostgreSQL \(PGlite\) in .*pgsession-browser-.*\/data; open http:\/\/localhost:\d+\//,
    );
  });

  test("a first visit shows the sign-in form and counts one visit", async () => {
    const response = await page.goto(demo.url + "/");
    assert.equal(response?.status(), 200);
    assert.equal(await page.title(), "pgsession demo");
    assert.equal(await visits(), 1);
    assert.equal(await page.locator("form.sign-in").count(), 1);
    assert.equal(await page.locator(".flash").count(), 0);
    await page.screenshot({ path: join(ARTIFACTS, "demo-first-page.png"), fullPage: true });
    const cookie = await sessionCookie();
    assert.ok(cookie, "the browser holds a session cookie after the first visit");
    cookieBeforeSignIn = cookie.value;
  });

  test("each reload counts a visit in the same session", async () => {
    await page.reload();
    assert.equal(await visits(), 2);
    await page.reload();
    assert.equal(await visits(), 3);
    assert.equal((await sessionCookie())?.value, cookieBeforeSignIn);
  });

  test("signing in regenerates the session, keeps the count and flashes a welcome once", async () => {
    await page.fill("#name", "Ada <Lovelace>");
    await Promise.all([page.waitForURL(demo.url + "/"), page.click("form.sign-in button")]);
    assert.equal(await page.locator("#user").textContent(), "Ada <Lovelace>");
    assert.equal(await page.locator(".flash.notice").textContent(), "Welcome, Ada <Lovelace>! You are signed in.");
    assert.equal(await visits(), 4);
    const cookie = await sessionCookie();
    assert.ok(cookie);
    assert.notEqual(cookie.value, cookieBeforeSignIn, "sign-in gives the session a new id");
    await page.screenshot({ path: join(ARTIFACTS, "demo-signed-in.png"), fullPage: true });

    await page.reload();
    assert.equal(await page.locator(".flash").count(), 0, "the flash is shown once");
    assert.equal(await page.locator("#user").textContent(), "Ada <Lovelace>");
    assert.equal(await visits(), 5);
  });

  test("the browser holds the cookie as HttpOnly, SameSite=Lax, Path=/, not Secure over http, expiring at the 30-day absolute deadline", async () => {
    const cookie = await sessionCookie();
    assert.ok(cookie);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Lax");
    assert.equal(cookie.path, "/");
    assert.equal(cookie.secure, false, 'secure: "auto" leaves Secure off over plain http');
    assert.match(cookie.value, /^[A-Za-z0-9_-]{43}$/);
    const now = Date.now() / 1000;
    assert.ok(cookie.expires > now, `expires ${cookie.expires} is in the future`);
    assert.ok(
      Math.abs(cookie.expires - (now + THIRTY_DAYS_S)) < 120,
      `expires ${cookie.expires} is about 30 days away`,
    );
    // HttpOnly: the page's scripts cannot read it.
    assert.equal(await page.evaluate(() => document.cookie), "");
  });

  test("the session page lists what the session holds, and the user bound outside the data", async () => {
    await page.click("text=See what the session holds");
    await page.waitForURL(demo.url + "/session");
    const table = page.locator("#contents");
    assert.equal(await table.locator("tbody tr").count(), 2);
    assert.equal(await page.locator("#bound-user").textContent(), "Ada <Lovelace>");
    assert.equal(await table.locator("tr", { hasText: "visits" }).locator("td").textContent(), "5");
    assert.match(
      await table.locator("tr", { hasText: "signedInAt" }).locator("td").textContent() ?? "",
      /^\d{4}-\d\d-\d\dT.*Z \(a Date/,
    );
    await page.screenshot({ path: join(ARTIFACTS, "demo-session.png"), fullPage: true });
  });

  test("a POST from another origin is refused and changes nothing", async () => {
    const response = await context.request.post(demo.url + "/sign-out", { headers: { origin: "http://evil.example" } });
    assert.equal(response.status(), 403);
    const missing = await context.request.post(demo.url + "/sign-out", { headers: { origin: "" } });
    assert.equal(missing.status(), 403);
    await page.goto(demo.url + "/");
    assert.equal(await page.locator("#user").textContent(), "Ada <Lovelace>", "still signed in");
  });

  test("signing out destroys the session and flashes once", async () => {
    const signedIn = (await sessionCookie())!.value;
    await Promise.all([page.waitForURL(demo.url + "/"), page.click("text=Sign out")]);
    assert.equal(await page.locator(".flash.notice").textContent(), "You are signed out. Your session was destroyed.");
    assert.equal(await page.locator("#user").count(), 0);
    assert.equal(await page.locator("form.sign-in").count(), 1);
    assert.equal(await visits(), 1, "a new session counts from one");
    const cookie = await sessionCookie();
    assert.ok(cookie);
    assert.notEqual(cookie.value, signedIn);
    await page.reload();
    assert.equal(await page.locator(".flash").count(), 0);
    assert.equal(await visits(), 2);
  });

  test("a second device signed in with the same name is listed in Your sessions with its label and times", async () => {
    // The first browser holds an anonymous session from the sign-out before; it signs in later.
    await page.goto(demo.url + "/");
    assert.ok(await sessionCookie(), "an anonymous session before the sign-in");
    const anonymousBy = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const signInFrom = Date.now();
    await signIn(page, "Grace");
    const signInBy = Date.now();
    await signIn(otherPage, "Grace");
    await page.click("p.who >> text=Your sessions");
    await page.waitForURL(demo.url + "/sessions");
    const rows = page.locator("#sessions tbody tr");
    assert.equal(await rows.count(), 2);
    assert.equal(await page.locator("#sessions tr.current .label").textContent(), "Chrome on Linux (this device)");
    assert.equal(await page.locator("#sessions tr.other .label").textContent(), "Firefox on Windows");
    for (const cell of await page.locator("#sessions td.created, #sessions td.last-active").all()) {
      assert.match(await cell.textContent() ?? "", /^\d{4}-\d\d-\d\d \d\d:\d\d UTC \((just now|\d+ min ago)\)$/);
    }
    // "Signed in" is the sign-in, 1.5 s after the anonymous session began, not that session's start.
    const signedIn = Date.parse(
      await page.locator("#sessions tr.current td.created time").getAttribute("datetime") ?? "",
    );
    assert.ok(
      signedIn >= signInFrom - 250 && signedIn <= signInBy + 250,
      `signed in at ${new Date(signedIn).toISOString()}: not within the sign-in, ${
        new Date(signInFrom).toISOString()
      } to ${new Date(signInBy).toISOString()} (the anonymous session existed by ${
        new Date(anonymousBy).toISOString()
      })`,
    );
    // The other row's button signs out that device, not this one; its accessible name says which.
    assert.equal(await page.locator("#sessions tr.other button").textContent(), "Sign out");
    assert.equal(await page.getByRole("button", { name: "Sign out Firefox on Windows" }).count(), 1);
    assert.equal(await page.locator("form.revoke-others button").count(), 1);
    await page.screenshot({ path: join(ARTIFACTS, "demo-your-sessions.png"), fullPage: true });

    const fromOther = await openSessions(otherPage);
    assert.equal(await fromOther.count(), 2);
    assert.equal(
      await otherPage.locator("#sessions tr.current .label").textContent(),
      "Firefox on Windows (this device)",
    );
  });

  test("Your sessions fits a 1200 px window and a 390 px phone: no sideways scroll, no device name broken over lines", async () => {
    try {
      for (const viewport of [WIDE, PHONE]) {
        await page.setViewportSize(viewport);
        assert.equal(await (await openSessions(page)).count(), 2);
        await page.screenshot({ path: join(ARTIFACTS, `demo-your-sessions-${viewport.width}.png`), fullPage: true });
        const { page: pageOverflow, table: tableOverflow, texts } = await layout(page);
        assert.deepEqual(
          { pageOverflow, tableOverflow },
          { pageOverflow: 0, tableOverflow: 0 },
          `at ${viewport.width} px, pixels sticking out sideways`,
        );
        assert.deepEqual(
          texts,
          { "Chrome on Linux": 1, "(this device)": 1, "Firefox on Windows": 1 },
          `at ${viewport.width} px, lines each text of the device column is drawn on`,
        );
      }
    } finally {
      await page.setViewportSize(VIEWPORT);
    }
  });

  test("signing out the other device from Your sessions signs it out on its next load", async () => {
    const before = (await sessionCookie(other))!.value;
    await page.goto(demo.url + "/sessions");
    await Promise.all([page.waitForURL(demo.url + "/sessions"), page.click("#sessions tr.other button")]);
    assert.match(await page.locator(".flash.notice").textContent() ?? "", /^That device is signed out/);
    assert.equal(await page.locator("#sessions tbody tr").count(), 1);
    assert.equal(await page.locator("#only-session").count(), 1);

    await otherPage.goto(demo.url + "/");
    assert.equal(await otherPage.locator("#user").count(), 0, "the revoked device is signed out");
    assert.equal(await otherPage.locator("form.sign-in").count(), 1);
    assert.equal(await visits(otherPage), 1, "its next request is a fresh session");
    assert.notEqual((await sessionCookie(other))!.value, before, "with a new id");
    await otherPage.screenshot({ path: join(ARTIFACTS, "demo-revoked-device.png"), fullPage: true });

    await page.goto(demo.url + "/");
    assert.equal(await page.locator("#user").textContent(), "Grace", "the device that revoked stays signed in");
  });

  test("sign out everywhere else signs out the other device and keeps this one", async () => {
    await signIn(otherPage, "Grace");
    assert.equal(await (await openSessions(page)).count(), 2);
    await Promise.all([page.waitForURL(demo.url + "/sessions"), page.click("form.revoke-others button")]);
    assert.equal(
      await page.locator(".flash.notice").textContent(),
      "Signed out everywhere else: 1 other session ended. This one stays.",
    );
    assert.equal(await page.locator("#sessions tbody tr").count(), 1);
    assert.equal(await page.locator("#sessions tr.current .label").textContent(), "Chrome on Linux (this device)");
    await page.screenshot({ path: join(ARTIFACTS, "demo-signed-out-everywhere-else.png"), fullPage: true });

    await otherPage.goto(demo.url + "/");
    assert.equal(await otherPage.locator("#user").count(), 0, "the other device is signed out");
    assert.equal(await visits(otherPage), 1);
    await page.goto(demo.url + "/");
    assert.equal(await page.locator("#user").textContent(), "Grace");
  });

  test("a handle of another user's session revokes nothing, and a cross-origin revoke is refused", async () => {
    await signIn(otherPage, "Grace");
    // The handle of the first browser's session, as Grace's second device sees it.
    await openSessions(otherPage);
    const handle = await otherPage.locator("#sessions tr.other input[name=handle]").getAttribute("value");
    assert.ok(handle);
    assert.doesNotMatch(handle, new RegExp((await sessionCookie())!.value), "a handle is not the cookie");

    const mallory = await browser.newContext({ viewport: VIEWPORT });
    try {
      await signIn(await mallory.newPage(), "Mallory");
      const response = await mallory.request.post(demo.url + "/sessions/revoke", {
        form: { handle },
        headers: { origin: demo.url },
      });
      assert.equal(response.status(), 200);
      assert.match(await response.text(), /That session had already ended/);
      const forged = await other.request.post(demo.url + "/sessions/revoke-others", {
        headers: { origin: "http://evil.example" },
      });
      assert.equal(forged.status(), 403);
      malloryToken = (await sessionCookie(mallory))!.value;
    } finally {
      await mallory.close();
    }
    await page.goto(demo.url + "/");
    assert.equal(await page.locator("#user").textContent(), "Grace", "still signed in");
    assert.equal(await (await openSessions(page)).count(), 2, "both of Grace's sessions are still there");
  });

  test("after the demo stops, its data folder holds exactly the browsers' live sessions", async () => {
    const tokens = [(await sessionCookie())!.value, (await sessionCookie(other))!.value, malloryToken];
    assert.equal(await demo.stop(), 0, "the demo exits cleanly on SIGTERM");
    const { PGlite } = await import("@electric-sql/pglite");
    const db = await PGlite.create(dataDir);
    try {
      const { rows } = await db.query<{ session_key: string; session_user_id: string | null }>(
        `SELECT session_key, session_user_id FROM "session" ORDER BY session_key`,
      );
      const expected = tokens.map((t) => createHash("sha256").update(t).digest("hex"));
      assert.deepEqual(rows.map((r) => r.session_key.trim()).sort(), expected.sort());
      assert.deepEqual(rows.map((r) => r.session_user_id).sort(), ["Grace", "Grace", "Mallory"]);
    } finally {
      await db.close();
    }
  });
});

/** A TCP relay to PostgreSQL that the test can cut and restore: the database "goes down". */
interface Relay {
  port: number;
  /** Refuses new connections and drops the open ones. */
  cut(): Promise<void>;
  /** Accepts connections again, on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

async function startRelay(target: URL): Promise<Relay> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, "127.0.0.1", () => resolve()));
  const cut = async () => {
    const closed = new Promise((resolve) => server.close(resolve));
    for (const s of sockets) s.destroy();
    await closed;
  };
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  return { port, cut, restore: () => listen(port), close: () => (server.listening ? cut() : Promise.resolve()) };
}

/** The one session cookie of a response, as `name=value` for the next request. */
function cookieOf(response: Response): string {
  const cookie = response.headers.getSetCookie().find((c) => c.startsWith("session="));
  assert.ok(cookie, `a session cookie in ${JSON.stringify(response.headers.getSetCookie())}`);
  return cookie.split(";")[0]!;
}

describe("demo start-up and failures", {
  skip: IN_DENO ? "runs under Node only (it drives the demo as child processes)" : dbSkip,
}, () => {
  let tmp: string;
  let admin: pg.Pool;
  let relay: Relay;
  let schema: string;
  /** DATABASE_URL for the demo: through the relay, with the session table looked up in `schema` only. */
  let url: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "pgsession-demo-start-"));
    const target = new URL(databaseUrl());
    admin = new pg.Pool({ connectionString: target.toString(), max: 1 });
    schema = randomSchema("demo_test");
    await admin.query(`CREATE SCHEMA ${schema}`);
    relay = await startRelay(target);
    const through = new URL(target);
    through.hostname = "127.0.0.1";
    through.port = String(relay.port);
    through.searchParams.set("options", `-c search_path=${schema}`);
    url = through.toString();
  });

  after(async () => {
    await relay?.close();
    await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin?.end();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  for (const runtime of ["node", "deno"] as const) {
    test(`a port in use is one line and exit 1 before the database folder is created (${runtime})`, async () => {
      const blocker = net.createServer();
      await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
      const port = (blocker.address() as net.AddressInfo).port;
      const dataDir = join(tmp, `unused-${runtime}`);
      try {
        const result = await runDemoToExit(dataDir, { PORT: String(port) }, runtime);
        assert.equal(result.code, 1, result.stderr);
        assert.equal(result.stdout, "");
        assert.match(
          result.stderr,
          new RegExp(
            `^pgsession demo: Cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use; .*PORT=0: any free port\\)\\n$`,
          ),
        );
        assert.equal(existsSync(dataDir), false, "nothing touched the database folder");
      } finally {
        await new Promise((resolve) => blocker.close(resolve));
      }
    });
  }

  test("DATABASE_URL without the session table stops with one line saying to run npx pgsession migrate, and creates nothing", async () => {
    const result = await runDemoToExit(join(tmp, "unused"), { DATABASE_URL: url });
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      /^pgsession demo: The database in DATABASE_URL \(127\.0\.0\.1:\d+\) has no "session" table; create it with `npx pgsession migrate` .*\n$/,
    );
    const { rows } = await admin.query(`SELECT to_regclass($1) AS t`, [`${schema}.session`]);
    assert.equal(rows[0].t, null, "the demo never changes the schema of a database it was given");
  });

  test("DATABASE_URL with a table from before the user columns stops with one line saying to run npx pgsession migrate", async () => {
    const old = `${schema}_old`;
    await admin.query(`CREATE SCHEMA ${old}`);
    try {
      await admin.query(
        `CREATE TABLE ${old}.session (session_key char(64) PRIMARY KEY, session_data bytea, session_expiry timestamp NOT NULL)`,
      );
      const oldUrl = new URL(url);
      oldUrl.searchParams.set("options", `-c search_path=${old}`);
      const result = await runDemoToExit(join(tmp, "unused"), { DATABASE_URL: oldUrl.toString() });
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stderr,
        /^pgsession demo: The "session" table in DATABASE_URL \(127\.0\.0\.1:\d+\) lacks a column the demo uses \(column "session_user_id" does not exist\); add it with `npx pgsession migrate`, which keeps every session\n$/,
      );
    } finally {
      await admin.query(`DROP SCHEMA ${old} CASCADE`);
    }
  });

  test("after pgsession migrate the demo runs on DATABASE_URL; a database outage is a logged 503, and it recovers", async () => {
    const migrated = spawn(process.execPath, ["--import", "tsx", "cli/pgsession.ts", "migrate", "--url", url], {
      cwd: ROOT,
      stdio: "ignore",
    });
    assert.equal(await new Promise((resolve) => migrated.once("close", resolve)), 0);

    const demo = await startDemo(join(tmp, "unused"), { DATABASE_URL: url });
    try {
      assert.match(demo.output(), /sessions in PostgreSQL at 127\.0\.0\.1:\d+ \(node-postgres\)/);
      const first = await fetch(demo.url + "/");
      assert.equal(first.status, 200);
      assert.match(await first.text(), /id="visits">1</);
      const cookie = cookieOf(first);

      await relay.cut();
      const down = await fetch(demo.url + "/", { headers: { cookie } });
      assert.equal(down.status, 503);
      assert.match(await down.text(), /The session store failed: DATABASE_ERROR\. Try again later\./);
      assert.equal(down.headers.getSetCookie().length, 0, "the cookie is left alone");
      // The line is written before the response is sent; the pipe may deliver it a little later.
      for (let i = 0; i < 100 && !/answered 503/.test(demo.output()); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(demo.output(), /^demo: GET \/ answered 503: DATABASE_ERROR: Cannot .*\(cause: [A-Z0-9_]+[ )]/m);

      await relay.restore();
      const back = await fetch(demo.url + "/", { headers: { cookie } });
      assert.equal(back.status, 200);
      assert.match(await back.text(), /id="visits">2</, "the same session, counted on");
    } finally {
      assert.equal(await demo.stop(), 0);
    }
    assert.doesNotMatch(demo.output(), /Unhandled|uncaught/i, "a dropped connection does not crash the demo");
  });
});
