/**
 * The version `pgsession --version` prints: the same as package.json and deno.json (a test
 * compares them), kept in code so it needs no file read on any runtime.
 *
 * @module
 */

/** The package version. */
export const VERSION: string = "0.3.0";
