/**
 * The SSH flags `device enroll` and `device rotate-key` share: the target, the key to log in
 * with, and which host key to trust (adapters/host/host_key.ts); and the connection made from
 * them, this machine when there is no --target.
 */
import { Option } from "@commander-js/extra-typings";
import * as z from "zod";
import { askSecret } from "../adapters/host/terminal.ts";
import { LocalTarget, type Target, TargetError } from "../adapters/host/target.ts";
import { parseSshTarget, type SshAddress, SshTarget } from "../adapters/host/ssh_target.ts";
import { defaultKnownHostsFile, verifyHostKey } from "../adapters/host/host_key.ts";
import { printLine } from "../adapters/output.ts";
import { UsageError } from "./_cli.ts";

/** How to reach a device over SSH, and which host key to trust (host_key.ts). */
export function sshOptions(): Option[] {
  return [
    new Option("--target <ssh-url>", "ssh://user@host[:port]; default: this machine")
      .env("FLEET_SSH_TARGET"),
    new Option("--ssh-key <path>", "private key for --target (default: ssh's own choice)")
      .env("FLEET_SSH_KEY"),
    new Option(
      "--host-key-fingerprint <SHA256:...>",
      "the device's SSH host key fingerprint (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on it)",
    ).env("FLEET_HOST_KEY_FINGERPRINT"),
    new Option(
      "--trust-on-first-use",
      "accept a device's SSH host key unchecked the first time, and record it",
    ).env("FLEET_TRUST_ON_FIRST_USE"),
    new Option("--known-hosts <path>", "the host keys enroll trusts and records")
      .default(defaultKnownHostsFile()).env("FLEET_KNOWN_HOSTS"),
  ];
}

export interface SshPlan {
  address: SshAddress;
  identityFile: string | undefined;
  knownHostsFile: string;
  fingerprint: string | undefined;
  trustOnFirstUse: boolean;
}

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** The values of {@link sshOptions} as commander hands them over. */
const SshFlags = z.object({
  target: z.string().optional(),
  sshKey: z.string().optional(),
  hostKeyFingerprint: z.string().optional(),
  trustOnFirstUse: z.boolean().optional(),
  knownHosts: z.string(),
});

/** The --target and host key flags, checked; undefined = this machine. */
export function planSsh(optionValues: object): SshPlan | undefined {
  const flags = SshFlags.parse(optionValues);
  const fingerprint = flags.hostKeyFingerprint;
  if (fingerprint !== undefined && !FINGERPRINT.test(fingerprint)) {
    throw new UsageError(
      `Invalid --host-key-fingerprint "${fingerprint}": give it as ssh-keygen -lf prints it, ` +
        `SHA256: and 43 base64 characters`,
    );
  }
  if (flags.target === undefined) return undefined;
  return {
    address: targetAddress(flags.target),
    identityFile: flags.sshKey,
    knownHostsFile: flags.knownHosts,
    fingerprint,
    trustOnFirstUse: flags.trustOnFirstUse === true,
  };
}

/** The device: over SSH as planned, or this machine. */
export async function connectTarget(ssh: SshPlan | undefined): Promise<Target> {
  return ssh ? await connectSsh(ssh) : new LocalTarget(askSecret);
}

/** Checks the host key first: an untrusted host gets nothing, not even a login attempt. */
async function connectSsh(ssh: SshPlan): Promise<SshTarget> {
  const trusted = await verifyHostKey(ssh);
  printLine(`host key of ${ssh.address.host}: ${trusted}`);
  return await SshTarget.connect({
    address: ssh.address,
    knownHostsFile: ssh.knownHostsFile,
    ...(ssh.identityFile ? { identityFile: ssh.identityFile } : {}),
    prompt: askSecret,
  });
}

/** A --target that is not an ssh:// URL is the user's input: exit code 2. */
function targetAddress(text: string): SshAddress {
  try {
    return parseSshTarget(text);
  } catch (error) {
    if (error instanceof TargetError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}
