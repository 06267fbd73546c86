/**
 * What goes into a `fleet_<version>_<arch>.deb`, as text: the control file, the maintainer
 * scripts, the `/usr/bin/fleet` launcher and the `fleet-agent` systemd unit. Pure; the
 * build (`build.ts`) lays these out next to the Deno runtime and the bundled program.
 */
import { GLIBC_PATHS } from "../adapters/code_pages.ts";

/** A package cannot be built as asked; the message says which value and why. */
export class PackagingError extends Error {
  override readonly name = "PackagingError";
}

/** Debian architecture names of the packages we build, with their Deno npm package. */
export const DEB_ARCHES = {
  amd64: { denoPackage: "@deno/linux-x64-glibc", qemu: undefined },
  arm64: { denoPackage: "@deno/linux-arm64-glibc", qemu: "qemu-aarch64-static" },
} as const;

export type DebArch = keyof typeof DEB_ARCHES;

/** Where the package puts things; the launcher finds the rest relative to itself. */
export const DebPaths = {
  launcher: "usr/bin/fleet",
  runtime: "usr/lib/fleet/deno",
  /** The bundled program, split into the entry point and the chunks it loads on demand. */
  programDir: "usr/lib/fleet/app",
  program: "usr/lib/fleet/app/main.js",
  unit: "lib/systemd/system/fleet-agent.service",
  configDir: "etc/fleet-agent",
} as const;

export function debFileName(version: string, arch: DebArch): string {
  return `fleet_${version}_${arch}.deb`;
}

/** Debian versions must start with a digit; semver pre-releases sort with `~`. */
export function debVersion(version: string): string {
  if (!/^\d[0-9A-Za-z.+~-]*$/.test(version)) {
    throw new PackagingError(
      `"${version}" cannot be a Debian package version (it must start with a digit)`,
    );
  }
  return version.replace("-", "~");
}

export function controlFile(
  options: { version: string; arch: DebArch; installedSizeKb: number },
): string {
  return [
    "Package: fleet",
    `Version: ${debVersion(options.version)}`,
    `Architecture: ${options.arch}`,
    "Maintainer: Fleet developers <fleet@nationtech.io>",
    `Installed-Size: ${Math.ceil(options.installedSizeKb)}`,
    "Section: admin",
    "Priority: optional",
    // The agent drives podman through its REST API; `fleet device enroll` installs and sets
    // it up, so the package itself only recommends it (the CLI runs without it).
    "Depends: libc6 (>= 2.31)",
    "Recommends: podman (>= 4.3), uidmap, systemd",
    "Homepage: https://github.com/nationtech/fleet",
    "Description: Fleet device agent and control-plane CLI",
    " The fleet-agent service runs the containers that the Fleet control plane",
    " assigns to this device through podman, and reports their state over NATS.",
    " The fleet command also holds the operator, the NATS auth callout and the CLI.",
    "",
  ].join("\n");
}

/**
 * `/usr/bin/fleet`: runs the bundle with the packaged runtime. Paths are relative to the
 * script so an unpacked package (`dpkg-deb -x`) runs in place; caches go to the caller's
 * DENO_DIR or a private temp dir, never to a home directory the service user may lack.
 */
/** How the launcher runs the bundle: no project config, lockfile or code cache to find. */
export const LAUNCHER_RUN_FLAGS = ["--allow-all", "--no-config", "--no-lock", "--no-code-cache"];

/**
 * V8 settings of the agent's unit: a 1 MiB young generation instead of V8's default keeps an
 * idle agent about 4 MB smaller (bench:agent); it allocates little, so scavenges stay rare.
 * Lite mode (no optimizing compiler) saves another 6 MB of code and feedback (64 → 58 MB
 * idle with 10 deployments): the agent runs no hot loop an optimizer would pay off on.
 * `--expose-gc` lets the agent compact its heap after start-up and bursts (agent/memory_keeper.ts).
 */
export const AGENT_V8_FLAGS = "--max-semi-space-size=1,--lite-mode,--expose-gc";

/**
 * What the agent's unit runs first: `fleet agent --help` loads the agent's part of the bundle,
 * so Deno's analysis of those modules is in the unit's cache before the agent starts. An agent
 * that started on an empty cache kept about 25 MB more resident for its whole life (bench:agent:
 * 96 MB instead of 69 MB); a warm start costs a fraction of a second.
 */
export const AGENT_WARM_UP_ARGS = ["agent", "--help"];

/**
 * The CAs Deno trusts for TLS (NATS over tls:// or wss://, the OIDC provider): the system's
 * store first, where a company CA is installed, then the roots Deno carries, for a device
 * without ca-certificates. Deno alone trusts only the roots it carries.
 */
export const TLS_CA_STORE = "system,mozilla";

/**
 * The agent unit's environment apart from `DENO_DIR` (the unit's cache directory).
 * bench:agent starts the agent and its runtime floor with it too, so its figures are the
 * unit's: Deno's update check, which the unit turns off, made the floor 2 MB larger.
 */
export const AGENT_ENVIRONMENT: Readonly<Record<string, string>> = {
  NO_COLOR: "1",
  DENO_V8_FLAGS: AGENT_V8_FLAGS,
  DENO_NO_UPDATE_CHECK: "1",
  DENO_TLS_CA_STORE: TLS_CA_STORE,
};

export function launcherScript(): string {
  return `#!/bin/sh
# Fleet: runs the bundled program with the Deno runtime shipped in this package.
set -e
here=$(dirname "$(readlink -f "$0")")
lib="$here/../lib/fleet"
export DENO_NO_UPDATE_CHECK=1
export DENO_NO_PROMPT=1
: "\${DENO_TLS_CA_STORE:=${TLS_CA_STORE}}"
export DENO_TLS_CA_STORE
: "\${DENO_DIR:=\${CACHE_DIRECTORY:-\${TMPDIR:-/tmp}/fleet-deno-$(id -u)}}"
export DENO_DIR
exec "$lib/deno" run ${LAUNCHER_RUN_FLAGS.join(" ")} "$lib/app/main.js" "$@"
`;
}

/** Where the agent writes on a device; its Deno permissions name these. */
export interface AgentPaths {
  /** `state_dir` of the config: the desired-state cache. */
  stateDir: string;
  /** Where the podman socket is: `/run/user/<uid>/podman/podman.sock` for rootless podman. */
  podmanSocketDir: string;
}

/** The paths of an enrolled device (`fleet device enroll` writes its files there). */
export const DEVICE_AGENT_PATHS: AgentPaths = {
  stateDir: "/var/lib/fleet-agent",
  // The agent user's uid is known only once enroll created it; the rest of /run/user is
  // other users' (mode 0700), and all of it is read-only to the agent (ProtectHome=read-only).
  podmanSocketDir: "/run/user",
};

/**
 * What the agent may do under Deno instead of `--allow-all`: write its state and connect to the
 * podman socket (which takes read and write access to its path), use the network, read the
 * environment variables and system facts it reports, and call the C library's `madvise` to give
 * back the start-up's code pages (about 20 MB, adapters/code_pages.ts). No subprocess, other
 * native library or remote import. Calling libc can do what the agent user may do; the unit's
 * sandbox below, not Deno's permissions, is what bounds that user, and it already runs
 * containers through podman.
 * Neither reads nor the network are narrowed: the device policy resolves the host paths
 * workloads ask for wherever they are, and the NATS servers and the OIDC issuer come from the
 * config, which may change after installation. What the agent user can read is bounded by the
 * unit's sandbox and the files' modes.
 */
export function agentDenoPermissions(paths: AgentPaths): string[] {
  return [
    "--no-prompt",
    "--allow-read",
    `--allow-write=${[paths.stateDir, paths.podmanSocketDir].join(",")}`,
    "--allow-net",
    `--allow-env=${AGENT_ENV.join(",")}`,
    `--allow-sys=${AGENT_SYS.join(",")}`,
    `--allow-ffi=${GLIBC_PATHS.join(",")}`,
  ];
}

/**
 * systemd's (journald output, config-error hold), the agent command's own flags, and where
 * the agent user lives (paths no workload may mount).
 */
const AGENT_ENV = [
  "INVOCATION_ID",
  "JOURNAL_STREAM",
  "NO_COLOR",
  "FLEET_AGENT_CONFIG",
  "FLEET_LOG_LEVEL",
  "FLEET_LOG_FORMAT",
  "HOME",
  "XDG_RUNTIME_DIR",
];
/** The inventory: host name, kernel and memory. */
const AGENT_SYS = ["hostname", "osRelease", "systemMemoryInfo"];

/**
 * The packaged runtime on the bundle with the agent's permissions, for a package installed
 * under `root` (a device's is "/"; a test runs an unpacked package from its folder).
 */
export function agentRuntimeArgs(paths: AgentPaths, root = "/"): string[] {
  return [`${root}${DebPaths.runtime}`, ...agentRunArgs(paths, `${root}${DebPaths.program}`)];
}

/** `deno run` with the launcher's flags and the agent's permissions, running `program`. */
export function agentRunArgs(paths: AgentPaths, program: string): string[] {
  return [
    "run",
    ...LAUNCHER_RUN_FLAGS.filter((flag) => flag !== "--allow-all"),
    ...agentDenoPermissions(paths),
    program,
  ];
}

/** The agent's command line in its unit, running `fleet <args>`. */
export function agentCommandLine(args: string[]): string {
  return [...agentRuntimeArgs(DEVICE_AGENT_PATHS), ...args].join(" ");
}

/**
 * The agent's unit. It runs as the `fleet-agent` user whose rootless podman holds the
 * containers, so stopping or restarting the agent never stops them. systemd before 254
 * ignores RestartSteps/RestartMaxDelaySec (one notice at load) and restarts every 5 s.
 * It runs the runtime itself rather than `/usr/bin/fleet` (which allows everything), with
 * the sandbox below: the agent can write only its state and cache directories, and reach
 * nothing but its podman socket and the network.
 */
export function agentUnit(): string {
  return `[Unit]
Description=Fleet device agent (runs this device's containers with podman)
Documentation=https://github.com/nationtech/fleet
Wants=network-online.target
After=network-online.target
# Never give up: a device without network for a day must come back on its own.
StartLimitIntervalSec=0

[Service]
Type=simple
User=fleet-agent
ExecStartPre=/bin/sh -c '${agentCommandLine(AGENT_WARM_UP_ARGS)} >/dev/null'
ExecStart=${agentCommandLine(["agent", "run", "--config", `/${DebPaths.configDir}/config.toml`])}
Restart=always
RestartSec=5s
RestartSteps=6
RestartMaxDelaySec=2min
CacheDirectory=fleet-agent
StateDirectory=fleet-agent
${
    Object.entries(AGENT_ENVIRONMENT).map(([name, value]) => `Environment=${name}=${value}`).join(
      "\n",
    )
  }
Environment=DENO_DIR=/var/cache/fleet-agent
StandardOutput=journal
StandardError=journal
SyslogIdentifier=fleet-agent
# The containers belong to the user's podman service, not to this unit.
KillMode=mixed
TimeoutStopSec=20s
${AGENT_SANDBOX.join("\n")}

[Install]
WantedBy=multi-user.target
`;
}

/**
 * The agent's sandbox. Writable: StateDirectory and CacheDirectory only (ProtectSystem=strict).
 * Homes and /run/user are read-only (ProtectHome=read-only rather than hidden: the device
 * policy resolves workloads' host paths there too, and the podman socket lives in
 * /run/user/<uid>; connecting to a socket writes nothing to the file system). No
 * MemoryDenyWriteExecute: V8 compiles code at run time. MemoryMax: an idle agent is about
 * 38 MB resident (`deno task bench:agent`).
 */
export const AGENT_SANDBOX = [
  "NoNewPrivileges=yes",
  "CapabilityBoundingSet=",
  "AmbientCapabilities=",
  "ProtectSystem=strict",
  "ProtectHome=read-only",
  "PrivateTmp=yes",
  "PrivateDevices=yes",
  "PrivateUsers=yes",
  "ProtectKernelTunables=yes",
  "ProtectKernelModules=yes",
  "ProtectKernelLogs=yes",
  "ProtectControlGroups=yes",
  "ProtectClock=yes",
  "ProtectHostname=yes",
  "ProtectProc=invisible",
  "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
  "RestrictNamespaces=yes",
  "RestrictRealtime=yes",
  "RestrictSUIDSGID=yes",
  "LockPersonality=yes",
  "SystemCallArchitectures=native",
  "SystemCallFilter=@system-service",
  "SystemCallFilter=~@privileged @resources",
  "PrivateMounts=yes",
  "SystemCallErrorNumber=EPERM",
  "UMask=0077",
  "MemoryMax=256M",
];

/**
 * A drop-in that orders the agent after the systemd of its service user (uid known only once
 * enroll created the user): at boot the agent starts once that user's podman socket listens,
 * and at shutdown it stops before that systemd stops the containers, so a reboot is not seen
 * by the agent as containers failing, nor reported to the control plane as such.
 */
export function agentUnitUserDropIn(uid: number): string {
  if (!Number.isSafeInteger(uid) || uid < 0) {
    throw new PackagingError(`uid ${uid} is not a user id (a whole number, 0 or more)`);
  }
  return `# Written by fleet device enroll.
[Unit]
Wants=user@${uid}.service
After=user@${uid}.service
`;
}

/** Reloads systemd and restarts an agent that was running, so an upgrade takes effect. */
export function postinstScript(): string {
  return `#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  if [ "$1" = configure ] && [ -n "$2" ]; then
    systemctl try-restart fleet-agent.service || true
  fi
fi
`;
}

/** Stops the agent on removal (not on upgrade); its containers keep running. */
export function prermScript(): string {
  return `#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl disable --now fleet-agent.service || true
fi
`;
}
