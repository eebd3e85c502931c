/**
 * The optional peer dependencies of the command: `pg` for every command, `ws` for `dev-proxy`.
 * The library itself needs neither, so neither is a dependency; each is imported when a command
 * first needs it, with one message saying how to install it.
 *
 * @module
 */

import { CliError, EXIT } from "./_fail.ts";

/**
 * Imports an optional peer dependency.
 *
 * @param name The package, for the message.
 * @param what Completes "Cannot …", e.g. `"connect"`.
 * @param load The `import()` of the package, so its types come along.
 * @returns The module.
 * @throws {CliError} With exit code 2 when it is not installed, saying how to install it.
 */
export async function importPeer<T>(name: "pg" | "ws", what: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    throw new CliError(
      `Cannot ${what}: the pgsession command needs the ${name} package (an optional peer dependency); ` +
        `install it with \`npm install ${name}\``,
      EXIT.USAGE,
      { cause: error },
    );
  }
}
