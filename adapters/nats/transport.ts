/**
 * How a NATS server list is reached: TCP (`nats://`, `tls://`, `host:port`) or WebSocket
 * (`ws://`, `wss://`), which of its URLs carry data in clear, and the server-certificate pin.
 * Pure: no I/O.
 */

import { isLoopbackHost } from "../../core/network.ts";

/** TLS settings of a NATS connection (`--nats-ca`, `--nats-pin`, `[nats] ca_file`, `pin`). */
export interface NatsTls {
  /** PEM file of the CA that signed the server certificate; without it the system's roots. */
  caFile?: string;
  /**
   * The server's public key, `sha256//<base64>`: the SHA-256 of the certificate's
   * SubjectPublicKeyInfo (DER), the format of curl's `--pinnedpubkey`. It survives a
   * certificate renewal that keeps the key. Print it with
   * `openssl x509 -in server.pem -pubkey -noout | openssl pkey -pubin -outform der |
   * openssl dgst -sha256 -binary | base64`.
   */
  pin?: string;
}

/** The TLS settings of a config file's `[nats]` table: `ca_file` and `pin`. */
export function natsTlsFromConfig(
  nats: { ca_file?: string | undefined; pin?: string | undefined },
): NatsTls {
  return {
    ...(nats.ca_file !== undefined ? { caFile: nats.ca_file } : {}),
    ...(nats.pin !== undefined ? { pin: nats.pin } : {}),
  };
}

/** The shape of a {@link NatsTls.pin}: `sha256//` and 44 characters of base64. */
export const PIN_PATTERN = /^sha256\/\/[A-Za-z0-9+/]{43}=$/;

/** The openssl line that prints a pin, for messages and help. */
export const PIN_COMMAND = "openssl x509 -in server.pem -pubkey -noout | openssl pkey -pubin " +
  "-outform der | openssl dgst -sha256 -binary | base64";

/** What connecting to a server list needs, or why the list cannot be used. */
export type TransportPlan =
  | {
    kind: "tcp" | "websocket";
    /** The URLs whose traffic is in clear (no TLS). */
    plaintext: string[];
  }
  | { kind: "invalid"; problem: string };

/**
 * Decides the transport of `servers` with `tls`: all TCP or all WebSocket (one process uses
 * one NATS transport: the client library keeps it process-wide). A TCP list is encrypted as
 * a whole once one URL is `tls://` or a CA or pin is set (the client then requires TLS of
 * every server); a WebSocket URL is encrypted when it is `wss://`. A pin needs TCP: Deno's
 * WebSocket does not show the server's certificate.
 */
export function planTransport(servers: readonly string[], tls: NatsTls): TransportPlan {
  const schemes = servers.map(scheme);
  const ws = schemes.filter((s) => s === "ws" || s === "wss").length;
  if (ws > 0 && ws < servers.length) {
    return invalid(
      `NATS URLs ${servers.join(", ")} mix WebSocket (ws://, wss://) and TCP URLs; ` +
        `use one kind for all servers`,
    );
  }
  const unknown = servers.find((_, i) => schemes[i] === undefined);
  if (unknown !== undefined) {
    return invalid(
      `NATS URL "${unknown}" has an unknown scheme; use nats://, tls://, ws:// or wss://`,
    );
  }
  if (tls.pin !== undefined && !PIN_PATTERN.test(tls.pin)) {
    return invalid(
      `NATS server pin "${tls.pin}" is not sha256//<base64 of the SHA-256 of the server's ` +
        `public key>; print it with: ${PIN_COMMAND}`,
    );
  }
  if (ws > 0) {
    if (tls.pin !== undefined) {
      return invalid(
        `a NATS server pin needs tls:// URLs: over WebSocket (${servers.join(", ")}) the ` +
          `server's certificate cannot be checked against a pin; use the CA file instead`,
      );
    }
    return { kind: "websocket", plaintext: servers.filter((_, i) => schemes[i] === "ws") };
  }
  const encrypted = schemes.includes("tls") || tls.caFile !== undefined ||
    tls.pin !== undefined;
  return { kind: "tcp", plaintext: encrypted ? [] : [...servers] };
}

/**
 * Why `secret` (by default an OIDC access token, a bearer credential) must not be sent to the
 * `plaintext` URLs, or `undefined` when each of them is on this machine (loopback).
 */
export function plaintextTokenProblem(
  plaintext: readonly string[],
  secret = "an OIDC access token",
): string | undefined {
  const exposed = plaintext.filter((url) => !isLoopbackHost(hostOf(url)));
  if (exposed.length === 0) return undefined;
  return `Refusing to send ${secret} to NATS at ${exposed.join(", ")} without ` +
    `TLS: anyone on the network path could read it and connect as this identity. Use ` +
    `tls:// (or wss://) URLs and pass the CA that signed the server's certificate ` +
    `(--nats-ca, or ca_file under [nats] in a config file); plaintext is allowed only to ` +
    `127.0.0.1, ::1 or localhost`;
}

/**
 * Why `secret` cannot go to `servers` with `tls`: the list cannot be used (see
 * {@link planTransport}) or would carry it in clear beyond loopback; `undefined` when it may.
 */
export function secretTransportProblem(
  servers: readonly string[],
  tls: NatsTls,
  secret?: string,
): string | undefined {
  const plan = planTransport(servers, tls);
  return plan.kind === "invalid" ? plan.problem : plaintextTokenProblem(plan.plaintext, secret);
}

/**
 * What a TLS library's refusal of the server's certificate means and what to do, or
 * `undefined` when `message` is not about the certificate. Deno's WebSocket (rustls) says
 * `invalid peer certificate: UnknownIssuer`, node:tls `unable to verify the first certificate`.
 */
export function certificateRefusal(message: string, tls: NatsTls): string | undefined {
  if (/UnknownIssuer|unable to (verify|get( local)? issuer)|self[- ]signed cert/i.test(message)) {
    const trusted = tls.caFile === undefined
      ? "a CA this machine trusts"
      : `the CA in ${tls.caFile}`;
    return `its TLS certificate is not signed by ${trusted} (${message}); if this is the ` +
      `right server, give the PEM file of the CA that signed its certificate (--nats-ca, or ` +
      `ca_file under [nats] in a config file)`;
  }
  if (/not valid for name|NotValidForName/i.test(message)) {
    return `its TLS certificate is not issued for the host in the URL (${message}); use the ` +
      `name or address the certificate is issued for`;
  }
  if (/expired|not yet valid|NotValidYet/i.test(message)) {
    return `its TLS certificate is outside its validity period (${message}); renew it, or ` +
      `check this machine's clock`;
  }
  return undefined;
}

/** The host names and addresses of the URLs, for checking a server certificate. */
export function serverHosts(servers: readonly string[]): string[] {
  return [...new Set(servers.map(hostOf))];
}

/** `nats`, `tls`, `ws`, `wss` (a bare `host:port` is `nats`), or `undefined` for others. */
function scheme(url: string): string | undefined {
  const match = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (match === null) return "nats";
  const s = (match[1] ?? "").toLowerCase();
  return ["nats", "tls", "ws", "wss"].includes(s) ? s : undefined;
}

/** The host of a URL or `host:port`, without brackets around an IPv6 address. */
function hostOf(url: string): string {
  const rest = url.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/^[^@/]*@/, "");
  const authority = rest.split("/")[0] ?? "";
  const v6 = /^\[([^\]]+)\]/.exec(authority);
  if (v6) return (v6[1] ?? "").toLowerCase();
  return authority.replace(/:\d*$/, "").toLowerCase();
}

function invalid(problem: string): TransportPlan {
  return { kind: "invalid", problem };
}
