// The docs stay true to the code: the API table in docs/api.md names exactly the public surface of
// mod.ts, every option default the docs state is the one in force, and no snippet uses a name that
// left the surface. Their TypeScript blocks are type-checked by `npm test` (`deno check --doc-only
// README.md docs/*.md`, also with deno.strict.json).
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { PostgresStore } from "../mod.ts";
// Internal constants: the defaults' one home (STYLE 8), no longer exported by mod.ts.
import { internalsOf } from "../src/store.ts";
import { GC_DEFAULTS } from "../src/gc.ts";

const root = new URL("../", import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), "utf8");
const readme = read("README.md");
const api = read("docs/api.md");
const guides = readdirSync(new URL("docs/", root)).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`);
const docs = new Map<string, string>([["README.md", readme], ...guides.map((f): [string, string] => [f, read(f)])]);
const mod = read("mod.ts");

/** What `pgsession` exports: the values, then the types. */
const PUBLIC_VALUES = ["createSessions", "withSession", "PostgresStore", "SessionError", "schemaSql"];
const PUBLIC_TYPES = [
  "SessionsOptions",
  "Sessions",
  "RequestSession",
  "CommitOptions",
  "WithSessionOptions",
  "SessionHandler",
  "PlatformArgs",
  "StoreOptions",
  "Connection",
  "QueryClient",
  "NeonSql",
  "Logger",
  "CookieOptions",
  "Session",
  "SessionData",
  "RegenerateOptions",
  "UserSession",
  "SaveResult",
  "SessionErrorCode",
  "GcOptions",
  "GcResult",
  "GcProgress",
];
/** Names that left the surface in 0.3; no doc may name them as exports. (`gc` is checked apart.) */
const REMOVED = [
  "PostgresStoreOptions",
  "generateId",
  "isId",
  "handleOf",
  "Changes",
  "FlashUpdate",
  "SessionHost",
  "CommitPlan",
  "CookieValue",
  "STORE_DEFAULTS",
  "GC_DEFAULTS",
  "GcTarget",
  "Row",
  "ResolvedStoreOptions",
];

function exportsOf(source: string): string[] {
  const names: string[] = [];
  for (const match of source.matchAll(/export (?:type )?\{([^}]*)\}/g)) {
    for (const part of match[1]!.split(",")) {
      const name = part.trim().replace(/^type\s+/, "").split(/\s+as\s+/).at(-1)!.trim();
      if (name) names.push(name);
    }
  }
  return names;
}

/** The docs' text between a heading and the next heading of the same level. */
function section(text: string, heading: string): string {
  const start = text.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `no "${heading}" heading`);
  const level = heading.split(" ")[0]!;
  const end = text.indexOf(`\n${level} `, start + heading.length + 2);
  return end < 0 ? text.slice(start) : text.slice(start, end);
}

/** Whether `name` appears in backticks as a name of its own (`name`, `name(…)`, `name<…>`). */
const names = (text: string, name: string): boolean => new RegExp("`" + name + "(?![A-Za-z0-9_])").test(text);

test("the API table in docs/api.md names every export of the public surface, and no removed one", () => {
  const table = section(api, "## Exports");
  for (const name of [...PUBLIC_VALUES, ...PUBLIC_TYPES]) {
    assert.ok(names(table, name), `${name} is missing from the API table in docs/api.md`);
  }
  for (const name of REMOVED) assert.ok(!names(table, name), `${name} left the surface but is in the API table`);
});

test("mod.ts exports exactly the surface the API table documents", () => {
  const exported = exportsOf(mod);
  const surface = [...PUBLIC_VALUES, ...PUBLIC_TYPES];
  const extra = exported.filter((name) => !surface.includes(name));
  const missing = surface.filter((name) => !exported.includes(name));
  assert.deepEqual({ extra, missing }, { extra: [], missing: [] }, "mod.ts and the documented surface differ");
  assert.equal(exported.length, 27);
});

test("no snippet in the README or docs/ uses a name that left the surface", () => {
  for (const [file, text] of docs) {
    for (const block of text.matchAll(/```ts[^\n]*\n([\s\S]*?)```/g)) {
      const code = block[1]!;
      for (const name of [...REMOVED, "gc"]) {
        const imported = new RegExp(`import (?:type )?\\{[^}]*\\b${name}\\b[^}]*\\} from "pgsession"`);
        assert.doesNotMatch(code, imported, `${file} imports ${name}, which left the surface`);
      }
      assert.doesNotMatch(code, /(?<![.\w])gc\(/, `${file} calls gc(store): the surface has store.gc() only`);
    }
  }
});

test("every TypeScript block in the README and docs/ is type-checked: none is marked ignore", () => {
  for (const [file, text] of docs) {
    const skipped = [...text.matchAll(/^```(?:ts|typescript)\b(.+)$/gm)].map((m) => m[0]);
    assert.deepEqual(skipped, [], `${file} has blocks deno check --doc-only skips`);
  }
});

test("the adapters' entry points are documented", () => {
  const all = [...docs.values()].join("\n");
  for (
    const name of [
      "sessionMiddleware",
      "SessionEnv",
      "createPostgresSessionStorage",
      "pgsession/hono",
      "pgsession/react-router",
    ]
  ) {
    assert.ok(all.includes(name), name);
  }
});

test("the defaults the docs state are the defaults in force", () => {
  const defaults = internalsOf(new PostgresStore({ client: { query: () => Promise.resolve({ rows: [] }) } })).policy;
  assert.match(api, /\| `ttl` \| 604 800 \(7 days\)/);
  assert.equal(defaults.ttl, 604_800);
  assert.match(api, /\| `absoluteTtl` \| 2 592 000 \(30 days\)/);
  assert.equal(defaults.absoluteTtl, 2_592_000);
  assert.match(api, /\| `timeoutMs` \| 5000 \|/);
  assert.equal(defaults.timeoutMs, 5000);
  assert.match(api, /\| `maxDataBytes` \| 65 536 \|/);
  assert.equal(defaults.maxDataBytes, 65_536);
  assert.match(api, /\| `table` \| `"session"` \|/);
  assert.equal(defaults.table.options.table, "session");
  assert.match(read("docs/operations.md"), /`store\.gc\(\{ batchSize = 1000, maxDurationMs = 25_000/);
  assert.deepEqual({ ...GC_DEFAULTS }, { batchSize: 1000, maxDurationMs: 25_000 });
});

test("the default touchAfter is the one the docs state: a tenth of ttl, at most an hour", () => {
  assert.match(api, /with `ttl: 1800`, a session idle for 27 to 30\s+minutes expires/);
  const client = { query: () => Promise.resolve({ rows: [] }) };
  const touchAfter = (store: PostgresStore): number => internalsOf(store).policy.touchAfter;
  assert.equal(touchAfter(new PostgresStore({ client })), 3600, "the default touchAfter (ttl of 7 days)");
  assert.equal(touchAfter(new PostgresStore({ client, ttl: 1800 })), 180, "the touchAfter of ttl: 1800");
});

test("the README and the guides have no internal target language", () => {
  for (const [file, text] of docs) assert.doesNotMatch(text, /\bmissed\b|\btarget\b/i, file);
});
