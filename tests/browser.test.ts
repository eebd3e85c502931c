// The demo (`npm start`) driven in a real browser: Debian's Chromium through playwright-core.
// The demo runs as a child process on a free port with its embedded PostgreSQL (PGlite) in a
// temporary folder, exactly as a user starts it, only with PORT=0 and DEMO_DATA_DIR set.
//
// Node only: `node --import tsx --test tests/browser.test.ts`. Chromium is installed with
// apt-get when /usr/bin/chromium is missing (.ci/run does the same on a fresh machine).
// A screenshot of each page lands in tests/.artifacts/ (git-ignored).
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";

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
const SEVEN_DAYS_S = 7 * 24 * 3600;

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

/** Starts `node --import tsx demo/main.ts` (what `npm start` runs) and waits for its startup line. */
function startDemo(dataDir: string): Promise<Demo> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: "0", DEMO_DATA_DIR: dataDir };
  // The test command exports DATABASE_URL for the other suites; the demo must use PGlite here.
  delete env.DATABASE_URL;
  delete env.SESSION_SECRET;
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "demo/main.ts"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
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
  let demo: Demo;
  let tmp: string;
  let dataDir: string;
  let cookieBeforeSignIn: string;

  const sessionCookie = async () => {
    const cookies = await context.cookies(demo.url);
    return cookies.find((c) => c.name === "session");
  };
  const visits = async () => Number(await page.locator("#visits").textContent());

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
      viewport: { width: 900, height: 700 },
    });
    page = context.pages()[0] ?? (await context.newPage());
  });

  after(async () => {
    await context?.close();
    await demo?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test("the startup line names the embedded database and a localhost URL", () => {
    assert.match(demo.output(), /sessions in embedded PostgreSQL \(PGlite\) in .*pgsession-browser-.*\/data; open http:\/\/localhost:\d+\//);
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

  test("the browser holds the cookie as HttpOnly, SameSite=Lax, Path=/, not Secure over http, expiring in 7 days", async () => {
    const cookie = await sessionCookie();
    assert.ok(cookie);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Lax");
    assert.equal(cookie.path, "/");
    assert.equal(cookie.secure, false, "secure: \"auto\" leaves Secure off over plain http");
    assert.match(cookie.value, /^[A-Za-z0-9_-]{43}$/);
    const now = Date.now() / 1000;
    assert.ok(cookie.expires > now, `expires ${cookie.expires} is in the future`);
    assert.ok(Math.abs(cookie.expires - (now + SEVEN_DAYS_S)) < 120, `expires ${cookie.expires} is about 7 days away`);
    // HttpOnly: the page's scripts cannot read it.
    assert.equal(await page.evaluate(() => document.cookie), "");
  });

  test("the session page lists what the session holds", async () => {
    await page.click("text=See what the session holds");
    await page.waitForURL(demo.url + "/session");
    const table = page.locator("#contents");
    assert.equal(await table.locator("tbody tr").count(), 3);
    assert.equal(await table.locator("tr", { hasText: "user" }).locator("td").textContent(), '"Ada <Lovelace>"');
    assert.equal(await table.locator("tr", { hasText: "visits" }).locator("td").textContent(), "5");
    assert.match(await table.locator("tr", { hasText: "signedInAt" }).locator("td").textContent() ?? "", /^\d{4}-\d\d-\d\dT.*Z \(a Date/);
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

  test("after the demo stops, its data folder holds exactly the browser's live session", async () => {
    const token = (await sessionCookie())!.value;
    assert.equal(await demo.stop(), 0, "the demo exits cleanly on SIGTERM");
    const { PGlite } = await import("@electric-sql/pglite");
    const db = await PGlite.create(dataDir);
    try {
      const { rows } = await db.query<{ session_key: string }>(`SELECT session_key FROM "session"`);
      assert.deepEqual(rows.map((r) => r.session_key.trim()), [createHash("sha256").update(token).digest("hex")]);
    } finally {
      await db.close();
    }
  });
});
