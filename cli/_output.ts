/**
 * Where the commands print: `process.stdout` and `process.stderr`, or a test's collector.
 *
 * @module
 */

/** A writable text stream; `isTTY` decides between progress lines and quiet output. */
export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
}
