// Crypto micro-benchmark (`npm run bench:crypto`): what hashing a token and verifying its signed
// cookie cost per request, Web Crypto against node:crypto, on a cache miss and on a cache hit.
// The Web Crypto path is the sources (src/, what Deno and Workers run); the node:crypto path is the
// built package (dist/, which Node resolves through package.json's `#crypto` import under the
// `node` condition). Both keep the same caches of hashes and verified values, so a miss is a
// cookie never seen before and a hit one of 1000 seen again. Run `npm run build` first.
//
// Per operation (handleOf + unsign of one cookie): CPU of the main thread and of the whole
// process (Web Crypto's work runs in libuv's thread pool), from /proc; latency one at a time, and
// latency with 20 in flight, as 20 concurrent requests would see it. Medians of --batches batches.
// Options: --ops N per batch (default 20000), --batches N (default 5). Not a test.
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { mainThreadCpu, processCpu } from "./_cpu.ts";
import * as webToken from "../src/id.ts";
import * as webSignature from "../src/_signature.ts";
import { SECRET } from "./_apps.ts";

const { values: args } = parseArgs({
  options: { ops: { type: "string", default: "20000" }, batches: { type: "string", default: "5" } },
});
const OPS = Number(args.ops);
const BATCHES = Number(args.batches);

const built = fileURLToPath(new URL("../dist/src/", import.meta.url));
if (!existsSync(`${built}token.js`)) throw new Error("no dist/: run npm run build first");
const nodeToken: typeof webToken = await import(pathToFileURL(`${built}token.js`).href);
const nodeSignature: typeof webSignature = await import(pathToFileURL(`${built}_signature.js`).href);

interface Impl {
  handleOf(token: string): Promise<string>;
  unsign(value: string, secrets: readonly string[]): Promise<string | null>;
  sign(token: string, secret: string): Promise<string>;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** One request's crypto: verify the cookie, hash its token. */
async function op(impl: Impl, value: string): Promise<void> {
  const token = await impl.unsign(value, [SECRET]);
  if (token === null) throw new Error("a signed value did not verify");
  await impl.handleOf(token);
}

async function measure(name: string, impl: Impl, fresh: boolean): Promise<Record<string, number | string>> {
  // Signed values: all different for a miss; 1000 that every batch repeats for a hit.
  const values = async (n: number): Promise<string[]> =>
    Promise.all(Array.from({ length: n }, () => impl.sign(webToken.generateId(), SECRET)));
  const reused = await values(1000);
  for (const v of reused) await op(impl, v); // warm: JIT, and the caches for the hit case
  const main: number[] = [];
  const all: number[] = [];
  const serial: number[] = [];
  const concurrent: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const batch = fresh ? await values(OPS) : Array.from({ length: OPS }, (_, i) => reused[i % reused.length]!);
    const m0 = mainThreadCpu(process.pid)!;
    const p0 = processCpu(process.pid)!;
    const lat: number[] = [];
    for (const v of batch) {
      const t = performance.now();
      await op(impl, v);
      lat.push(performance.now() - t);
    }
    main.push((mainThreadCpu(process.pid)! - m0) / OPS);
    all.push((processCpu(process.pid)! - p0) / OPS);
    serial.push(median(lat) * 1000);
    // 20 in flight: the latency each sees when 20 requests need their crypto at once.
    const more = fresh ? await values(2000) : reused;
    const inFlight: number[] = [];
    for (let i = 0; i < more.length; i += 20) {
      await Promise.all(
        more.slice(i, i + 20).map(async (v) => {
          const t = performance.now();
          await op(impl, v);
          inFlight.push(performance.now() - t);
        }),
      );
    }
    concurrent.push(median(inFlight) * 1000);
  }
  const r = (x: number): number => Math.round(x * 10) / 10;
  return {
    case: name,
    mainThreadUs: r(median(main)),
    processUs: r(median(all)),
    latencyUs: r(median(serial)),
    latency20InFlightUs: r(median(concurrent)),
  };
}

const web: Impl = { ...webToken, ...webSignature };
const node: Impl = { ...nodeToken, ...nodeSignature };
const rows = [
  await measure("Web Crypto, cache miss", web, true),
  await measure("Web Crypto, cache hit", web, false),
  await measure("node:crypto, cache miss", node, true),
  await measure("node:crypto, cache hit", node, false),
];
console.log(`handleOf + unsign per request, µs, median of ${BATCHES} batches of ${OPS} (Node ${process.version})\n`);
console.log("| case | main thread CPU | process CPU | latency, 1 in flight | latency, 20 in flight |");
console.log("|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.case} | ${r.mainThreadUs} | ${r.processUs} | ${r.latencyUs} | ${r.latency20InFlightUs} |`);
}
