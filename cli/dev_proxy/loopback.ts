/**
 * The one check between the dev proxy and an open relay.
 *
 * @module
 */

/**
 * Whether a host name or address is this machine.
 *
 * @param host A URL's hostname (IPv6 with or without brackets).
 * @returns True for `localhost`, `127.x.x.x` and `::1`.
 */
export function isLoopbackHost(host: string): boolean {
  const bare: string = host.replace(/^\[(.*)\]$/, "$1");
  return bare === "localhost" || bare === "::1" || /^127\.\d+\.\d+\.\d+$/.test(bare);
}
