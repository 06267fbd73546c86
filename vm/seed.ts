/**
 * The cloud-init NoCloud seed of a Fleet VM: the three files cloud-init reads from a disk
 * labelled `cidata`. Pure; `adapters/vm/seed_image.ts` writes them into a VFAT image.
 */
import { stringify } from "yaml";
import { VmUsageError } from "./errors.ts";

/** The file-system label cloud-init looks for (`ds-identify` matches it case-insensitively). */
export const SEED_LABEL = "cidata";

export interface SeedSpec {
  /** The VM's name, also its host name. */
  hostname: string;
  /** Unique per provisioning: cloud-init reruns its first-boot modules when it changes. */
  instanceId: string;
  user: string;
  /** One OpenSSH public key line (`ssh-ed25519 AAAA... comment`). */
  sshPublicKey: string;
}

export interface SeedFiles {
  "meta-data": string;
  "user-data": string;
  "network-config": string;
}

const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const PUBLIC_KEY =
  /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-\S+) [A-Za-z0-9+/=]+( .*)?$/;

/** The seed's files. @throws {VmUsageError} for a user name or key cloud-init would reject. */
export function seedFiles(spec: SeedSpec): SeedFiles {
  if (!USER_NAME.test(spec.user)) {
    throw new VmUsageError(
      `Invalid VM user "${spec.user}": use a Linux user name (a-z, 0-9, '_', '-', at most 32)`,
    );
  }
  const key = spec.sshPublicKey.trim();
  if (key.includes("\n") || !PUBLIC_KEY.test(key)) {
    throw new VmUsageError(
      `The SSH public key is not one OpenSSH key line ("ssh-ed25519 AAAA..."): ${
        JSON.stringify(key.slice(0, 40))
      }`,
    );
  }
  const metaData = { "instance-id": spec.instanceId, "local-hostname": spec.hostname };
  const userData = {
    hostname: spec.hostname,
    users: [{
      name: spec.user,
      groups: ["sudo"],
      shell: "/bin/bash",
      sudo: "ALL=(ALL) NOPASSWD:ALL",
      lock_passwd: true,
      ssh_authorized_keys: [key],
    }],
    // The host name in /etc/hosts, so sudo does not complain that it cannot resolve it.
    manage_etc_hosts: "localhost",
    ssh_pwauth: false,
    disable_root: true,
    // The VM boots the kernel and initrd kept beside its image, never its own initramfs, and
    // rebuilding that one (when podman's packages trigger it) takes minutes under TCG.
    bootcmd: [[
      "sed",
      "-i",
      "s/^update_initramfs=.*/update_initramfs=no/",
      "/etc/initramfs-tools/update-initramfs.conf",
    ]],
  };
  // Version 2 (netplan syntax): DHCP on the one virtio NIC, eth0 by the kernel command line
  // (cloud-init's ifupdown renderer on Debian 12 needs a real name, not a match pattern).
  const networkConfig = { version: 2, ethernets: { eth0: { dhcp4: true } } };
  return {
    "meta-data": stringify(metaData),
    "user-data": "#cloud-config\n" + stringify(userData),
    "network-config": stringify(networkConfig),
  };
}
