/**
 * The steps that turn a Debian machine into a fleet device, each idempotent: it looks first
 * and changes only what differs, and says which. Order matters: podman and the service user
 * before the package (its unit runs as that user), config before the service.
 */
import type { Target } from "../adapters/host/target.ts";
import { formatDiff } from "../core/mod.ts";
import { agentUnitUserDropIn } from "../packaging/deb.ts";
import { isUntouched, maskSecrets, sha256, stampConfig } from "./config_stamp.ts";

export const AGENT_USER = "fleet-agent";
export const CONFIG_PATH = "/etc/fleet-agent/config.toml";
export const DEVICE_KEY_PATH = "/etc/fleet-agent/device-key.json";
/** The CA of the NATS server's certificate on the device (`[nats] ca_file`). */
export const NATS_CA_PATH = "/etc/fleet-agent/nats-ca.pem";
export const STATE_DIR = "/var/lib/fleet-agent";
const AGENT_UNIT = "fleet-agent.service";
const AGENT_UNIT_DROP_IN = "/etc/systemd/system/fleet-agent.service.d/10-podman-user.conf";
/** The SHA-256 of the .deb enroll installed last. */
export const PACKAGE_RECORD_PATH = "/var/lib/fleet-enroll/package.sha256";
/** What rootless podman needs beside podman itself on Debian. */
const PODMAN_PACKAGES = ["podman", "uidmap", "slirp4netns", "dbus-user-session"];

/** What a step did; `detail` completes "<title>: …" for the person watching. */
export interface StepOutcome {
  changed: boolean;
  detail: string;
}

/** Facts the first step reads and later steps use. */
export interface TargetFacts {
  os: string;
  /** Debian architecture: amd64 or arm64. */
  arch: string;
}

/** Decides whether an existing config may be replaced; shown the diff. */
export type ConfirmOverwrite = (path: string, diff: string) => Promise<boolean>;

/** A step failed; the message says what, where, and what to look at. */
export class EnrollError extends Error {
  override readonly name = "EnrollError";
}

async function must(target: Target, argv: string[], what: string, sudo = true) {
  const r = await target.run(argv, { sudo });
  if (r.code !== 0) {
    throw new EnrollError(
      `${what} failed on ${target.description} (${argv.join(" ")} exited with ${r.code}): ${
        (r.stderr || r.stdout).trim().split("\n").slice(-3).join(" / ")
      }`,
    );
  }
  return r.stdout;
}

export async function inspectSystem(target: Target): Promise<TargetFacts & StepOutcome> {
  const release = await target.run(["cat", "/etc/os-release"]);
  const fields = new Map(
    release.stdout.split("\n").filter((l) => l.includes("=")).map((l) => {
      const at = l.indexOf("=");
      return [l.slice(0, at), l.slice(at + 1).replace(/^"|"$/g, "")] as const;
    }),
  );
  const family = `${fields.get("ID") ?? ""} ${fields.get("ID_LIKE") ?? ""}`;
  if (!/\bdebian\b/.test(family)) {
    throw new EnrollError(
      `${target.description} runs ${fields.get("PRETTY_NAME") ?? "an unknown OS"}; ` +
        `enroll supports Debian and its derivatives (Raspberry Pi OS, Ubuntu)`,
    );
  }
  const arch =
    (await must(target, ["dpkg", "--print-architecture"], "Reading the architecture", false))
      .trim();
  if (arch !== "amd64" && arch !== "arm64") {
    throw new EnrollError(
      `${target.description} is ${arch}; Fleet packages exist for amd64 and arm64`,
    );
  }
  if ((await target.run(["test", "-d", "/run/systemd/system"])).code !== 0) {
    throw new EnrollError(
      `${target.description} does not run systemd, which keeps the agent running`,
    );
  }
  const os = fields.get("PRETTY_NAME") ?? "Debian";
  return { os, arch, changed: false, detail: `${os}, ${arch}` };
}

async function installedVersion(target: Target, pkg: string): Promise<string | undefined> {
  const r = await target.run(["dpkg-query", "-W", "-f", "${Status} ${Version}", pkg]);
  const m = /^install ok installed (\S+)$/.exec(r.stdout.trim());
  return m?.[1];
}

export async function ensurePodman(target: Target): Promise<StepOutcome> {
  const missing = [];
  for (const pkg of PODMAN_PACKAGES) {
    if (await installedVersion(target, pkg) === undefined) missing.push(pkg);
  }
  if (missing.length > 0) {
    await must(target, ["apt-get", "update", "-qq"], "apt-get update");
    await must(
      target,
      ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", ...missing],
      `Installing ${missing.join(", ")}`,
    );
  }
  const version = await installedVersion(target, "podman");
  return missing.length > 0
    ? { changed: true, detail: `installed ${missing.join(", ")} (podman ${version})` }
    : { changed: false, detail: `podman ${version} already installed` };
}

/** A regular (non-system) user, so useradd allocates subordinate ids for rootless podman. */
export async function ensureAgentUser(target: Target): Promise<StepOutcome & { uid: number }> {
  let changed = false;
  let id = await target.run(["id", "-u", AGENT_USER]);
  if (id.code !== 0) {
    await must(target, [
      "useradd",
      "--create-home",
      "--shell",
      "/usr/sbin/nologin",
      "--comment",
      "Fleet agent (runs this device's containers)",
      AGENT_USER,
    ], `Creating the ${AGENT_USER} user`);
    changed = true;
    id = await target.run(["id", "-u", AGENT_USER]);
  }
  const uid = Number(id.stdout.trim());
  for (const file of ["/etc/subuid", "/etc/subgid"]) {
    if ((await target.run(["grep", "-q", `^${AGENT_USER}:`, file])).code !== 0) {
      throw new EnrollError(
        `${AGENT_USER} has no range in ${file} on ${target.description}, so rootless podman ` +
          `cannot run containers; add one (usermod --add-subuids/--add-subgids) and enroll again`,
      );
    }
  }
  const detail = changed
    ? `created ${AGENT_USER} (uid ${uid})`
    : `${AGENT_USER} exists (uid ${uid})`;
  return { changed, detail, uid };
}

/** Linger starts the user's systemd at boot, and with it the podman socket. */
export async function ensureLinger(target: Target): Promise<StepOutcome> {
  if ((await target.run(["test", "-e", `/var/lib/systemd/linger/${AGENT_USER}`])).code === 0) {
    return { changed: false, detail: "already enabled" };
  }
  await must(target, ["loginctl", "enable-linger", AGENT_USER], "Enabling linger");
  return { changed: true, detail: "enabled (the user's services start at boot)" };
}

export function podmanSocketPath(uid: number): string {
  return `/run/user/${uid}/podman/podman.sock`;
}

export async function ensurePodmanSocket(target: Target, uid: number): Promise<StepOutcome> {
  const user = ["systemctl", "--user", `--machine=${AGENT_USER}@`];
  const enabled = await target.run([...user, "is-enabled", "podman.socket"], { sudo: true });
  const active = await target.run([...user, "is-active", "podman.socket"], { sudo: true });
  if (enabled.stdout.trim() === "enabled" && active.stdout.trim() === "active") {
    return { changed: false, detail: `listening at ${podmanSocketPath(uid)}` };
  }
  // The user's manager may still be starting right after enable-linger.
  let last = "";
  for (let attempt = 0; attempt < 20; attempt++) {
    const r = await target.run([...user, "enable", "--now", "podman.socket"], { sudo: true });
    if (r.code === 0) return { changed: true, detail: `enabled at ${podmanSocketPath(uid)}` };
    last = r.stderr.trim();
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new EnrollError(
    `Could not enable ${AGENT_USER}'s podman socket on ${target.description}: ${last}`,
  );
}

/**
 * Installs the package when the device has another version (or none), or the same version
 * from another build: enroll records the SHA-256 of the .deb it installed, so a rebuilt
 * package is not taken for the one already there. A device whose package enroll did not
 * install (no record) gets it installed again once.
 */
export async function ensurePackage(
  target: Target,
  pkg: { path: string; version: string },
): Promise<StepOutcome> {
  const data = await Deno.readFile(pkg.path);
  const digest = await sha256(data);
  const current = await installedVersion(target, "fleet");
  const sameVersion = current === pkg.version;
  if (sameVersion && (await readRootFile(target, PACKAGE_RECORD_PATH))?.trim() === digest) {
    return { changed: false, detail: `fleet ${current} already installed` };
  }
  // One root shell does it all: a fresh 0700 directory only root can reach (not a name in
  // /tmp that another user could have put there first), the bytes from stdin, their SHA-256
  // checked on the device against what was read here, and only then dpkg.
  const install = await target.run([
    "sh",
    "-c",
    "set -e; dir=$(mktemp -d /tmp/fleet-enroll.XXXXXX); trap 'rm -rf \"$dir\"' EXIT; " +
    'chmod 0700 "$dir"; cat > "$dir/$1"; ' +
    'got=$(sha256sum "$dir/$1" | cut -d " " -f 1); ' +
    'if [ "$got" != "$2" ]; then echo "sha256 $got" >&2; exit 86; fi; ' +
    'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $3 "$dir/$1"',
    "sh",
    pkg.path.split("/").pop()!,
    digest,
    sameVersion ? "--reinstall" : "",
  ], { sudo: true, stdin: data });
  if (install.code === 86) {
    const got = /sha256 ([0-9a-f]+)/.exec(install.stderr)?.[1] ?? "unknown";
    throw new EnrollError(
      `The package that reached ${target.description} is not ${pkg.path}: its SHA-256 there is ` +
        `${got}, expected ${digest}; nothing was installed (the copy was altered on the way ` +
        `or on the device)`,
    );
  }
  if (install.code !== 0) {
    throw new EnrollError(
      `Installing ${pkg.path} failed on ${target.description} (apt-get exited with ` +
        `${install.code}): ${
          (install.stderr || install.stdout).trim().split("\n").slice(-3).join(" / ")
        }`,
    );
  }
  await must(
    target,
    [
      "sh",
      "-c",
      'mkdir -p "${1%/*}" && printf "%s\\n" "$2" > "$1"',
      "sh",
      PACKAGE_RECORD_PATH,
      digest,
    ],
    `Recording the installed package in ${PACKAGE_RECORD_PATH}`,
  );
  return {
    changed: true,
    detail: sameVersion
      ? `reinstalled fleet ${pkg.version} (not the build enroll installed before)`
      : current
      ? `upgraded fleet ${current} → ${pkg.version}`
      : `installed fleet ${pkg.version}`,
  };
}

export async function readRootFile(target: Target, path: string): Promise<string | undefined> {
  const r = await target.run(
    ["sh", "-c", 'if [ -e "$1" ]; then cat "$1"; else exit 3; fi', "sh", path],
    { sudo: true },
  );
  if (r.code === 3) return undefined;
  if (r.code !== 0) throw new EnrollError(`Reading ${path} on ${target.description}: ${r.stderr}`);
  return r.stdout;
}

/** Writes root:fleet-agent 0640 (the agent reads, nobody else), atomically. */
export async function writeAgentFile(target: Target, path: string, content: string): Promise<void> {
  const r = await target.run([
    "sh",
    "-c",
    'umask 077 && tmp=$(mktemp "$1.XXXXXX") && cat > "$tmp" && chown root:"$2" "$tmp" && ' +
    'chmod 0640 "$tmp" && mv -f "$tmp" "$1"',
    "sh",
    path,
    AGENT_USER,
  ], { sudo: true, stdin: content });
  if (r.code !== 0) throw new EnrollError(`Writing ${path} on ${target.description}: ${r.stderr}`);
}

export async function hasDeviceKey(target: Target): Promise<boolean> {
  return (await readRootFile(target, DEVICE_KEY_PATH)) !== undefined;
}

/** Writes the NATS CA when the device has another one (or none). */
export async function ensureNatsCa(target: Target, pem: string): Promise<StepOutcome> {
  if (await readRootFile(target, NATS_CA_PATH) === pem) {
    return { changed: false, detail: `${NATS_CA_PATH} unchanged` };
  }
  await writeAgentFile(target, NATS_CA_PATH, pem);
  return { changed: true, detail: `wrote ${NATS_CA_PATH}` };
}

/**
 * Writes the device key when a new one is given; keeps the one on the device otherwise (a
 * provider hands out a key only once).
 */
export async function ensureDeviceKey(
  target: Target,
  key: string | undefined,
): Promise<StepOutcome> {
  const current = await readRootFile(target, DEVICE_KEY_PATH);
  if (key === undefined) {
    if (current === undefined) {
      throw new EnrollError(
        `${target.description} has no device key at ${DEVICE_KEY_PATH} and none was given ` +
          `(pass --device-key, or let enroll create the identity)`,
      );
    }
    return { changed: false, detail: `kept the key at ${DEVICE_KEY_PATH}` };
  }
  if (current === key) return { changed: false, detail: `${DEVICE_KEY_PATH} unchanged` };
  await writeAgentFile(target, DEVICE_KEY_PATH, key);
  return { changed: true, detail: `wrote ${DEVICE_KEY_PATH} (mode 0640)` };
}

/**
 * Writes the config when it differs. A config enroll did not write, or that was changed on the
 * device since, is replaced only after `confirm` saw the diff.
 */
export async function ensureConfig(
  target: Target,
  config: string,
  confirm: ConfirmOverwrite,
): Promise<StepOutcome> {
  const current = await readRootFile(target, CONFIG_PATH);
  const stamped = await stampConfig(config);
  if (current === stamped) return { changed: false, detail: `${CONFIG_PATH} unchanged` };
  // Enroll's own untouched config is simply replaced (new labels apply); anything else the
  // device holds is shown and replaced only when confirmed.
  const foreign = current !== undefined && !await isUntouched(current);
  if (
    foreign && !await confirm(CONFIG_PATH, formatDiff(maskSecrets(current), maskSecrets(stamped)))
  ) {
    throw new EnrollError(
      `Left ${CONFIG_PATH} on ${target.description} as it was: overwriting was not confirmed ` +
        `(nothing else was changed after this point; pass --yes to overwrite without asking)`,
    );
  }
  await writeAgentFile(target, CONFIG_PATH, stamped);
  return {
    changed: true,
    detail: current === undefined ? `wrote ${CONFIG_PATH} (mode 0640)` : `updated ${CONFIG_PATH}`,
  };
}

/**
 * Enables and starts the agent, ordered after the systemd of `uid` (its podman); restarts it
 * when something it reads changed.
 */
export async function ensureService(
  target: Target,
  uid: number,
  restart: boolean,
): Promise<StepOutcome> {
  const dropIn = agentUnitUserDropIn(uid);
  const ordered = (await readRootFile(target, AGENT_UNIT_DROP_IN)) === dropIn;
  if (!ordered) {
    const r = await target.run([
      "sh",
      "-c",
      'mkdir -p "${1%/*}" && cat > "$1.tmp" && chmod 0644 "$1.tmp" && mv -f "$1.tmp" "$1"',
      "sh",
      AGENT_UNIT_DROP_IN,
    ], { sudo: true, stdin: dropIn });
    if (r.code !== 0) {
      throw new EnrollError(`Writing ${AGENT_UNIT_DROP_IN} on ${target.description}: ${r.stderr}`);
    }
    await must(target, ["systemctl", "daemon-reload"], "Reloading systemd");
  }
  const enabled = (await target.run(["systemctl", "is-enabled", AGENT_UNIT])).stdout.trim();
  const active = (await target.run(["systemctl", "is-active", AGENT_UNIT])).stdout.trim();
  if (enabled !== "enabled") {
    await must(target, ["systemctl", "enable", "--now", AGENT_UNIT], "Enabling fleet-agent");
    if (active === "active" && restart) {
      await must(target, ["systemctl", "restart", AGENT_UNIT], "Restarting fleet-agent");
    }
    return { changed: true, detail: "enabled and started" };
  }
  if (active !== "active") {
    await must(target, ["systemctl", "start", AGENT_UNIT], "Starting fleet-agent");
    return { changed: true, detail: "started" };
  }
  if (restart) {
    await must(target, ["systemctl", "restart", AGENT_UNIT], "Restarting fleet-agent");
    return { changed: true, detail: "restarted to pick up the changes" };
  }
  return ordered
    ? { changed: false, detail: "running" }
    : { changed: true, detail: `running, now ordered after user@${uid}.service (its podman)` };
}
