import * as z from "zod";
import { FleetError } from "./errors.ts";

/** RFC 1123 DNS label: what every deviceId, namespace and deployment name must be. */
export const DNS_LABEL_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_LABEL_MAX = 63;
export const DNS_LABEL_RULE =
  "an RFC 1123 label: 1-63 characters of lowercase a-z, 0-9 and '-', starting and ending with a letter or digit";

/** The kinds of identifier that appear in keys and subjects. */
export type IdentifierKind =
  | "device id"
  | "namespace"
  | "deployment name"
  | "service name"
  | "principal";

/** Why `value` is not a DNS label, or undefined when it is one. */
export function identifierProblem(value: string): string | undefined {
  if (value.length === 0) return "it is empty";
  if (value.length > DNS_LABEL_MAX) return `it is ${value.length} characters long (max 63)`;
  if (/[.*>]/.test(value)) return "dots and the wildcards '*' and '>' are not allowed";
  if (/\s/.test(value)) return "whitespace is not allowed";
  if (/[A-Z]/.test(value)) return "uppercase letters are not allowed";
  if (!DNS_LABEL_PATTERN.test(value)) {
    return /^[-]|[-]$/.test(value)
      ? "it must start and end with a letter or digit"
      : "only lowercase a-z, 0-9 and '-' are allowed";
  }
  return undefined;
}

/** An identifier that broke the naming rule; the message names the value and the rule. */
export class InvalidIdentifierError extends FleetError {
  override name = "InvalidIdentifierError";
  constructor(
    readonly what: IdentifierKind,
    readonly value: string,
    readonly problem: string,
  ) {
    super(
      "usage",
      `Invalid ${what} ${JSON.stringify(value)}: ${problem}; it must be ${DNS_LABEL_RULE}`,
    );
  }
}

/** Returns `value` when it is a valid identifier, throws InvalidIdentifierError otherwise. */
export function validateIdentifier(kind: IdentifierKind, value: string): string {
  const problem = identifierProblem(value);
  if (problem !== undefined) throw new InvalidIdentifierError(kind, value, problem);
  return value;
}

/** Zod schema for an identifier, with the same readable message as validateIdentifier. */
export function identifierSchema(kind: IdentifierKind) {
  return z.string().superRefine((value, ctx) => {
    const problem = identifierProblem(value);
    if (problem !== undefined) {
      ctx.addIssue({
        code: "custom",
        message: `invalid ${kind} ${
          JSON.stringify(value)
        }: ${problem}; it must be ${DNS_LABEL_RULE}`,
      });
    }
  });
}
