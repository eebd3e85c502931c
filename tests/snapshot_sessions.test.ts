// The snapshot option end to end: reads from a fresh snapshot send no statement, a change is one
// compare-and-set against the snapshot's bytes, and every way a snapshot can be wrong (tampered,
// another id, a rotated-out key, stale, replayed after a regenerate, too big) falls back to the
// database. Revocation reaches another client within maxAge and the same client at once.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createSessions, type PostgresStore, type Sessions } from "../mod.ts";
import { dbSkip, randomSchema } from "./_db.ts";
import { type Fixture, transports } from "./_transports.ts";

const SECRET = "snapshot-test-secret-of-32-characters!";
const OLD_SECRET = "an-older-secret-of-at-least-32-chars!!";

/** A browser's cookie jar: keeps the latest value of each cookie it was sent. */
class Jar {
  readonly #cookies = new Map<string, string>();
  take(res: Response): Response {
    for (const set of res.headers.getSetCookie()) {
      const pair = set.slice(0, set.indexOf(";"));
      const name = pair.slice(0, pair.indexOf("="));
      const value = pair.slice(pair.indexOf("=") + 1);
      if (/Max-Age=0(;|$)/.test(set) || value === "") this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    return res;
  }
  header(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
  get(name: string): string | undefined {
    return this.#cookies.get(name);
  }
  set(name: string, value: string): void {
    this.#cookies.set(name, value);
  }
  clone(): Jar {
    const copy = new Jar();
    for (const [k, v] of this.#cookies) copy.set(k, v);
    return copy;
  }
}

const SNAP = "__Host-session.s";

for (const transport of transports.filter((t) => t.name === "pg.Pool" || t.name.startsWith("Neon HTTP neon()"))) {
  describe(`snapshots over ${transport.name}`, { skip: dbSkip }, () => {
    let f: Fixture;
    let store: PostgresStore;
    let sessions: Sessions;

    before(async () => {
      f = await transport.setup(randomSchema("snap"));
      store = f.store();
      sessions = createSessions({ store, secrets: [SECRET], snapshot: { maxAge: 5 } });
    });
    after(() => f?.close());

    /** One request through `sessions`: the handler's work, the statements it cost. */
    async function request(
      jar: Jar,
      work: (s: Awaited<ReturnType<Sessions["open"]>>) => Promise<unknown> | unknown,
      using: Sessions = sessions,
    ): Promise<{ res: Response; statements: number; result: unknown }> {
      await f.resetCount();
      const session = await using.open(new Request("https://app.test/", { headers: { cookie: jar.header() } }));
      const result = await work(session);
      const res = jar.take(await session.commit(new Response("ok")));
      return { res, statements: await f.statements(), result };
    }

    async function signedIn(data: Record<string, unknown> = { n: 1 }): Promise<Jar> {
      const jar = new Jar();
      await request(jar, (s) => {
        for (const [k, v] of Object.entries(data)) s.set(k, v);
      });
      assert.ok(jar.get(SNAP), "a new session gets its snapshot");
      return jar;
    }

    test("a read within maxAge sends no statement; a change is one compare-and-set", async () => {
      const jar = await signedIn({ n: 1 });
      const read = await request(jar, (s) => s.get("n"));
      assert.equal(read.result, 1);
      assert.equal(read.statements, 0, "read from the snapshot");
      assert.deepEqual(read.res.headers.getSetCookie(), [], "nothing to set on a read from the snapshot");
      const write = await request(jar, async (s) => s.set("n", ((await s.get("n")) as number) + 1));
      assert.equal(write.statements, 1, "one UPDATE against the snapshot's bytes");
      assert.ok(write.res.headers.getSetCookie().some((c) => c.startsWith(`${SNAP}=`)), "the new snapshot");
      const again = await request(jar, (s) => s.get("n"));
      assert.deepEqual([again.result, again.statements], [2, 0], "the next request sees its own write");
      assert.equal(await (await store.read(jar.get("__Host-session")!.split(".")[0]!))!.get("n"), 2);
    });

    test("a snapshot that is tampered, truncated, for another id or under a rotated-out key falls back to the database", async () => {
      const jar = await signedIn({ n: 7 });
      const good = jar.get(SNAP)!;
      const other = await signedIn({ n: 8 });
      const rotated = createSessions({ store, secrets: [OLD_SECRET], snapshot: { maxAge: 5 } });
      const oldKeyJar = new Jar();
      await request(oldKeyJar, (s) => s.set("n", 9), rotated);
      const variants: [string, string][] = [
        ["tampered", good.slice(0, 20) + (good[20] === "A" ? "B" : "A") + good.slice(21)],
        ["truncated", good.slice(0, good.length - 5)],
        ["another id's", other.get(SNAP)!],
        ["garbage", "not-a-snapshot"],
      ];
      for (const [name, value] of variants) {
        const probe = jar.clone();
        probe.set(SNAP, value);
        const { result, statements, res } = await request(probe, (s) => s.get("n"));
        assert.deepEqual([result, statements], [7, 1], `${name}: read from the database`);
        assert.ok(res.headers.getSetCookie().some((c) => c.startsWith(`${SNAP}=`)), `${name}: replaced`);
      }
      // Rotation: sealed under OLD_SECRET, opened by sessions whose only secret is SECRET.
      const session = oldKeyJar.get("__Host-session")!.split(".")[0]!;
      const withNewKey = new Jar();
      withNewKey.set("__Host-session", jar.get("__Host-session")!);
      withNewKey.set(SNAP, oldKeyJar.get(SNAP)!);
      const { result, statements } = await request(withNewKey, (s) => s.get("n"));
      assert.deepEqual([result, statements], [7, 1], "a rotated-out key's snapshot is refused");
      assert.ok(session);
    });

    test("a snapshot older than maxAge is refused: a revocation elsewhere bites within it", async () => {
      const short = createSessions({ store, secrets: [SECRET], snapshot: { maxAge: 1 } });
      const jar = new Jar();
      await request(jar, (s) => s.set("n", 1), short);
      const token = jar.get("__Host-session")!.split(".")[0]!;
      assert.equal(await store.destroy(token), true, "signed out elsewhere");
      const soon = await request(jar.clone(), (s) => s.get("n"), short);
      assert.deepEqual([soon.result, soon.statements], [1, 0], "within maxAge the snapshot still serves the read");
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const later = await request(jar, (s) => s.get("n"), short);
      assert.deepEqual([later.result, later.statements], [undefined, 1], "after maxAge the database says it is gone");
      assert.ok(later.res.headers.getSetCookie().some((c) => c.startsWith(`${SNAP}=;`)), "and the snapshot is cleared");
    });

    test("destroy clears the snapshot at once; a regenerate replaces it, and the old one replayed is useless", async () => {
      const jar = await signedIn({ n: 3 });
      const before = jar.clone();
      const moved = await request(jar, (s) => s.regenerate());
      assert.equal(moved.statements, 1);
      assert.notEqual(jar.get(SNAP), before.get(SNAP), "a new snapshot for the new id");
      const replay = new Jar();
      replay.set("__Host-session", jar.get("__Host-session")!);
      replay.set(SNAP, before.get(SNAP)!);
      const replayed = await request(replay, (s) => s.get("n"));
      assert.deepEqual([replayed.result, replayed.statements], [3, 1], "the old id's snapshot does not open");
      const out = await request(jar, (s) => s.destroy());
      assert.ok(out.res.headers.getSetCookie().some((c) => c.startsWith(`${SNAP}=;`) && /Max-Age=0/.test(c)));
      assert.equal(jar.get(SNAP), undefined);
    });

    test("data too big for a cookie gets no snapshot, and reads go to the database", async () => {
      const jar = new Jar();
      await request(jar, (s) => s.set("blob", "x".repeat(4_000)));
      assert.equal(jar.get(SNAP), undefined);
      const read = await request(jar, async (s) => ((await s.get("blob")) as string).length);
      assert.deepEqual([read.result, read.statements], [4_000, 1]);
    });

    test("two tabs writing in parallel lose no update, and fresh() reads the database", async () => {
      const jar = await signedIn({ n: 0 });
      const [a, b] = [jar.clone(), jar.clone()];
      const sa = await sessions.open(new Request("https://app.test/", { headers: { cookie: a.header() } }));
      const sb = await sessions.open(new Request("https://app.test/", { headers: { cookie: b.header() } }));
      sa.set("a", 1);
      sb.set("b", 2);
      await Promise.all([sa.commit(new Response("a")), sb.commit(new Response("b"))]);
      const check = await request(jar.clone(), async (s) => {
        await s.fresh();
        return [await s.get("a"), await s.get("b"), await s.get("n")];
      });
      assert.deepEqual(check.result, [1, 2, 0]);
      assert.equal(check.statements, 1, "fresh() is one read");
    });

    test("options: snapshots need secrets, refuse header mode, and cap maxAge at 60 seconds", () => {
      assert.throws(() => createSessions({ store, snapshot: { maxAge: 5 } }), TypeError);
      assert.throws(
        () => createSessions({ store, secrets: [SECRET], header: "x-session", snapshot: { maxAge: 5 } }),
        TypeError,
      );
      assert.throws(() => createSessions({ store, secrets: [SECRET], snapshot: { maxAge: 61 } }), RangeError);
      assert.throws(() => createSessions({ store, secrets: [SECRET], snapshot: { maxAge: 0 } }), RangeError);
    });
  });
}
