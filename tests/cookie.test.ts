// The session cookie without a database: reading it so a planted look-alike never matches and a
// flood of forged copies costs a bounded number of HMACs; attributes checked once against what
// browsers accept; the request's scheme, from the URL or a trusted proxy.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { createServer } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { describe, test } from "node:test";
import {
  compileCookie,
  type CookieOptions,
  MAX_COOKIE_BYTES,
  readCookies,
  requestIsSecure,
  serializeCookie,
} from "../src/cookie.ts";
import { sign, unsign } from "../src/_signature.ts";
import { generateId } from "../src/id.ts";

const NAME = "__Host-session";
const SECRETS = ["a".repeat(32), "b".repeat(32), "c".repeat(32)];

describe("readCookies", () => {
  test("a name preceded by a Unicode space, a no-break space or a BOM does not match", () => {
    // workerd decodes headers as UTF-8; Node and Deno give a raw 0xA0 byte as "\u00a0".
    for (const space of ["\u2000", "\u00a0", "\ufeff", "\u3000", "\u200b", "\u0085", "\u000b", "\u000c"]) {
      const label = `U+${space.charCodeAt(0).toString(16).padStart(4, "0")}`;
      assert.deepEqual(readCookies(`${space}${NAME}=planted`, NAME), [], `${label} at the start`);
      assert.deepEqual(readCookies(`theme=dark; ${space}${NAME}=planted`, NAME), [], `${label} after "; "`);
      assert.deepEqual(readCookies(`${NAME}${space}=planted`, NAME), [], `${label} before "="`);
      assert.deepEqual(
        readCookies(`${space}${NAME}=planted; ${NAME}=real`, NAME),
        ["real"],
        `${label}: the real cookie still wins`,
      );
    }
  });

  test("a TAB after the separator is part of the name; SP is the separator's", () => {
    assert.deepEqual(readCookies(`theme=dark;\t${NAME}=planted`, NAME), []);
    assert.deepEqual(readCookies(`\t${NAME}=planted`, NAME), []);
    assert.deepEqual(readCookies(`theme=dark; ${NAME}=a;${NAME}=b;  ${NAME}=c`, NAME), ["a", "b", "c"]);
  });

  test("names are compared exactly: no case folding, no prefix or suffix match", () => {
    const header =
      `__host-session=1; __Host-Session=2; x__Host-session=3; __Host-session2=4; __Host-sessio=5; ${NAME}=6`;
    assert.deepEqual(readCookies(header, NAME), ["6"]);
  });

  test("values lose only SP and HTAB at the ends and one pair of quotes, so a padded value stays padded", () => {
    assert.deepEqual(readCookies(`${NAME}= \tv\t `, NAME), ["v"]);
    assert.deepEqual(readCookies(`${NAME} \t= v`, NAME), ["v"], "SP/HTAB before = is dropped");
    assert.deepEqual(readCookies(`${NAME}="v"`, NAME), ["v"]);
    assert.deepEqual(readCookies(`${NAME}=""v""`, NAME), ['"v"'], "only one pair of quotes");
    assert.deepEqual(readCookies(`${NAME}="`, NAME), ['"'], "a lone quote stays");
    for (const space of ["\u2000", "\u00a0", "\ufeff", "\u3000"]) {
      assert.deepEqual(readCookies(`${NAME}=${space}v${space}`, NAME), [`${space}v${space}`]);
      assert.deepEqual(readCookies(`${NAME}="${space}v"`, NAME), [`${space}v`]);
    }
  });

  test("a token padded with a Unicode space is not taken for the token", async () => {
    const value = await sign(generateId(), SECRETS[0]!);
    assert.notEqual(await unsign(value, SECRETS), null);
    for (const header of [`${NAME}=\u2000${value}`, `${NAME}=${value}\u00a0`, `${NAME}="\ufeff${value}"`]) {
      const [candidate] = readCookies(header, NAME);
      assert.equal(await unsign(candidate!, SECRETS), null, JSON.stringify(header.slice(-3)));
    }
  });

  test("1,000 forged cookies yield at most 4 candidates, and the first ones win", () => {
    const header = Array.from({ length: 1000 }, (_, i) => `${NAME}=forged${i}`).join("; ");
    assert.deepEqual(readCookies(header, NAME), ["forged0", "forged1", "forged2", "forged3"]);
    assert.deepEqual(readCookies(header, NAME, 1), ["forged0"]);
    assert.equal(readCookies(header, NAME, 1000).length, 1000);
  });

  test("1,000 forged signed cookies cost at most 4 × 3 HMAC verifications with 3 secrets", async () => {
    const header = (await Promise.all(
      Array.from({ length: 1000 }, async () => `${NAME}=${await sign(generateId(), "x".repeat(32))}`),
    ))
      .join("; ");
    const real = crypto.subtle.verify;
    let calls = 0;
    // Counts the real Web Crypto calls; nothing is replaced.
    Object.defineProperty(crypto.subtle, "verify", {
      configurable: true,
      writable: true,
      value: (...args: Parameters<SubtleCrypto["verify"]>) => (calls++, real.apply(crypto.subtle, args)),
    });
    try {
      for (const value of readCookies(header, NAME)) assert.equal(await unsign(value, SECRETS), null);
    } finally {
      delete (crypto.subtle as { verify?: unknown }).verify;
    }
    assert.equal(crypto.subtle.verify, real);
    assert.equal(calls, 12);
  });

  test("cookies over 4096 bytes are skipped without using up the limit", () => {
    const max = "a".repeat(MAX_COOKIE_BYTES - NAME.length);
    const over = `${max}a`;
    assert.deepEqual(readCookies(`${NAME}=${max}`, NAME), [max]);
    const header = [...Array.from({ length: 5 }, () => `${NAME}=${over}`), `${NAME}=ok`].join("; ");
    assert.deepEqual(readCookies(header, NAME), ["ok"]);
  });

  test("pairs without =, empty values and broken escapes are harmless", () => {
    assert.deepEqual(readCookies(`${NAME}; ${NAME}=; =x; ${NAME}=%E0%A4%A; ;;`, NAME), ["", "%E0%A4%A"]);
    assert.deepEqual(readCookies(null, NAME), []);
    assert.deepEqual(readCookies("", NAME), []);
    assert.deepEqual(readCookies("=x; =y", ""), [], "an empty name matches nothing");
    assert.deepEqual(readCookies(`${NAME}=a=b`, NAME), ["a=b"], "the value runs to the next ;");
  });

  test("a 2 MB header of pairs without = is read in linear time (does not hang)", () => {
    // Quadratic scanning took about 10 s here for 500,000 pairs; linear takes milliseconds.
    const started = performance.now();
    assert.deepEqual(readCookies(`${"a;".repeat(500_000)}${NAME}=v`, NAME), ["v"]);
    assert.deepEqual(readCookies(`${`${NAME};`.repeat(500_000)}${NAME}=v`, NAME), ["v"]);
    assert.ok(performance.now() - started < 5_000);
  });

  test("limit must be a positive integer", () => {
    for (const limit of [0, -1, 1.5, Number.NaN, Infinity]) {
      assert.throws(() => readCookies(`${NAME}=v`, NAME, limit), RangeError, String(limit));
    }
  });

  test("over a real socket, a raw 0xA0 or TAB byte before the name does not match", async () => {
    const seen: string[][] = [];
    const server = createServer((req, res) => {
      seen.push(readCookies(req.headers.cookie ?? null, NAME));
      res.end();
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      const { port } = server.address() as AddressInfo;
      for (const prefix of [[0xa0], [0x09], [0x20], []]) {
        const socket = connect(port, "127.0.0.1");
        await once(socket, "connect");
        socket.end(Buffer.concat([
          Buffer.from("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: theme=dark;"),
          Buffer.from(prefix),
          Buffer.from(`${NAME}=v\r\n\r\n`),
        ]));
        socket.resume();
        await once(socket, "close");
      }
    } finally {
      server.close();
      await once(server, "close");
    }
    assert.deepEqual(seen, [[], [], ["v"], ["v"]]);
  });
});

describe("compileCookie", () => {
  test("the defaults: __Host-session, HttpOnly, Secure, SameSite=Lax, Path=/", () => {
    const cookie = compileCookie()(false);
    assert.deepEqual({ ...cookie }, {
      name: NAME,
      domain: undefined,
      path: "/",
      sameSite: "Lax",
      secure: true,
      httpOnly: true,
      partitioned: false,
    });
    assert.equal(serializeCookie(cookie, "v", 3600), `${NAME}=v; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax`);
  });

  test('secure "auto": __Host-session over HTTPS, session over HTTP; __Secure-session with a path', () => {
    const auto = compileCookie({ secure: "auto" });
    assert.equal(serializeCookie(auto(true), "v", 60), `${NAME}=v; Max-Age=60; Path=/; HttpOnly; Secure; SameSite=Lax`);
    assert.equal(serializeCookie(auto(false), "v", 60), "session=v; Max-Age=60; Path=/; HttpOnly; SameSite=Lax");
    const scoped = compileCookie({ secure: "auto", path: "/app", sameSite: "Strict" });
    assert.equal(
      serializeCookie(scoped(true), "v", 60),
      "__Secure-session=v; Max-Age=60; Path=/app; HttpOnly; Secure; SameSite=Strict",
    );
    assert.equal(scoped(false).name, "session");
    assert.equal(compileCookie({ secure: "auto", domain: "example.com" })(true).name, "__Secure-session");
    assert.equal(compileCookie({ secure: false })(true).name, "session", "secure: false ignores the scheme");
  });

  test("options are resolved once: every request gets the same frozen object, later edits are not seen", () => {
    const options: CookieOptions = { secure: "auto", sameSite: "Strict" };
    const cookieFor = compileCookie(options);
    const first = cookieFor(true);
    options.sameSite = "Lax";
    options.name = "other";
    assert.equal(cookieFor(true), first);
    assert.equal(first.sameSite, "Strict");
    assert.equal(cookieFor(false), cookieFor(false));
    assert.ok(Object.isFrozen(first) && Object.isFrozen(cookieFor(false)));
    assert.throws(() => {
      (first as { name: string }).name = "x";
    }, TypeError);
  });

  test("__Host- needs Secure, Path=/ and no Domain, matched case-insensitively", () => {
    for (const name of ["__Host-sid", "__host-sid", "__HOST-sid"]) {
      assert.throws(() => compileCookie({ name, secure: false }), {
        name: "TypeError",
        message: new RegExp(`"${name}".*Secure.*secure is false`),
      });
      assert.throws(() => compileCookie({ name, path: "/app" }), {
        name: "TypeError",
        message: new RegExp(`"${name}" with path "/app".*Path=/`),
      });
      assert.throws(() => compileCookie({ name, domain: "example.com" }), {
        name: "TypeError",
        message: new RegExp(`"${name}" with domain "example.com".*Domain`),
      });
    }
    assert.equal(compileCookie({ name: "__Host-sid" })(false).name, "__Host-sid");
    assert.equal(compileCookie({ name: "__Host-sid", domain: "" })(true).domain, undefined, '"" means no Domain');
  });

  test("__Secure- needs Secure, matched case-insensitively", () => {
    for (const name of ["__Secure-sid", "__secure-sid"]) {
      assert.throws(() => compileCookie({ name, secure: false }), {
        name: "TypeError",
        message: new RegExp(`"${name}".*__Secure-.*secure is false`),
      });
    }
    const cookie = compileCookie({ name: "__Secure-sid", path: "/app", domain: "example.com" })(false);
    assert.equal(
      serializeCookie(cookie, "v", 1),
      "__Secure-sid=v; Max-Age=1; Path=/app; Domain=example.com; HttpOnly; Secure; SameSite=Lax",
    );
  });

  test('an explicit __Host- or __Secure- name with secure "auto" is refused: it would break over HTTP', () => {
    for (const name of ["__Host-sid", "__Secure-sid"]) {
      assert.throws(() => compileCookie({ name, secure: "auto" }), { name: "TypeError", message: /secure is "auto"/ });
    }
  });

  test('SameSite=None and Partitioned need secure: true (false and "auto" are refused)', () => {
    for (const secure of [false, "auto"] as const) {
      assert.throws(() => compileCookie({ sameSite: "None", secure }), {
        name: "TypeError",
        message: /sameSite "None".*Secure/,
      });
      assert.throws(() => compileCookie({ partitioned: true, secure }), {
        name: "TypeError",
        message: /partitioned true.*Secure/,
      });
      assert.throws(() => compileCookie({ partitioned: true, secure, sameSite: "Strict", path: "/app" }), TypeError);
    }
    const cookie = compileCookie({ sameSite: "None", partitioned: true })(false);
    assert.equal(
      serializeCookie(cookie, "v", 1),
      `${NAME}=v; Max-Age=1; Path=/; HttpOnly; Secure; SameSite=None; Partitioned`,
    );
  });

  test("names and attributes that would corrupt the header, and wrong types, are TypeErrors with the value", () => {
    const bad: [CookieOptions, RegExp][] = [
      [{ name: "a b" }, /name "a b"/],
      [{ name: "a;b" }, /name "a;b"/],
      [{ name: "" }, /name ""/],
      [{ name: "s\u00e9" }, /name "sé"/],
      [{ path: "/a;Domain=evil" }, /path "\/a;Domain=evil"/],
      [{ path: "app" }, /path "app".*start with/],
      [{ path: "/a\nb" }, /path "\/a\\nb"/],
      [{ domain: "a.com; Secure" }, /domain "a.com; Secure"/],
      [{ sameSite: "lax" as "Lax" }, /sameSite "lax"/],
      [{ secure: "yes" as "auto" }, /secure "yes"/],
      [{ httpOnly: "false" as unknown as boolean }, /httpOnly "false"/],
      [{ partitioned: 1 as unknown as boolean }, /partitioned 1/],
    ];
    for (const [options, message] of bad) {
      assert.throws(() => compileCookie(options), { name: "TypeError", message }, JSON.stringify(options));
    }
    assert.throws(() => compileCookie(null as unknown as CookieOptions), {
      name: "TypeError",
      message: /expected an object, got null/,
    });
  });
});

describe("serializeCookie", () => {
  test("Max-Age is floored and never negative; Domain only when set", () => {
    const cookie = compileCookie({ name: "sid", domain: "example.com", httpOnly: false })(true);
    assert.equal(
      serializeCookie(cookie, "v", 59.9),
      "sid=v; Max-Age=59; Path=/; Domain=example.com; Secure; SameSite=Lax",
    );
    assert.equal(serializeCookie(cookie, "", -5), "sid=; Max-Age=0; Path=/; Domain=example.com; Secure; SameSite=Lax");
  });
});

describe("requestIsSecure", () => {
  const request = (url: string, headers: Record<string, string> = {}) => new Request(url, { headers });

  test("without trustProxy only the URL's scheme counts", () => {
    assert.equal(requestIsSecure(request("https://app.test/")), true);
    assert.equal(requestIsSecure(request("http://app.test/")), false);
    const spoofed = request("http://app.test/", { "x-forwarded-proto": "https", forwarded: "proto=https" });
    assert.equal(requestIsSecure(spoofed), false);
    assert.equal(requestIsSecure(spoofed, false), false);
    assert.equal(requestIsSecure(request("https://app.test/", { "x-forwarded-proto": "http" })), true);
  });

  test("with trustProxy the first X-Forwarded-Proto value decides, case-insensitively", () => {
    const cases: [string, boolean][] = [
      ["https", true],
      ["HTTPS", true],
      [" https ", true],
      ["https, http", true],
      ["https,http", true],
      ["http", false],
      ["http, https", false],
      ["\u00a0https", false],
      ["wss", false],
    ];
    for (const [value, secure] of cases) {
      assert.equal(
        requestIsSecure(request("http://10.0.0.5/", { "x-forwarded-proto": value }), true),
        secure,
        JSON.stringify(value),
      );
    }
    assert.equal(
      requestIsSecure(request("https://10.0.0.5/", { "x-forwarded-proto": "http" }), true),
      false,
      "the proxy wins over the URL",
    );
    const two = new Headers();
    two.append("x-forwarded-proto", "https");
    two.append("x-forwarded-proto", "http");
    assert.equal(
      requestIsSecure(new Request("http://10.0.0.5/", { headers: two }), true),
      true,
      "first of two header lines",
    );
  });

  test("with trustProxy, Forwarded: proto= of the first element, quoted or not, when X-Forwarded-Proto is absent", () => {
    const cases: [string, boolean][] = [
      ["proto=https", true],
      ["for=192.0.2.60;proto=https;by=203.0.113.43", true],
      ['for=192.0.2.60; proto="https"', true],
      ["Proto=HTTPS", true],
      ['for="[2001:db8:cafe::17]:4711";proto=https', true],
      ['for="a,b;proto=http";proto=https', true],
      ['proto="ht\\tps"', true],
      ["for=192.0.2.43;proto=http, for=198.51.100.17;proto=https", false],
      ["proto=http", false],
      ['proto="http"', false],
      ["proto=\u00a0https", false],
    ];
    for (const [value, secure] of cases) {
      assert.equal(requestIsSecure(request("http://10.0.0.5/", { forwarded: value }), true), secure, value);
      assert.equal(
        requestIsSecure(request("https://10.0.0.5/", { forwarded: value }), true),
        secure,
        `${value} over https`,
      );
    }
  });

  test("with trustProxy, a Forwarded header without a usable proto leaves the URL's scheme", () => {
    for (
      const value of [
        "for=192.0.2.60",
        "for=a, for=b;proto=https",
        'proto="https',
        "garbage",
        "",
        ";;;",
        "proto=",
        'for="x\\',
      ] as const
    ) {
      assert.equal(requestIsSecure(request("http://10.0.0.5/", { forwarded: value }), true), false, value);
      assert.equal(requestIsSecure(request("https://10.0.0.5/", { forwarded: value }), true), true, value);
    }
  });

  test("with trustProxy, a 1 MB Forwarded header is read in linear time (does not hang)", () => {
    const started = performance.now();
    assert.equal(
      requestIsSecure(request("http://a/", { forwarded: `${"a=b;".repeat(250_000)}proto=https` }), true),
      true,
    );
    assert.equal(
      requestIsSecure(request("http://a/", { forwarded: `${"a;".repeat(250_000)}proto=https` }), true),
      false,
    );
    assert.ok(performance.now() - started < 5_000);
  });

  test("with trustProxy, X-Forwarded-Proto wins over Forwarded; an empty one is skipped", () => {
    assert.equal(
      requestIsSecure(request("http://a/", { "x-forwarded-proto": "http", forwarded: "proto=https" }), true),
      false,
    );
    assert.equal(
      requestIsSecure(request("http://a/", { "x-forwarded-proto": "https", forwarded: "proto=http" }), true),
      true,
    );
    assert.equal(
      requestIsSecure(request("http://a/", { "x-forwarded-proto": "", forwarded: "proto=https" }), true),
      true,
    );
    assert.equal(
      requestIsSecure(request("https://a/", { "x-forwarded-proto": " , http" }), true),
      true,
      "an empty first value falls through",
    );
  });
});
