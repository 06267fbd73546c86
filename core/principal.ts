/**
 * Who is asking (DESIGN.md §9): the principal of a person, the operator or a service is an
 * RFC 1123 label derived from its access token's issuer and subject. It ends every command
 * subject it may publish (`device-commands.<deviceId>.<verb>.<principal>`) and names its
 * inbox, so the broker, not the message, says who sent a request.
 *
 * Pure: the callout derives it from the verified claims, the client from its own token.
 */

import { createHash } from "node:crypto";
import { DNS_LABEL_MAX, validateIdentifier } from "./ids.ts";

/** Hex digits of SHA-256 kept: 64 bits, so two identities never share a principal in practice. */
const HASH_DIGITS = 16;
/** What is left of a label for the readable part, before `-<hash>`. */
const READABLE_MAX = DNS_LABEL_MAX - HASH_DIGITS - 1;

/**
 * The principal of the identity `subject` of `issuer`: a readable part from the subject
 * (lowercased, runs of anything but a-z and 0-9 as one `-`, cut to 46 characters) and 16 hex
 * digits of SHA-256 over issuer and subject. Stable, at most 63 characters, an RFC 1123 label;
 * the same subject at two issuers gives two principals.
 */
export function principalOf(issuer: string, subject: string): string {
  const hash = createHash("sha256").update(`${issuer}\n${subject}`).digest("hex")
    .slice(0, HASH_DIGITS);
  const readable = subject.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+/, "")
    .slice(0, READABLE_MAX).replace(/-+$/, "");
  return readable === "" ? `p-${hash}` : `${readable}-${hash}`;
}

/**
 * The principal of a token's claims: `iss` with `sub` (or, for a token without a subject,
 * `client_id`); undefined when the claims do not name both.
 */
export function principalOfClaims(claims: Readonly<Record<string, unknown>>): string | undefined {
  const text = (name: string): string | undefined => {
    const value = Object.hasOwn(claims, name) ? claims[name] : undefined;
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  const issuer = text("iss");
  const subject = text("sub") ?? text("client_id");
  return issuer !== undefined && subject !== undefined ? principalOf(issuer, subject) : undefined;
}

/**
 * The inbox prefix of a principal's connection: its replies and watch deliveries arrive under
 * `<prefix>.>`, the only inbox it may subscribe to. `_INBOX_p_` cannot begin a device's inbox
 * (`_INBOX_<deviceId>`: a device id has no `_`), so no device shares a person's inbox.
 *
 * @throws {InvalidIdentifierError} when `principal` is not an RFC 1123 label.
 */
export function principalInboxPrefix(principal: string): string {
  validateIdentifier("principal", principal);
  return `_INBOX_p_${principal}`;
}
