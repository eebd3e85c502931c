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

  test("the read is one plain indexed SELECT: no CTE, no UPDATE, no hashing", () => {
    const { plain, users } = buildStatements(OPTIONS);
    for (const read of [plain.read, users.read]) {
      assert.match(read, /^SELECT .* FROM "auth"\."session" WHERE session_key = \$1$/s);
      assert.doesNotMatch(read, /WITH|UPDATE|sha256|encode\(/i);
    }
    assert.match(users.read, /session_user_id/);
    assert.doesNotMatch(plain.read, /session_user_id/);
  });

  test("the update is a compare-and-set on the bytes read, never an upsert, without hashing", () => {
    const { plain } = buildStatements(OPTIONS);
    assert.match(plain.update, /session_data IS NOT DISTINCT FROM \$3::bytea/);
    assert.doesNotMatch(plain.update, /INSERT|ON CONFLICT|sha256/i);
    assert.doesNotMatch(plain.touch, /INSERT|ON CONFLICT|session_data/i);
  });

  test("every statement that writes or deletes bounds its lock wait in the same statement", () => {
    const { plain, users } = buildStatements(OPTIONS);
    for (const [name, text] of Object.entries({ ...plain, ...users })) {
      if (name === "read" || name === "count" || name === "insert" || name === "sessionsOf") continue;
      assert.match(text, /set_config\('lock_timeout', \$\d+::text, true\)/, name);
    }
  });

  test("instants come from the database clock only", () => {
    const { plain, users } = buildStatements(OPTIONS);
    for (const text of [...Object.values(plain), ...Object.values(users), gcBatchSql("session"), statsSql("session")]) {
      assert.doesNotMatch(text, /current_timestamp|localtimestamp|clock_timestamp/i);
    }
    assert.equal(NOW, "(now() AT TIME ZONE 'UTC')");
    assert.match(plain.insert, /interval '3600 seconds'/);
  });

  test("the absolute lifetime is optional and shapes the statements", () => {
    const without = buildStatements({ ...OPTIONS, absoluteTtl: null }).plain;
    assert.doesNotMatch(without.count, /86400/);
    const shorter = buildStatements({ ...OPTIONS, absoluteTtl: 600 }).plain;
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
