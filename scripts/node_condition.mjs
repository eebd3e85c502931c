// Build step after tsc: gives the built package its `node` condition. The modules of dist/src that
// import "./_crypto.js" (Web Crypto), as the sources do (id.js, _signature.js), are made to
// import "#crypto" instead, which package.json's "imports" resolves to _crypto_node.js
// (node:crypto, synchronous) under Node and to _crypto.js everywhere else. The sources stay
// web-standard and relative, so deno, tsx and bundlers of the sources need no mapping.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = new URL("../dist/src/", import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const target = pkg.imports?.["#crypto"];
if (target?.node !== "./dist/src/_crypto_node.js" || target?.default !== "./dist/src/_crypto.js") {
  throw new Error(`package.json imports["#crypto"] is ${JSON.stringify(target)}`);
}
const rewritten = [];
for (const name of readdirSync(dir)) {
  if (!name.endsWith(".js")) continue;
  const file = join(dir, name);
  const text = readFileSync(file, "utf8");
  if (!name.endsWith("_node.js") && /["']node:/.test(text)) throw new Error(`${file} imports a node: module`);
  const next = text.replaceAll(/(from\s*)(["'])\.\/_crypto\.js\2/g, '$1"#crypto"');
  if (next === text) continue;
  writeFileSync(file, next);
  rewritten.push(name);
}
// A rewrite that matched nothing (another emit style, a moved module) would ship Web Crypto to
// Node without a word: fail instead.
if (!rewritten.includes("id.js")) {
  throw new Error(`expected at least dist/src/id.js to import ./_crypto.js; rewrote: ${rewritten.join(", ") || "none"}`);
}
