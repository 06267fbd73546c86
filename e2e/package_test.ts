/**
 * The packages a field engineer installs: `deno task package` builds both, each holds what
 * it says, the amd64 one runs here from its unpacked tree, and the arm64 one runs under
 * qemu-user: `fleet --version`, then an agent that connects to a loopback NATS and runs a
 * deployment's container through podman.
 */
import assert from "node:assert/strict";
import { buildPackages, projectVersion } from "../packaging/build.ts";
import {
  type AgentPaths,
  agentRuntimeArgs,
  DebPaths,
  LAUNCHER_RUN_FLAGS,
} from "../packaging/deb.ts";
import { startFleet, waitForStatus, webDeployment } from "./_helpers.ts";
import { waitFor } from "../adapters/timers.ts";
import { NatsDeviceLabelStore } from "../cli/device_labels.ts";

/** The `-L` sysroot of Debian's libc6-arm64-cross, which qemu-aarch64 loads libraries from. */
const ARM64_SYSROOT = "/usr/aarch64-linux-gnu";
const AARCH64_ELF_MACHINE = 183;
const X86_64_ELF_MACHINE = 62;

async function output(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env: { NO_COLOR: "1", ...env } }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function elfMachine(path: string): Promise<number> {
  const head = new Uint8Array(20);
  using file = await Deno.open(path);
  await file.read(head);
  assert.deepEqual([...head.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], `${path} is an ELF file`);
  return head[18]! | (head[19]! << 8);
}

/** The arm64 launcher's command, spelled out for qemu (no binfmt_misc in a container). */
function qemuFleet(root: string, args: string[]): string[] {
  return [
    "-L",
    ARM64_SYSROOT,
    `${root}/${DebPaths.runtime}`,
    "run",
    ...LAUNCHER_RUN_FLAGS,
    `${root}/${DebPaths.program}`,
    ...args,
  ];
}

Deno.test(
  "deno task package: amd64 and arm64 packages hold what they say and run (arm64 under qemu-user)",
  { sanitizeOps: false, sanitizeResources: false },
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "fleet-package-test-" });
    try {
      const version = await projectVersion();
      const built = await buildPackages({ outDir: `${dir}/dist`, arches: ["amd64", "arm64"] });
      assert.deepEqual(
        built.map((p) => p.path.split("/").pop()),
        [`fleet_${version}_amd64.deb`, `fleet_${version}_arm64.deb`],
      );
      const roots: Record<string, string> = {};
      for (const { arch, path } of built) {
        const fields = await output("dpkg-deb", ["--field", path, "Package", "Architecture"]);
        assert.equal(fields.code, 0, fields.stderr);
        assert.match(fields.stdout, new RegExp(`Package: fleet\nArchitecture: ${arch}`));
        const listing = await output("dpkg-deb", ["--contents", path]);
        for (const p of [DebPaths.launcher, DebPaths.runtime, DebPaths.program, DebPaths.unit]) {
          assert.match(listing.stdout, new RegExp(` root/root .* \\./${p}\\n`), `${arch}: ${p}`);
        }
        assert.match(listing.stdout, /-rwxr-xr-x root\/root .* \.\/usr\/bin\/fleet\n/);
        roots[arch] = `${dir}/${arch}`;
        const x = await output("dpkg-deb", ["-x", path, roots[arch]!]);
        assert.equal(x.code, 0, x.stderr);
      }
      assert.equal(await elfMachine(`${roots.amd64}/${DebPaths.runtime}`), X86_64_ELF_MACHINE);
      assert.equal(await elfMachine(`${roots.arm64}/${DebPaths.runtime}`), AARCH64_ELF_MACHINE);

      await t.step("amd64: /usr/bin/fleet --version from the unpacked package", async () => {
        const r = await output(`${roots.amd64}/${DebPaths.launcher}`, ["--version"], {
          DENO_DIR: `${dir}/deno-dir`,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), version);
      });

      await t.step("arm64 under qemu-user: fleet --version", async () => {
        const r = await output("qemu-aarch64-static", qemuFleet(roots.arm64!, ["--version"]), {
          DENO_DIR: `${dir}/deno-dir-arm64`,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), version);
      });

      await t.step(
        "amd64: the agent reconciles with podman under its unit's Deno permissions",
        async () => {
          await agentReconciles(dir, "pi-amd64", (paths, config) => {
            const [cmd, ...runtime] = agentRuntimeArgs(paths, `${roots.amd64}/`);
            return {
              cmd: cmd!,
              args: [...runtime, "agent", "run", "--config", config],
              env: { DENO_DIR: `${dir}/deno-dir` },
            };
          });
        },
      );

      await t.step(
        "arm64 under qemu-user: an agent reconciles with podman under its unit's Deno permissions",
        async () => {
          await agentReconciles(dir, "pi-arm64", (paths, config) => ({
            cmd: "qemu-aarch64-static",
            args: [
              "-L",
              ARM64_SYSROOT,
              ...agentRuntimeArgs(paths, `${roots.arm64}/`),
              "agent",
              "run",
              "--config",
              config,
            ],
            env: { DENO_DIR: `${dir}/deno-dir-arm64` },
          }));
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/**
 * Runs the agent `command` gives (for its paths and config file) as device `deviceId` against
 * a local control plane and podman, and waits until it runs a deployment's container.
 */
async function agentReconciles(
  dir: string,
  deviceId: string,
  command: (paths: AgentPaths, config: string) => {
    cmd: string;
    args: string[];
    env: Record<string, string>;
  },
): Promise<void> {
  await using fleet = await startFleet();
  await fleet.startOperator();
  const socket = fleet.podmanService.socketPath;
  const paths: AgentPaths = {
    stateDir: `${dir}/${deviceId}-state`,
    podmanSocketDir: socket.slice(0, socket.lastIndexOf("/")),
  };
  const config = `${dir}/${deviceId}.toml`;
  await Deno.writeTextFile(
    config,
    `device_id = "${deviceId}"
state_dir = "${paths.stateDir}"
labels = { site = "${deviceId}" }

[nats]
urls = ["${fleet.nats.url}"]

[podman]
socket = "${socket}"

[intervals]
heartbeat_seconds = 2
relist_seconds = 3
`,
  );
  const { cmd, args, env } = command(paths, config);
  const agent = new Deno.Command(cmd, {
    args,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(agent.stderr).text();
  try {
    // The registry deployments select on, as device enroll would have set it.
    await new NatsDeviceLabelStore(await fleet.connection()).edit(deviceId, () => ({
      site: deviceId,
    }));
    const store = await fleet.store();
    await store.apply(
      webDeployment({ name: "web", selector: { matchLabels: { site: deviceId } } }),
    );
    // Emulated, the runtime starts in tens of seconds rather than a fraction of one.
    await waitForStatus(fleet, { name: "web" }, { matched: 1, succeeded: 1 }, 180_000);
    const running = await waitFor("the container to run", async () => {
      const [c] = await fleet.containers(deviceId);
      return c?.state === "running" ? c : undefined;
    });
    assert.match(running.name, new RegExp(`^fleet_${deviceId}_default_web_`));
  } finally {
    agent.kill("SIGTERM");
    const status = await agent.status;
    const log = await stderr;
    assert.equal(status.code, 0, `the ${deviceId} agent exits cleanly on SIGTERM:\n${log}`);
    assert.match(log, /Connected to NATS/);
    assert.doesNotMatch(log, /Requires \w+ access/, "no permission was missing");
    // The host's podman storage is shared with the other tests: leave nothing behind.
    for (const c of await fleet.containers(deviceId)) {
      await fleet.podman.removeContainer(c.id);
    }
  }
}
