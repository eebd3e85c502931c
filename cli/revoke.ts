/**
 * `pgsession revoke --user ID [--except HANDLE]`: sign a user out everywhere (after a password
 * change, a stolen laptop), optionally keeping one session.
 *
 * @module
 */

import type { Client } from "pg";
import { CliError, EXIT } from "./_fail.ts";
import type { Output } from "./_output.ts";
import { migrationHint, printable, storeOn } from "./sessions.ts";

/**
 * Deletes every live session of a user but the one `except` names, and prints how many.
 *
 * @param client An open connection.
 * @param table The table, optionally schema-qualified.
 * @param user The user id the application bound with `regenerate({ user })`.
 * @param except A handle from `pgsession sessions` to keep, or `undefined` to revoke them all.
 * @param out Where to print.
 * @returns The exit code.
 * @throws {CliError} When `except` names no live session of the user: a mistyped handle must not
 *   sign out the very session it was meant to keep, so nothing is revoked then.
 */
export async function revokeSessions(
  client: Client,
  table: string,
  user: string,
  except: string | undefined,
  out: Output,
): Promise<number> {
  const store = storeOn(client, table);
  const who = printable(JSON.stringify(user));
  let revoked: number;
  try {
    if (except !== undefined && !(await store.sessionsOf(user)).some((s) => s.handle === except)) {
      throw new CliError(
        `Cannot revoke the sessions of user ${who}: none of them has handle ${
          printable(except)
        }; nothing was revoked (see \`pgsession sessions --user ${who}\`)`,
        EXIT.USAGE,
      );
    }
    revoked = await store.revokeAll(user, { except });
  } catch (error) {
    throw migrationHint(error, "revoke sessions", table);
  }
  const kept = except === undefined ? "" : `; kept ${printable(except)}`;
  out.write(`Revoked ${revoked} session${revoked === 1 ? "" : "s"} of user ${who}${kept}\n`);
  return EXIT.OK;
}
