/** A provisioned VM's recorded state (`vm.json` in its directory) and its name rule. */
import * as z from "zod";
import { VmArches } from "./arch.ts";
import { Accels } from "./qemu_args.ts";
import { VmUsageError } from "./errors.ts";

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A VM name is its host name and directory name: an RFC 1123 label, like a device id. */
export function validateVmName(name: string): string {
  if (!NAME.test(name)) {
    throw new VmUsageError(
      `Invalid VM name "${name}": use a-z, 0-9 and '-', at most 63, starting and ending with a letter or digit`,
    );
  }
  return name;
}

/** What runs a VM: qemu started directly, or a libvirt daemon's domain. */
export const VmDrivers = ["qemu", "libvirt"] as const;
export type VmDriver = typeof VmDrivers[number];

/** How to reach a VM over SSH: what the enroll step consumes (shaped like an SshTarget's). */
export const VmSshAccessSchema = z.object({
  address: z.object({
    user: z.string(),
    host: z.string(),
    port: z.number().int().min(1).max(65535),
  }),
  identityFile: z.string(),
  /** Empty known_hosts of the VM's own: its host keys are new on every provisioning. */
  knownHostsFile: z.string(),
});
export type VmSshAccess = z.infer<typeof VmSshAccessSchema>;

export const VmStateSchema = z.object({
  name: z.string(),
  arch: z.enum(VmArches),
  accel: z.enum(Accels),
  memoryMb: z.number().int().positive(),
  cpus: z.number().int().positive(),
  /** The base image's cache key (`<arch>-<suite>-<hash>`) and directory. */
  image: z.object({ key: z.string(), dir: z.string() }),
  ssh: VmSshAccessSchema,
  /** The guest's address on qemu's user-mode network (always 10.0.2.15 with its DHCP). */
  guestIp: z.string(),
  consoleLog: z.string(),
  createdAt: z.string(),
  /** What runs the VM. */
  driver: z.discriminatedUnion("kind", [
    z.object({
      /** qemu started directly, in the background. */
      kind: z.literal("qemu"),
      pidFile: z.string(),
      qmpSocket: z.string(),
      /** The qemu command line, for a person debugging a VM that does not boot. */
      command: z.array(z.string()),
    }),
    z.object({
      /** A domain defined in, and started by, a libvirt daemon. */
      kind: z.literal("libvirt"),
      uri: z.string(),
      domain: z.string(),
      /** The domain XML it was defined from. */
      xmlFile: z.string(),
    }),
  ]),
});
export type VmState = z.infer<typeof VmStateSchema>;

/** qemu's user-mode network gives the first DHCP client this address. */
export const USER_NET_GUEST_IP = "10.0.2.15";

/** On qemu's user-mode network the guest reaches the host's loopback at this address. */
export const USER_NET_HOST_IP = "10.0.2.2";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * The URLs as a VM on the user-mode network must write them: a loopback host (the host's
 * own NATS) becomes {@link USER_NET_HOST_IP}; any other host is left alone. Text that is not
 * a URL is left alone too (the NATS client reports it).
 */
export function urlsFromGuest(urls: readonly string[]): string[] {
  return urls.map((text) => {
    try {
      const url = new URL(text);
      if (!LOOPBACK_HOSTS.has(url.hostname)) return text;
      url.hostname = USER_NET_HOST_IP;
      return url.href;
    } catch {
      return text;
    }
  });
}

/** The OpenSSH client's arguments to run `command` in the VM: key only, never a prompt. */
export function sshArgs(access: VmSshAccess, command: readonly string[]): string[] {
  return [
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    // The VM made its host keys at first boot: record them, trust them from then on.
    "-o",
    "StrictHostKeyChecking=accept-new",
    "-o",
    `UserKnownHostsFile=${access.knownHostsFile}`,
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
    "-i",
    access.identityFile,
    "-p",
    String(access.address.port),
    `${access.address.user}@${access.address.host}`,
    "--",
    ...command,
  ];
}
