#!/usr/bin/env node
/**
 * `pgsession`: the command-line tool for the session table: `migrate`, `gc`, `stats`. Runs on
 * Node (`npx pgsession`, the package's `bin`) and Deno (`deno run -A cli/pgsession.ts`).
 * `pgsession --help` lists commands, options and exit codes.
 *
 * @module
 */

import process from "node:process";
import { main } from "./_main.ts";

process.exitCode = await main(process.argv.slice(2), process.env, process.stdout, process.stderr);
