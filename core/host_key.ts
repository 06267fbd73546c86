/**
 * Whether to trust the SSH host key a device presents before enrollment sends it anything:
 * one pinned by fingerprint, one recorded on an earlier visit, or (only when the person asks
 * for it) the first one seen. Pure: the keys seen and recorded come in, a decision goes out.
 */

/** A public host key as OpenSSH writes it: `ssh-ed25519 AAAA…`. */
export interface HostKey {
  /** `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ... */
  type: string;
  /** The key blob, base64 as in known_hosts. */
  blob: string;
  /** `SHA256:…`, what `ssh-keygen -lf` prints. */
  fingerprint: string;
}

/** The known_hosts name of a host: `host`, or `[host]:port` off port 22 (as OpenSSH writes it). */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** OpenSSH's fingerprint of a key blob: `SHA256:` and the unpadded base64 of its SHA-256. */
export async function hostKeyFingerprint(blob: string): Promise<string> {
  const bytes = Uint8Array.from(atob(blob), (c) => c.charCodeAt(0));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `SHA256:${btoa(String.fromCharCode(...digest)).replace(/=+$/, "")}`;
}

/**
 * The keys for `name` in known_hosts (or ssh-keyscan) text: lines `names type blob`, where
 * names is a comma-separated list. Comments, markers (`@revoked`) and hashed names are
 * skipped: the file enroll reads is its own and written in plain form.
 */
export async function hostKeysFor(text: string, name: string): Promise<HostKey[]> {
  const keys: HostKey[] = [];
  for (const line of text.split("\n")) {
    const [names, type, blob] = line.trim().split(/\s+/);
    if (!names || !type || !blob || names.startsWith("#") || names.startsWith("@")) continue;
    if (!names.split(",").includes(name)) continue;
    keys.push({ type, blob, fingerprint: await hostKeyFingerprint(blob) });
  }
  return keys;
}

/** Accepted: connect pinned to `key`; `record` = add it to the known_hosts file first. */
export type HostKeyDecision =
  | { accept: HostKey; record: boolean }
  | { refuse: string };

/** What {@link decideHostKey} weighs. */
export interface HostKeyEvidence {
  /** `user@host:port`, for messages. */
  where: string;
  /** What the host presented just now. */
  seen: readonly HostKey[];
  /** What the known_hosts file holds for it. */
  known: readonly HostKey[];
  /** The known_hosts file, for messages. */
  knownHostsFile: string;
  /** `--host-key-fingerprint`. */
  fingerprint?: string | undefined;
  /** `--trust-on-first-use`: accept a host the file does not know. */
  trustOnFirstUse: boolean;
}

function listed(keys: readonly HostKey[]): string {
  return keys.map((k) => `${k.fingerprint} (${k.type})`).join(", ");
}

/** Key types in the order a first use prefers them (what OpenSSH prefers too). */
const PREFERRED = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"];

function rank(key: HostKey): number {
  const at = PREFERRED.indexOf(key.type);
  return at === -1 ? PREFERRED.length : at;
}

/**
 * A pinned fingerprint wins over the file (the person checked it on the device); else a key
 * the file holds must be among those seen; an unknown host is refused unless trust on first
 * use was asked for. Refusals name the fingerprints seen and expected.
 */
export function decideHostKey(e: HostKeyEvidence): HostKeyDecision {
  const isKnown = (key: HostKey) => e.known.some((k) => k.type === key.type && k.blob === key.blob);
  if (e.fingerprint !== undefined) {
    const match = e.seen.find((k) => k.fingerprint === e.fingerprint);
    if (match === undefined) {
      return {
        refuse:
          `The SSH host key of ${e.where} does not match: it presented ${
            listed(e.seen)
          }, expected ${e.fingerprint} (--host-key-fingerprint). Someone may be between you ` +
          `and the device; nothing was sent to it`,
      };
    }
    return { accept: match, record: !isKnown(match) };
  }
  if (e.known.length > 0) {
    const match = e.seen.find(isKnown);
    if (match === undefined) {
      return {
        refuse:
          `The SSH host key of ${e.where} changed: it presented ${listed(e.seen)}, expected ${
            listed(e.known)
          } (recorded in ${e.knownHostsFile}). Someone may be ` +
          `between you and the device, so nothing was sent to it; if the device was reinstalled, ` +
          `check its new key on the device (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) ` +
          `and pass --host-key-fingerprint`,
      };
    }
    return { accept: match, record: false };
  }
  const first = [...e.seen].sort((a, b) => rank(a) - rank(b))[0];
  if (first === undefined) {
    return { refuse: `${e.where} presented no SSH host key` };
  }
  if (!e.trustOnFirstUse) {
    return {
      refuse:
        `The SSH host key of ${e.where} is unknown (it presented ${
          listed(e.seen)
        }): check it on the device (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pass ` +
        `--host-key-fingerprint ${first.fingerprint}, or pass --trust-on-first-use to record ` +
        `it in ${e.knownHostsFile} unchecked`,
    };
  }
  return { accept: first, record: true };
}
