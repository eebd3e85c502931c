// Build step after tsc: gives the built package its `node` condition. dist/src/token.js and
// dist/src/_signature.js import "./_crypto.js" (Web Crypto), as the sources do; here they are made
// to import "#crypto" instead, which package.json's "imports" resolves to _crypto_node.js
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
  if (name !== "_crypto_node.js" && /["']node:/.test(text)) throw new Error(`${file} imports a node: module`);
  const next = text.replaceAll(/(from\s+)"\.\/_crypto\.js"/g, '$1"#crypto"');
  if (next === text) continue;
  writeFileSync(file, next);
  rewritten.push(name);
}
if (rewritten.sort().join() !== "_signature.js,token.js") {
  throw new Error(`expected token.js and _signature.js to import ./_crypto.js, rewrote: ${rewritten.join(", ")}`);
}
