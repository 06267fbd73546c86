/**
 * Checks a machine's SSH host key before anything is sent to it (see core/host_key.ts for the
 * rules): reads the keys it presents with ssh-keyscan, weighs them against a pinned
 * fingerprint or the tool's own known_hosts, and records an accepted new key there. The
 * connection that follows is made with StrictHostKeyChecking=yes against that file, so a host
 * that swaps its key after the scan is refused by ssh itself.
 */
import { decideHostKey, hostKeysFor, knownHostsName } from "../../core/host_key.ts";
import type { SshAddress } from "./ssh_target.ts";
import { spawnCollect, TargetError } from "./target.ts";

/** Where enrollment keeps the host keys it trusts: `$XDG_CONFIG_HOME/fleet/known_hosts`. */
export function defaultKnownHostsFile(): string {
  const config = Deno.env.get("XDG_CONFIG_HOME") ??
    `${Deno.env.get("HOME") ?? "/root"}/.config`;
  return `${config}/fleet/known_hosts`;
}

export interface HostKeyCheck {
  address: SshAddress;
  knownHostsFile: string;
  /** `SHA256:…` the key must have. */
  fingerprint?: string | undefined;
  trustOnFirstUse: boolean;
}

/**
 * @returns a line saying which key was trusted and why, for the person watching.
 * @throws {TargetError} naming the keys seen and expected when the key is not trusted, or
 *   when the host cannot be scanned.
 */
export async function verifyHostKey(check: HostKeyCheck): Promise<string> {
  const { address, knownHostsFile } = check;
  const where = `${address.user}@${address.host}:${address.port}`;
  const name = knownHostsName(address.host, address.port);
  const scan = await spawnCollect("ssh-keyscan", [
    "-T",
    "15",
    "-p",
    String(address.port),
    address.host,
  ]);
  // ssh-keyscan names a host on port 22 bare and others as [host]:port, like known_hosts.
  const seen = await hostKeysFor(scan.stdout, name);
  if (seen.length === 0) {
    throw new TargetError(
      `Cannot read the SSH host key of ${where}: ${
        scan.stderr.trim().split("\n").filter((l) => !l.startsWith("#")).join(" / ") ||
        "ssh-keyscan got none"
      }`,
    );
  }
  let recorded = "";
  try {
    recorded = await Deno.readTextFile(knownHostsFile);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const known = await hostKeysFor(recorded, name);
  const decision = decideHostKey({
    where,
    seen,
    known,
    knownHostsFile,
    fingerprint: check.fingerprint,
    trustOnFirstUse: check.trustOnFirstUse,
  });
  if ("refuse" in decision) throw new TargetError(decision.refuse);
  const key = decision.accept;
  if (decision.record) {
    await Deno.mkdir(knownHostsFile.replace(/\/[^/]*$/, "") || "/", {
      recursive: true,
      mode: 0o700,
    });
    await Deno.writeTextFile(knownHostsFile, `${name} ${key.type} ${key.blob}\n`, {
      append: true,
      mode: 0o600,
    });
  }
  const why = check.fingerprint !== undefined
    ? "matches --host-key-fingerprint"
    : decision.record
    ? `trusted on first use, recorded in ${knownHostsFile}`
    : `as recorded in ${knownHostsFile}`;
  return `${key.fingerprint} (${key.type}) ${why}`;
}
