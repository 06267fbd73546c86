/**
 * Secrets on the command line are in every local user's `ps` (and /proc/<pid>/cmdline) for as
 * long as the command runs. Secret flags read a file, or standard input for `-`; the two that
 * can still carry one (`--nats-password`, and `--oidc-key` given the key itself) warn when they
 * do, pointing at their environment variable or file form.
 */
import type { CommandUnknownOpts } from "@commander-js/extra-typings";
import { UsageError } from "../core/errors.ts";

/**
 * A secret from a file, or from standard input for `-`. A trailing newline is dropped.
 * @throws {UsageError} naming the flag when the file is missing or empty.
 */
export async function readSecret(flag: string, path: string): Promise<string> {
  let text: string;
  try {
    text = path === "-"
      ? await new Response(Deno.stdin.readable).text()
      : await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`${flag} ${path} does not exist`);
    }
    throw error;
  }
  const secret = text.replace(/\r?\n$/, "");
  if (secret === "") {
    throw new UsageError(
      `${flag} ${path === "-" ? "(standard input)" : path} is empty: it must hold the secret`,
    );
  }
  return secret;
}

/** Flags that may hold a secret, with the form to use instead. */
const SECRET_FLAGS: Record<string, { secret: (value: string) => boolean; instead: string }> = {
  natsPassword: {
    secret: () => true,
    instead: "--nats-password-file (or FLEET_NATS_PASSWORD)",
  },
  oidcKey: {
    // A path is fine; the key itself is not.
    secret: (value) => /^\s*(\{|-----BEGIN)/.test(value),
    instead: "a key file, or FLEET_OIDC_KEY",
  },
};

/** A warning for each secret `command` was given on its command line. */
export function secretsOnCommandLine(command: CommandUnknownOpts): string[] {
  const values = command.opts() as Record<string, unknown>;
  return Object.entries(SECRET_FLAGS).flatMap(([name, rule]) => {
    const value = values[name];
    if (command.getOptionValueSource(name) !== "cli" || typeof value !== "string") return [];
    if (!rule.secret(value)) return [];
    const flag = command.options.find((o) => o.attributeName() === name)?.long ?? name;
    return [
      `${flag} on the command line shows the secret to every user of this machine (ps); use ${rule.instead}`,
    ];
  });
}
