// Soak: many sessions, many concurrent requests, each changing its own key. Every response must
// show only its own session, and no key may be lost to a concurrent writer.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type PostgresStore, type Session, withSession } from "../mod.ts";
import { dbSkip, randomSchema } from "./_db.ts";
import { type Fixture, transports } from "./_transports.ts";

const SESSIONS = 40;
const REQUESTS_PER_SESSION = 25;
const PARALLEL_PER_SESSION = 5;
const SECRET = "k".repeat(32);

describe("soak over pg.Pool", { skip: dbSkip }, () => {
  let h: Fixture;
  let store: PostgresStore;
  before(async () => {
    h = await transports.find((t) => t.name === "pg.Pool")!.setup(randomSchema("soak"));
    store = h.store();
  });
  after(() => h?.close());

  const handler = (req: Request): Promise<Response> =>
    withSession(async (r: Request, session: Session) => {
      const url = new URL(r.url);
      if (url.pathname === "/start") {
        session.set("user", url.searchParams.get("user")!);
        return new Response("started");
      }
      const user = await session.get("user");
      session.set(`k${url.searchParams.get("i")}`, url.searchParams.get("i"));
      return Response.json({ user });
    }, { store, secrets: [SECRET] })(req);

  test(`${SESSIONS * REQUESTS_PER_SESSION} requests over ${SESSIONS} sessions, ${PARALLEL_PER_SESSION} at a time per session: own data only, no key lost`, async () => {
    const cookies: string[] = [];
    for (let s = 0; s < SESSIONS; s++) {
      const res = await handler(new Request(`https://app.test/start?user=u${s}`));
      const set = res.headers.getSetCookie()[0]!;
      cookies.push(set.slice(0, set.indexOf(";")));
    }
    // Waves of PARALLEL requests per session (like a page's parallel loaders), all sessions at
    // once: each session's requests race each other and every other session's.
    for (let wave = 0; wave < REQUESTS_PER_SESSION / PARALLEL_PER_SESSION; wave++) {
      const jobs: Promise<void>[] = [];
      for (let s = 0; s < SESSIONS; s++) {
        for (let j = 0; j < PARALLEL_PER_SESSION; j++) {
          const i = wave * PARALLEL_PER_SESSION + j;
          jobs.push((async () => {
            const res = await handler(
              new Request(`https://app.test/touch?i=${i}`, { headers: { cookie: cookies[s]! } }),
            );
            assert.equal(res.status, 200);
            assert.deepEqual(await res.json(), { user: `u${s}` }, "a response shows only its own session");
            assert.equal(res.headers.get("set-cookie"), null, "no cookie churn");
          })());
        }
      }
      await Promise.all(jobs);
    }
    for (let s = 0; s < SESSIONS; s++) {
      const token = cookies[s]!.slice(cookies[s]!.indexOf("=") + 1).split(".")[0]!;
      const session = await store.read(token);
      const keys = (await session!.keys()).sort();
      const expected = ["user", ...Array.from({ length: REQUESTS_PER_SESSION }, (_, i) => `k${i}`)].sort();
      assert.deepEqual(keys, expected, `session u${s} kept every key`);
    }
    const [{ n }] = (await h.sql(`SELECT count(*)::int AS n FROM ${h.table}`)) as [{ n: number }];
    assert.equal(n, SESSIONS, "one row per session, none created by the load");
  });
});
