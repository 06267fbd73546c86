/** Network address rules shared by the NATS and OIDC adapters. Pure. */

/**
 * Whether `host` (a URL's host, IPv6 without brackets) names this machine's loopback
 * interface: `localhost`, `127.0.0.0/8` or `::1`. Traffic to it never leaves the machine, so
 * it is the one place a secret may travel without TLS (local tests and development).
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
