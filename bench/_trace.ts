// The browsing trace of the session benchmark (issue 18): a recorded pattern of page views,
// replayed against pgsession with and without the snapshot to count database round trips per
// request. bench/trace.json is generated once by this file (`node --import tsx bench/_trace.ts`),
// from a fixed seed, and committed: every run replays the same requests.
//
// The pattern: a few browsers, each signing in (its first request creates the session), then page
// views. A view is 6 requests within 2 s (the document, then its API calls); between views, 3 to
// 60 s (log-uniform: mostly short, some long); every 3rd to 5th view one of its requests writes.
//
// Replayed on a virtual clock: the trace spans about ten minutes per browser, its replay a few
// seconds. The snapshot's age is decided by `Date.now()` in `sessions.open` (the seal time is the
// sealing request's, the age the opening request's), so the replay sets the process clock to each
// request's time in the trace before sending it: every age the library computes is the trace's.
// Requests go one at a time, in the trace's order, so no two requests see different clocks.
// Compressing time by a factor instead would need a maxAge below the option's 1-s minimum for
// large factors, and would shrink the trace's gaps towards the requests' own latency.
import { writeFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";

export interface Trace {
  description: string;
  seed: number;
  browsers: number;
  views: number;
  /** [atMs, browser, write (1) or read (0)], in time order. */
  requests: [number, number, 0 | 1][];
}

const BROWSERS = 4;
const VIEWS_PER_BROWSER = 30;
const REQUESTS_PER_VIEW = 6;
const VIEW_SPREAD_MS = 2_000;
const GAP_MS = [3_000, 60_000] as const;
const WRITE_EVERY = [3, 5] as const;
const SEED = 18;

/** mulberry32: a small deterministic PRNG, so the trace is the same wherever it is generated. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function generateTrace(seed = SEED): Trace {
  const random = prng(seed);
  const between = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  const requests: [number, number, 0 | 1][] = [];
  for (let b = 0; b < BROWSERS; b++) {
    // Browsers start a few seconds apart, so their requests interleave.
    let t = between(0, 10_000);
    let nextWrite = 0; // the first view signs in
    for (let v = 0; v < VIEWS_PER_BROWSER; v++) {
      const writeAt = v === nextWrite ? (v === 0 ? 0 : between(0, REQUESTS_PER_VIEW - 1)) : -1;
      if (writeAt >= 0) nextWrite = v + between(WRITE_EVERY[0], WRITE_EVERY[1]);
      // The document at once, the other requests spread over the view's 2 s, in order.
      const offsets = [0, ...Array.from({ length: REQUESTS_PER_VIEW - 1 }, () => between(50, VIEW_SPREAD_MS))]
        .sort((x, y) => x - y);
      offsets.forEach((o, i) => requests.push([t + o, b, i === writeAt ? 1 : 0]));
      const gap = Math.exp(Math.log(GAP_MS[0]) + random() * (Math.log(GAP_MS[1]) - Math.log(GAP_MS[0])));
      t += VIEW_SPREAD_MS + Math.round(gap);
    }
  }
  requests.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  return {
    description: `${BROWSERS} browsers x ${VIEWS_PER_BROWSER} page views; a view is ${REQUESTS_PER_VIEW} requests ` +
      `within ${VIEW_SPREAD_MS / 1000} s; ${GAP_MS[0] / 1000} to ${GAP_MS[1] / 1000} s (log-uniform) between views; ` +
      `one request of every ${WRITE_EVERY[0]}rd to ${WRITE_EVERY[1]}th view writes; each browser's first request ` +
      `creates its session. [atMs, browser, write]`,
    seed,
    browsers: BROWSERS,
    views: BROWSERS * VIEWS_PER_BROWSER,
    requests,
  };
}

/**
 * A clock for the replay: `Date.now()` reads the trace's time, set before each request, and runs
 * at real speed within a request. It never goes back: a request sent before the previous one's
 * real duration has passed on the trace's clock starts that much late (`lagMs` keeps the largest).
 */
export class VirtualClock {
  readonly #realNow = Date.now;
  readonly #start = Date.now();
  #offset = 0;
  lagMs = 0;

  install(): void {
    Date.now = () => this.#realNow.call(Date) + this.#offset;
  }

  uninstall(): void {
    Date.now = this.#realNow;
  }

  /** Moves the clock to `atMs` after the start (or leaves it where it is, if already past). */
  set(atMs: number): void {
    const want = this.#start + atMs;
    const real = this.#realNow.call(Date);
    this.#offset = Math.max(this.#offset, want - real);
    this.lagMs = Math.max(this.lagMs, real + this.#offset - want);
  }
}

/** A browser's cookie jar: the latest value of each cookie, dropped at its Max-Age by `Date.now()`. */
export class Jar {
  readonly #cookies = new Map<string, { value: string; until: number }>();

  take(res: Response): void {
    for (const set of res.headers.getSetCookie()) {
      const pair = set.slice(0, set.indexOf(";") === -1 ? undefined : set.indexOf(";"));
      const name = pair.slice(0, pair.indexOf("="));
      const value = pair.slice(pair.indexOf("=") + 1);
      const maxAge = /;\s*Max-Age=(-?\d+)/i.exec(set);
      const until = maxAge ? Date.now() + Number(maxAge[1]) * 1000 : Infinity;
      if (value === "" || until <= Date.now()) this.#cookies.delete(name);
      else this.#cookies.set(name, { value, until });
    }
  }

  /** The Cookie header a browser would send now, or undefined for none. */
  header(): string | undefined {
    const now = Date.now();
    const pairs = [...this.#cookies].filter(([, c]) => c.until > now).map(([k, c]) => `${k}=${c.value}`);
    return pairs.length ? pairs.join("; ") : undefined;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const trace = generateTrace();
  const out = fileURLToPath(new URL("./trace.json", import.meta.url));
  // One request per line: small, and a diff shows what changed.
  const lines = trace.requests.map((r) => JSON.stringify(r));
  const { requests: _, ...head } = trace;
  writeFileSync(
    out,
    JSON.stringify(head, null, 2).replace(/\n}$/, `,\n  "requests": [\n    ${lines.join(",\n    ")}\n  ]\n}\n`),
  );
  process.stderr.write(`${trace.requests.length} requests, ${trace.views} views -> ${out}\n`);
}
