#!/usr/bin/env node
// The `pgsession` command as npm links it. The published package runs the compiled CLI in dist/.
// A clone of the repository has the TypeScript sources and no dist/ (only packing builds it), so
// there the command runs the sources through tsx, a devDependency: `npx pgsession` works right
// after `npm ci`, with no build step, and never runs a stale build.
import { existsSync } from "node:fs";
import process from "node:process";

const source = new URL("../cli/pgsession.ts", import.meta.url);
if (existsSync(source)) {
  let tsx;
  try {
    tsx = await import("tsx/esm/api");
  } catch {
    process.stderr.write(
      "pgsession: Cannot run the command from the sources: tsx is not installed; run `npm ci` in the clone\n",
    );
    process.exit(2);
  }
  tsx.register();
  await import(source.href);
} else {
  await import("../dist/cli/pgsession.js");
}
