/**
 * How a process proves who it is to NATS. Today: user/password (development) or nothing;
 * the identity work adds OIDC-token sources behind the same interface.
 */

import type { ConnectionOptions } from "@nats-io/nats-core";

/** The part of the connection options a credential source may set. */
export type CredentialOptions = Pick<
  ConnectionOptions,
  "user" | "pass" | "token" | "authenticator" | "inboxPrefix" | "tls"
>;

/** A source of NATS credentials. */
export interface CredentialSource {
  /** Short machine-readable kind, e.g. `"user-password"`, `"none"`. */
  readonly kind: string;
  /**
   * Connection options carrying the credentials, asked again before each first-connect
   * attempt so a source can refresh what it hands out. A source that must change them on
   * every reconnect returns an `authenticator`, which the client calls on each connect.
   */
  connectionOptions(): Promise<CredentialOptions>;
  /** What is used, for logs and errors; never includes a secret. */
  describe(): string;
  /**
   * The credentials are a bearer token that anyone who reads it can use (an OIDC access
   * token): never sent in clear beyond loopback.
   */
  readonly bearer?: boolean;
}

/** Credentials for a NATS user with a password (development and tests only). */
export function userPasswordCredentials(user: string, password: string): CredentialSource {
  return {
    kind: "user-password",
    connectionOptions: () => Promise.resolve({ user, pass: password }),
    describe: () => `user "${user}" with a password`,
  };
}

/** No credentials, for a server without authentication. */
export function noCredentials(): CredentialSource {
  return {
    kind: "none",
    connectionOptions: () => Promise.resolve({}),
    describe: () => "no credentials",
  };
}
