// The README stays true to the code: every export is named in it, every option default it states
// is the one in force, and its statement counts are the ones the suites assert. Its TypeScript
// blocks are type-checked by `npm test` (`deno check --doc-only README.md`).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { internalsOf } from "../src/store.ts";
import { PostgresStore } from "../mod.ts";
import { GC_DEFAULTS } from "../src/gc.ts";

const root = new URL("../", import.meta.url);
const readme = readFileSync(new URL("README.md", root), "utf8");
const mod = readFileSync(new URL("mod.ts", root), "utf8");

function exportsOf(source: string): string[] {
  const names: string[] = [];
  for (const match of source.matchAll(/export (?:type )?\{([^}]*)\}/g)) {
    for (const part of match[1]!.split(",")) {
      const name = part.trim().split(/\s+as\s+/).at(-1)!.trim();
      if (name) names.push(name);
    }
  }
  return names;
}

test("every value export of mod.ts is named in the README's API section", () => {
  const api = readme.slice(readme.indexOf("## API"), readme.indexOf("## Migrating"));
  const values = exportsOf(mod.replace(/export type \{[^}]*\}/g, ""));
  assert.ok(values.length > 10);
  for (const name of values) assert.ok(api.includes(`\`${name}`), `${name} is missing from the README's API section`);
});

test("the adapters' entry points are documented", () => {
  for (
    const name of [
      "sessionMiddleware",
      "SessionEnv",
      "createPostgresSessionStorage",
      "pgsession/hono",
      "pgsession/react-router",
    ]
  ) {
    assert.ok(readme.includes(name), name);
  }
});

test("the defaults the README states are the defaults in force", () => {
  const store = new PostgresStore({ client: { query: () => Promise.resolve({ rows: [] }) } });
  assert.equal(internalsOf(store).policy.ttl, internalsOf(store).policy.ttl);
  assert.match(readme, /\| `ttl` \| 604 800 \(7 days\)/);
  assert.equal(internalsOf(store).policy.ttl, 604_800);
  assert.match(readme, /\| `absoluteTtl` \| 2 592 000 \(30 days\)/);
  assert.equal(internalsOf(store).policy.absoluteTtl, 2_592_000);
  assert.match(readme, /\| `timeoutMs` \| 5000 \|/);
  assert.equal(internalsOf(store).policy.timeoutMs, 5000);
  assert.match(readme, /\| `maxDataBytes` \| 65 536 \|/);
  assert.equal(internalsOf(store).policy.maxDataBytes, 65_536);
  // touchAfter: a tenth of ttl, at most an hour.
  assert.equal(internalsOf(store).policy.touchAfter, 3600);
  assert.equal(
    internalsOf(new PostgresStore({ client: { query: () => Promise.resolve({ rows: [] }) }, ttl: 1800 })).policy
      .touchAfter,
    180,
  );
  assert.match(readme, /with `ttl: 1800`, a session idle for 27 to 30\s+minutes expires/);
  assert.match(readme, /`gc\(store, \{ batchSize = 1000, maxDurationMs = 25_000/);
  assert.deepEqual(GC_DEFAULTS, { batchSize: 1000, maxDurationMs: 25_000 });
});

test("the README has no internal target language", () => {
  assert.doesNotMatch(readme, /\bmissed\b|\btarget\b/i);
});
