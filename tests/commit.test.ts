// The commit decision on its own, no database: planCommit() and cookieAfter() are pure functions, so
// every rule — including the race rules of "right when requests meet" — is a row of a table.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PostgresStore } from "../mod.ts";
import { type CommitPlan, cookieAfter, MAX_COOKIE_SECONDS, planCommit, type PlanInput } from "../src/_commit.ts";

const STORED = "stored-id";
const NEW = "new-id";

/** A stored session read by this request, nothing changed. */
const base: PlanInput = {
  rowId: STORED,
  id: STORED,
  pendingDestroys: 0,
  modified: false,
  hasContent: false,
  touchDue: false,
  accessed: true,
};

const cases: [string, Partial<PlanInput>, boolean, Pick<CommitPlan, "kind" | "critical" | "cookie">][] = [
  ["a stored session only read, expiry fresh: nothing", {}, false, { kind: "none", critical: false, cookie: null }],
  [
    "a stored session only read, touch due: a touch after the response, never a cookie",
    { touchDue: true },
    false,
    { kind: "touch", critical: false, cookie: null },
  ],
  [
    "a stored session changed: an update after the response, never a cookie",
    { modified: true },
    false,
    { kind: "update", critical: false, cookie: null },
  ],
  [
    "a changed session whose touch is due too: one update, never a cookie",
    { modified: true, touchDue: true },
    false,
    { kind: "update", critical: false, cookie: null },
  ],
  [
    "regenerate: a move before the response, cookie set",
    { id: NEW },
    false,
    { kind: "regenerate", critical: true, cookie: "set" },
  ],
  [
    "regenerate with changes: still one move",
    { id: NEW, modified: true },
    false,
    { kind: "regenerate", critical: true, cookie: "set" },
  ],
  [
    "a new session with data: an insert before the response, cookie set",
    { rowId: null, id: NEW, modified: true, hasContent: true },
    false,
    { kind: "create", critical: true, cookie: "set" },
  ],
  [
    "a new session left empty: nothing, no cookie (no row for an id we did not store)",
    { rowId: null, id: NEW, modified: true, hasContent: false },
    false,
    { kind: "none", critical: false, cookie: null },
  ],
  [
    "destroy: a delete before the response, cookie cleared",
    { rowId: null, id: NEW, pendingDestroys: 1 },
    false,
    { kind: "destroy", critical: true, cookie: "clear" },
  ],
  [
    "destroy, then a flash for the next page: delete then insert, the new cookie set",
    { rowId: null, id: NEW, pendingDestroys: 1, modified: true, hasContent: true },
    false,
    { kind: "create", critical: true, cookie: "set" },
  ],
  [
    "a failed request's changes: nothing",
    { modified: true, id: NEW, touchDue: true },
    true,
    { kind: "none", critical: false, cookie: null },
  ],
  [
    "a failed request's sign-out: still committed",
    { rowId: null, id: NEW, pendingDestroys: 1, modified: true, hasContent: true },
    true,
    { kind: "destroy", critical: true, cookie: "clear" },
  ],
];

describe("planCommit", () => {
  for (const [name, input, failed, expected] of cases) {
    test(name, () => {
      const plan = planCommit({ ...base, ...input }, failed);
      assert.deepEqual({ kind: plan.kind, critical: plan.critical, cookie: plan.cookie }, expected);
    });
  }

  test("every plan that sets or clears a cookie runs before the response", () => {
    for (const [, input, failed] of cases) {
      const plan = planCommit({ ...base, ...input }, failed);
      if (plan.cookie !== null) assert.equal(plan.critical, true, plan.kind);
      if (!plan.critical) assert.equal(plan.cookie, null, plan.kind);
    }
  });

  test("the response depends on the session when it was read", () => {
    assert.equal(planCommit({ ...base, accessed: true }).accessed, true);
    assert.equal(planCommit({ ...base, accessed: false }).accessed, false);
  });

  test("same input, same plan", () => {
    assert.deepEqual(planCommit({ ...base, id: NEW }), planCommit({ ...base, id: NEW }));
  });
});

describe("cookieAfter", () => {
  const now = Date.UTC(2026, 11, 2);
  const day = 86_400_000;

  test("a new or regenerated session's cookie lives until its absolute deadline", () => {
    assert.deepEqual(cookieAfter("created", false, NEW, now + 30 * day, now), { id: NEW, maxAge: 30 * 86_400 });
    assert.deepEqual(cookieAfter("regenerated", true, NEW, now + 10 * day + 500, now), {
      id: NEW,
      maxAge: 10 * 86_400,
    });
  });

  test("without an absolute lifetime, or beyond 400 days, the browsers' cap", () => {
    assert.deepEqual(cookieAfter("created", false, NEW, null, now), { id: NEW, maxAge: MAX_COOKIE_SECONDS });
    assert.deepEqual(cookieAfter("created", false, NEW, now + 900 * day, now), {
      id: NEW,
      maxAge: MAX_COOKIE_SECONDS,
    });
  });

  test("a destroy clears the cookie the client sent, and only then", () => {
    assert.deepEqual(cookieAfter("destroyed", true, NEW, null, now), { id: "", maxAge: 0 });
    assert.equal(cookieAfter("destroyed", false, NEW, null, now), null);
  });

  test("a late write whose session is gone leaves the client's cookie alone", () => {
    assert.equal(cookieAfter("gone", true, STORED, now + day, now), null);
  });

  test("updates, touches and no-ops never send a cookie", () => {
    for (const result of ["updated", "touched", "unchanged"] as const) {
      assert.equal(cookieAfter(result, true, STORED, now + day, now), null, result);
    }
  });
});

describe("store options", () => {
  const client = { query: () => Promise.resolve({ rows: [] }) };

  test("a duration given as a string says what was received and what to pass instead", () => {
    assert.throws(
      () => new PostgresStore({ client, ttl: "3600" as unknown as number }),
      (e: unknown) =>
        e instanceof RangeError &&
        /^Cannot use ttl "3600" \(a string\): expected a whole number of seconds, at least 1; pass a number/.test(
          e.message,
        ),
    );
  });

  test("out-of-range values name the option, the value and the unit", () => {
    assert.throws(() => new PostgresStore({ client, timeoutMs: -1 }), /Cannot use timeoutMs -1: .* of milliseconds/);
    assert.throws(() => new PostgresStore({ client, maxDataBytes: 0.5 }), /Cannot use maxDataBytes 0.5: .* of bytes/);
    assert.throws(
      () => new PostgresStore({ client, ttl: 60, touchAfter: 60 }),
      /touchAfter 60: it must be less than ttl/,
    );
  });
});
