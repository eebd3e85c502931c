// The SQL builder on its own, no database: names are validated and quoted, the hot statements are
// the light ones, every write bounds its lock wait, and the clock is only the database's.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { buildStatements, gcBatchSql, indexNames, NOW, quoteTable, statsSql, tableSql } from "../src/_sql.ts";

const OPTIONS = { table: "auth.session", ttl: 3600, absoluteTtl: 86_400, touchAfter: 360 };

describe("SQL builder", () => {
  test("table names are quoted identifiers, optionally schema-qualified; anything else is a TypeError", () => {
    assert.equal(quoteTable("session"), `"session"`);
    assert.equal(quoteTable("auth.session"), `"auth"."session"`);
    for (const bad of ["", "a.b.c", `x"; drop table y; --`, "1abc", "sess ion", "a".repeat(64), "ünïcode"]) {
      assert.throws(() => quoteTable(bad), TypeError, bad);
    }
  });

  test("the read is one indexed SELECT of the row: no UPDATE, no hashing, user columns when the table has them", () => {
    const { read } = buildStatements(OPTIONS);
    assert.match(read, /FROM "auth"\."session" WHERE session_key = \$1\) AS r$/s);
    assert.doesNotMatch(read, /WITH|UPDATE|sha256|encode\(/i);
    // Unqualified names: the table's columns when it has them, the outer NULLs when it does not.
    assert.match(read, /SELECT NULL::text AS session_user_id, NULL::text AS session_label\) AS absent/);
    assert.match(read, /LATERAL \(SELECT .*session_user_id AS user_id, session_label AS label FROM/s);
  });

  test("only the statements that bind or list users name the user columns as targets", () => {
    const sql = buildStatements(OPTIONS);
    for (const name of ["insert", "update", "touch", "move", "moveChanged", "destroy", "count"] as const) {
      assert.doesNotMatch(sql[name].replace(/SELECT r\.\* FROM[\s\S]*$/, ""), /session_user_id\s*(=|,|\))/, name);
    }
    assert.match(sql.insertUser, /session_user_id, session_label\)/);
    assert.match(sql.moveUser, /session_user_id = \$5::text/);
  });

  test("a regenerate changes the key in place, so a revocation waiting on the row follows it", () => {
    const { move, moveChanged } = buildStatements(OPTIONS);
    for (const text of [move, moveChanged]) {
      assert.match(text, /UPDATE "auth"\."session" SET session_key = \$2/);
      assert.doesNotMatch(text, /DELETE|INSERT/);
    }
  });

  test("the update is a compare-and-set on the bytes read, never an upsert, without hashing", () => {
    const { update, touch } = buildStatements(OPTIONS);
    assert.match(update, /session_data IS NOT DISTINCT FROM \$3::bytea/);
    assert.doesNotMatch(update, /INSERT|ON CONFLICT|sha256/i);
    assert.doesNotMatch(touch, /INSERT|ON CONFLICT|session_data/i);
  });

  test("revocations count live rows only", () => {
    const { revoke, revokeAll } = buildStatements(OPTIONS);
    for (const text of [revoke, revokeAll]) assert.match(text, /RETURNING \(s\.session_expiry > /);
  });

  test("every statement that writes or deletes bounds its lock wait in the same statement", () => {
    const sql = buildStatements(OPTIONS);
    for (const [name, text] of Object.entries(sql)) {
      if (["read", "count", "insert", "insertUser", "sessionsOf"].includes(name)) continue;
      assert.match(text, /set_config\('lock_timeout', \$\d+::text, true\)/, name);
    }
  });

  test("instants come from the database clock only", () => {
    const sql = buildStatements(OPTIONS);
    for (const text of [...Object.values(sql), gcBatchSql("session"), statsSql("session")]) {
      assert.doesNotMatch(text, /current_timestamp|localtimestamp|clock_timestamp/i);
    }
    assert.equal(NOW, "(now() AT TIME ZONE 'UTC')");
    assert.match(sql.insert, /interval '3600 seconds'/);
  });

  test("the absolute lifetime is optional and shapes the statements", () => {
    const without = buildStatements({ ...OPTIONS, absoluteTtl: null });
    assert.doesNotMatch(without.count, /86400/);
    const shorter = buildStatements({ ...OPTIONS, absoluteTtl: 600 });
    assert.match(shorter.insert, /interval '600 seconds'/, "a first expiry capped by a shorter absolute lifetime");
  });

  test("statements are built once per options and reused", () => {
    assert.equal(buildStatements({ ...OPTIONS }), buildStatements({ ...OPTIONS }));
  });

  test("the DDL is idempotent and names its index after the table", () => {
    const ddl = tableSql("app.sess");
    assert.match(ddl, /CREATE TABLE IF NOT EXISTS "app"\."sess"/);
    assert.match(ddl, /CREATE INDEX IF NOT EXISTS "sess_expiry_idx"/);
    assert.match(ddl, /ADD COLUMN IF NOT EXISTS session_user_id text/);
    assert.match(ddl, /CREATE INDEX IF NOT EXISTS "sess_user_idx" .* WHERE session_user_id IS NOT NULL/);
    assert.deepEqual(indexNames("app.sess"), {
      primaryKey: "sess_key",
      expiry: "sess_expiry_idx",
      user: "sess_user_idx",
    });
  });

  test("a GC batch deletes only expired rows, skipping locked ones, bounded by $1", () => {
    const batch = gcBatchSql("session");
    assert.match(batch, /session_expiry <= \(now\(\) AT TIME ZONE 'UTC'\)/);
    assert.match(batch, /LIMIT \$1/);
    assert.match(batch, /FOR UPDATE SKIP LOCKED/);
  });
});
