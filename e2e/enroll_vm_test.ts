/**
 * A device in the field, on a real booted Debian: a VM from `fleet vm provision` (qemu, its
 * own kernel and systemd), enrolled over SSH by `device enroll` with the real package, then
 * put through what field devices live through: the agent SIGKILLed, a reboot, NATS out of
 * reach during boot, a corrupt config. The host's nats-server and operator are the control
 * plane; the guest reaches the host's loopback as 10.0.2.2 (qemu user-mode networking).
 *
 * Needs the cached base image (`fleet vm image build --arch x86_64`, about as long as a
 * debootstrap takes the first time).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Buckets, ContainerLabels, keys, type Labels } from "../core/mod.ts";
import { SshTarget } from "../adapters/host/ssh_target.ts";
import type { Target } from "../adapters/host/target.ts";
import { readBucket } from "../adapters/nats/mod.ts";
import { printLine } from "../adapters/output.ts";
import { destroyVm, resetVm } from "../adapters/vm/mod.ts";
import { type VmState, VmStateSchema } from "../vm/mod.ts";
import { buildPackages, projectVersion } from "../packaging/build.ts";
import { enrollDevice, type EnrollOptions } from "../enroll/enroll.ts";
import { CONFIG_PATH, EnrollError, PACKAGE_RECORD_PATH } from "../enroll/steps.ts";
import { waitFor } from "../adapters/timers.ts";
import { startFleet, waitForStatus, webDeployment } from "./_helpers.ts";
import { testLogger } from "./_story.ts";
import { DebPaths } from "../packaging/deb.ts";
import {
  denoEscapesScript,
  escapeOutcomes,
  execStartRuntime,
  sandboxProperties,
  systemEscapesScript,
} from "./attacks/_agent_escapes.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const DEVICE = "vm-pi-1";
/** A warm reboot under TCG answers SSH well within this; past it the guest is taken as hung. */
const REBOOT_DEADLINE_MS = 240_000;
/** After a power cycle: a cold boot, with the journal replay of an unclean root file system. */
const AFTER_RESET_MS = 300_000;
const noPrompt = () => Promise.resolve(undefined);

async function must(target: Target, argv: string[], sudo = true, stdin?: string): Promise<string> {
  const r = await target.run(argv, { sudo, ...(stdin !== undefined ? { stdin } : {}) });
  assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** The agent user's podman, as the agent sees it. */
async function agentPodman(target: Target, uid: number, args: string[]): Promise<string> {
  return await must(target, [
    "runuser",
    "-u",
    "fleet-agent",
    "--",
    "env",
    `XDG_RUNTIME_DIR=/run/user/${uid}`,
    "podman",
    ...args,
  ]);
}

async function unitProperty(target: Target, property: string): Promise<string> {
  return (await must(target, ["systemctl", "show", "-p", property, "--value", "fleet-agent"]))
    .trim();
}

Deno.test(
  "device enroll over SSH makes a fresh VM a fleet device that survives SIGKILL, reboots, a missing network and a bad config",
  { sanitizeOps: false, sanitizeResources: false },
  async (t) => {
    const log = testLogger();
    const work = await Deno.makeTempDir({ prefix: "fleet-enroll-vm-" });
    await using fleet = await startFleet();
    await fleet.startOperator();
    // The base image: built once (debootstrap), then served from the cache.
    const build = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "vm",
        "image",
        "build",
        "--arch",
        "x86_64",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));
    const version = await projectVersion();
    const [pkg] = await buildPackages({ outDir: `${work}/dist`, arches: ["amd64"] });
    const vmsDir = `${work}/vms`;

    // One command from the laptop: a fresh VM, enrolled as device DEVICE.
    let target: Target;
    let state: VmState;
    let provisioned: Timed;
    try {
      provisioned = await runTimed([
        "vm",
        "provision",
        "--name",
        DEVICE,
        "--memory",
        "2048",
        "--timeout",
        "600",
        "--dir",
        vmsDir,
        "--package-dir",
        `${work}/dist`,
        "--label",
        "site=vm",
        "--nats-url",
        fleet.nats.url,
        "--heartbeat-timeout",
        "180",
      ]);
      const output = provisioned.lines.map(([, line]) => line).join("\n");
      assert.equal(provisioned.code, 0, `${output}\n${provisioned.stderr}`);
      state = VmStateSchema.parse(
        JSON.parse(await Deno.readTextFile(`${vmsDir}/${DEVICE}/vm.json`)),
      );
      target = await SshTarget.connect({ ...state.ssh, prompt: noPrompt });
    } catch (error) {
      await destroyVm(vmsDir, DEVICE, log);
      await Deno.remove(work, { recursive: true });
      throw error;
    }
    const connect = () => SshTarget.connect({ ...state.ssh, prompt: noPrompt });
    const nc = await fleet.connection();
    const lines: string[] = [];
    // The labels the device is enrolled with; "new labels" changes them for the steps after it.
    let labels: Labels = { site: "vm" };
    const enroll = (overrides: Partial<EnrollOptions> = {}) =>
      enrollDevice({
        target,
        deviceId: DEVICE,
        labels,
        natsUrls: [`nats://10.0.2.2:${fleet.nats.port}`],
        credentials: { type: "none" },
        packages: { amd64: { path: pkg!.path, version } },
        confirm: () => Promise.resolve(false),
        nats: nc,
        heartbeatTimeoutMs: 180_000,
        report: (line) => lines.push(line),
        log,
        ...overrides,
      });
    /** Back to enrolled and converged with `labels` (a hand-edited config is overwritten). */
    const settle = async () => {
      await enroll({ confirm: () => Promise.resolve(true) });
    };

    /**
     * Waits until the VM takes SSH logins again. A warm reboot under TCG now and then hangs in
     * the guest's kernel and never comes back; past REBOOT_DEADLINE_MS the VM is power-cycled
     * through QMP (`system_reset`), as a field engineer would pull the plug, and waited for again.
     */
    const sshAgain = async (started: number): Promise<SshTarget> => {
      const login = async () => {
        try {
          return await connect();
        } catch {
          return undefined;
        }
      };
      try {
        return await waitFor("the VM to take SSH logins again", login, REBOOT_DEADLINE_MS, 2_000);
      } catch (error) {
        printLine(
          `reboot: no SSH after ${((performance.now() - started) / 1000).toFixed(0)} s (${
            (error as Error).message
          }); power-cycling the VM (system_reset). Its console log ended:\n${await consoleTail()}`,
        );
        await resetVm(state);
        return await waitFor(
          "the VM to take SSH logins after a power cycle",
          login,
          AFTER_RESET_MS,
          2_000,
        );
      }
    };
    const consoleTail = async () =>
      (await Deno.readTextFile(state.consoleLog).catch(() => "(no console log)"))
        .replace(/\r/g, "").trimEnd().split("\n").slice(-8).join("\n");
    const reboot = async () => {
      await target.run(["systemctl", "reboot"], { sudo: true });
      await target[Symbol.asyncDispose]();
      const started = performance.now();
      await new Promise((r) => setTimeout(r, 5_000));
      target = await sshAgain(started);
      return started;
    };
    /** A session that answers, after a step that may have left the VM rebooting or hung. */
    const reachable = async () => {
      if ((await target.run(["true"]).catch(() => undefined))?.code === 0) return;
      await target[Symbol.asyncDispose]();
      target = await sshAgain(performance.now());
    };

    /**
     * A step of the story, then `cleanup` (whether it passed or not: `failed` says which), which
     * leaves the device as the next step expects it: one failure is one report, not a cascade
     * of steps failing on what an earlier one left behind.
     */
    const step = (
      name: string,
      fn: () => Promise<void>,
      cleanup?: (failed: boolean) => Promise<void>,
    ) =>
      t.step(name, async () => {
        let failure: { error: unknown } | undefined;
        try {
          await fn();
        } catch (error) {
          failure = { error };
        }
        try {
          await cleanup?.(failure !== undefined);
        } catch (error) {
          if (failure === undefined) throw error;
          printLine(`clean-up after "${name}" failed too: ${(error as Error).message}`);
        }
        if (failure !== undefined) throw failure.error;
      });

    try {
      const uid = Number((await must(target, ["id", "-u", "fleet-agent"], false)).trim());
      await step(
        "vm provision enrolls the fresh VM: every step changes something, then the heartbeat",
        async () => {
          const output = provisioned.lines.map(([, line]) => line).join("\n");
          const sshAt = provisioned.lines.find(([, l]) => /answered SSH after/.test(l))?.[0];
          assert.ok(sshAt !== undefined, output);
          const steps = provisioned.lines.map(([, l]) => l).filter((l) => /^(un)?changed /.test(l));
          printLine(
            `vm provision: SSH after ${sshAt.toFixed(1)} s, enroll of the fresh VM ${
              (provisioned.seconds - sshAt).toFixed(1)
            } s\n${output}`,
          );
          assert.ok(steps.filter((l) => l.startsWith("changed")).length >= 7, output);
          assert.match(steps.at(-1)!, /heartbeat: reached NATS/);
          assert.match(output, new RegExp(`^${DEVICE} is enrolled \\(`, "m"));
          const config = await must(target, ["cat", CONFIG_PATH]);
          assert.match(
            config,
            new RegExp(`urls = \\[ ?"nats://10\\.0\\.2\\.2:${fleet.nats.port}" ?\\]`),
          );
          const mode = await must(target, ["stat", "-c", "%a %U:%G", CONFIG_PATH]);
          assert.equal(mode.trim(), "640 root:fleet-agent");
          assert.equal(await unitProperty(target, "ActiveState"), "active");
          // Stopped before its podman's systemd at shutdown: a reboot reads as no failure.
          assert.match(
            await unitProperty(target, "After"),
            new RegExp(`\\buser@${uid}\\.service\\b`),
          );
        },
        // Provisioning enrolled with what enroll() gives too; whatever it missed, enroll now.
        async (failed) => {
          if (failed) await settle();
        },
      );

      await step("a second run changes nothing and says so", async () => {
        lines.length = 0;
        const result = await enroll();
        assert.equal(result.changed, 0, lines.join("\n"));
        assert.ok(lines.slice(0, -1).every((l) => l.startsWith("unchanged")), lines.join("\n"));
      });

      await step(
        "another build of the same version is installed again",
        async () => {
          // As if enroll had installed a different build of 0.1.0 before.
          await must(target, ["sh", "-c", `echo 0000 > ${PACKAGE_RECORD_PATH}`]);
          lines.length = 0;
          await enroll();
          const changed = lines.filter((l) => l.startsWith("changed")).map((l) => l.split(":")[0]);
          assert.deepEqual(changed, ["changed    package", "changed    service"], lines.join("\n"));
          assert.match(lines.join("\n"), /reinstalled fleet \S+ \(not the build enroll installed/);
          lines.length = 0;
          assert.equal((await enroll()).changed, 0, lines.join("\n"));
        },
        // The fake record would make every later enroll reinstall.
        async (failed) => {
          if (failed) await settle();
        },
      );

      await step(
        "a login whose sudo asks for a password: asked once, nothing changes",
        async () => {
          // Debian's stock sudoers: members of "sudo" give their password.
          await must(target, ["useradd", "--create-home", "--groups", "sudo", "field"]);
          await must(target, ["chpasswd"], true, "field:field-secret\n");
          await must(target, ["install", "-d", "-m", "700", "-o", "field", "/home/field/.ssh"]);
          await must(target, [
            "install",
            "-m",
            "600",
            "-o",
            "field",
            `/home/${state.ssh.address.user}/.ssh/authorized_keys`,
            "/home/field/.ssh/authorized_keys",
          ]);
          const asFieldUser = (password: string, prompts: string[]) =>
            SshTarget.connect({
              ...state.ssh,
              address: { ...state.ssh.address, user: "field" },
              prompt: (question) => {
                prompts.push(question);
                return Promise.resolve(password);
              },
            });
          const prompts: string[] = [];
          await using field = await asFieldUser("field-secret", prompts);
          assert.notEqual(
            (await field.run(["sudo", "-n", "true"])).code,
            0,
            "sudo wants a password",
          );
          lines.length = 0;
          const result = await enroll({ target: field });
          assert.equal(result.changed, 0, lines.join("\n"));
          assert.deepEqual(prompts, [
            `sudo password on field@127.0.0.1:${state.ssh.address.port}: `,
          ]);

          const wrong: string[] = [];
          await using typo = await asFieldUser("not-it", wrong);
          await assert.rejects(enroll({ target: typo }), /sudo on field@\S+ refused the password/);
        },
        async (failed) => {
          await target.run(["userdel", "--remove", "field"], { sudo: true });
          if (failed) await settle();
        },
      );

      await step(
        "new labels rewrite only the config and restart the agent",
        async () => {
          labels = { site: "vm", tier: "edge" };
          lines.length = 0;
          const result = await enroll();
          const changed = lines.filter((l) => l.startsWith("changed")).map((l) => l.split(":")[0]);
          assert.deepEqual(changed, ["changed    config", "changed    service"], lines.join("\n"));
          assert.equal(result.changed, 2);
          await waitFor("the new label in the device registry", async () => {
            const infos = await readBucket(nc, Buckets.deviceInfo, log);
            const info = infos.get(keys.deviceInfo(DEVICE));
            return info && JSON.parse(new TextDecoder().decode(info)).labels.tier === "edge"
              ? true
              : undefined;
          }, 60_000);
        },
        // The later steps expect the new labels in place.
        async (failed) => {
          if (failed) await settle();
        },
      );

      await step(
        "a config changed on the device is shown and kept unless confirmed",
        async () => {
          await must(target, ["sh", "-c", `echo '# local tweak' >> ${CONFIG_PATH}`]);
          const diffs: string[] = [];
          await assert.rejects(
            enroll({
              confirm: (_path, diff) => {
                diffs.push(diff);
                return Promise.resolve(false);
              },
            }),
            (e: Error) => e instanceof EnrollError && /was not confirmed/.test(e.message),
          );
          assert.match(diffs[0] ?? "", /^- # local tweak$/m);
          assert.match(await must(target, ["cat", CONFIG_PATH]), /# local tweak/, "left as it was");
          await enroll({ confirm: () => Promise.resolve(true) });
          assert.doesNotMatch(await must(target, ["cat", CONFIG_PATH]), /# local tweak/);
        },
        // No hand edit may outlive the step.
        async (failed) => {
          if (failed) await settle();
        },
      );

      // A workload for the field stories: the test image, loaded into the agent's podman.
      await saveTestImage(fleet.podmanService.socketPath, `${work}/image.tar`);
      const tar = await Deno.readFile(`${work}/image.tar`);
      const upload = await target.run([
        "sh",
        "-c",
        'cat > "$1" && chmod 644 "$1"',
        "sh",
        "/tmp/image.tar",
      ], {
        stdin: tar,
      });
      assert.equal(upload.code, 0, upload.stderr);
      await agentPodman(target, uid, ["load", "-i", "/tmp/image.tar"]);
      const store = await fleet.store();
      await store.apply(webDeployment({ name: "web", selector: { matchLabels: { site: "vm" } } }));
      await waitForStatus(fleet, { name: "web" }, { matched: 1, succeeded: 1 }, 120_000);
      // Only this device's container of "web", whatever else the VM's podman runs.
      const containerId = async () =>
        (await agentPodman(target, uid, [
          "ps",
          "-q",
          "--no-trunc",
          "--filter",
          "status=running",
          "--filter",
          `label=${ContainerLabels.deviceId}=${DEVICE}`,
          "--filter",
          `label=${ContainerLabels.deployment}=web`,
        ])).trim();
      const running = await containerId();
      assert.match(running, /^[0-9a-f]{64}$/, `one running container: "${running}"`);
      /** The agent active and the workload running, as the field stories start from. */
      const healthy = async () => {
        await reachable();
        if (await unitProperty(target, "ActiveState") !== "active") await settle();
        await waitForStatus(fleet, { name: "web" }, { matched: 1, succeeded: 1 }, 180_000);
      };

      await step(
        "the agent is sandboxed: code running as it escapes neither its Deno permissions nor its unit's sandbox",
        async () => {
          const unit = await must(target, ["cat", `/${DebPaths.unit}`], false);
          const pid = await unitProperty(target, "MainPID");
          const status = await must(target, ["cat", `/proc/${pid}/status`]);
          assert.match(status, /^NoNewPrivs:\s+1$/m);
          assert.match(status, /^CapBnd:\s+0+$/m);
          const security = await must(target, [
            "systemd-analyze",
            "security",
            "--no-pager",
            "fleet-agent",
          ]);
          const score = /Overall exposure level for fleet-agent\.service: ([\d.]+ \S+)/
            .exec(security)?.[1];
          printLine(`systemd-analyze security fleet-agent: ${score}`);
          assert.ok(Number(score?.split(" ")[0]) <= 2, security);
          // Its one native call works under this sandbox: it gave back what only start-up used.
          const gaveBack = await waitFor(
            "the agent to give back the memory its start-up needed",
            async () =>
              /Gave back the memory start-up needed: [\d.]+ MB of code pages/.exec(
                await must(target, ["journalctl", "--no-pager", "-o", "cat", `_PID=${pid}`]),
              )?.[0],
            90_000,
            2_000,
          );
          printLine(`agent: ${gaveBack}`);

          // The agent's runtime in a transient unit with the installed unit's sandbox and user.
          const sandboxed = async (runtime: string[], script: string) =>
            escapeOutcomes(
              await must(
                target,
                [
                  "systemd-run",
                  "--wait",
                  "--pipe",
                  "--quiet",
                  ...sandboxProperties(unit),
                  ...runtime,
                  "-",
                ],
                true,
                script,
              ),
            );
          const agentRuntime = execStartRuntime(unit, `/${DebPaths.program}`);
          const denied = await sandboxed(
            agentRuntime,
            denoEscapesScript({ configFile: CONFIG_PATH, outside: "/var/tmp/escape" }),
          );
          for (const [attempt, outcome] of Object.entries(denied)) {
            assert.match(outcome, /^(NotCapable|TypeError): Requires \w+ access/, attempt);
          }
          // As if the attacker got past Deno's checks: the sandbox stops it all the same.
          const blocked = await sandboxed(
            [agentRuntime[0]!, "run", "--no-config", "--allow-all"],
            systemEscapesScript(uid),
          );
          assert.deepEqual(Object.entries(blocked).filter(([, o]) => o === "done"), []);
          for (
            const attempt of [
              "replace the agent's program",
              "write to /etc",
              "write into its user's runtime directory",
              "install a user unit in its home",
            ]
          ) assert.match(blocked[attempt] ?? "", /Read-only file system/, attempt);
          assert.match(blocked["read /etc/shadow"] ?? "", /Permission denied/);
          assert.match(blocked["become root with sudo"] ?? "", /"no new privileges" flag is set/);
          assert.match(blocked["open a netlink socket"] ?? "", /Address family not supported/);
          // Nothing lost: the agent runs on, and so does its workload.
          assert.equal(await unitProperty(target, "ActiveState"), "active");
          assert.equal(await containerId(), running);
        },
        async (failed) => {
          if (failed) await healthy();
        },
      );

      await step(
        "SIGKILL: systemd brings the agent back and it recreates nothing",
        async () => {
          const before = Number(await unitProperty(target, "NRestarts"));
          await must(target, ["systemctl", "kill", "--signal=SIGKILL", "fleet-agent"]);
          await waitFor(
            "systemd to restart the agent",
            async () =>
              Number(await unitProperty(target, "NRestarts")) > before &&
                await unitProperty(target, "ActiveState") === "active" || undefined,
            60_000,
          );
          // Its first reconcile after the restart has had time to run.
          await new Promise((r) => setTimeout(r, 10_000));
          assert.equal(await containerId(), running, "the same container keeps running");
        },
        async (failed) => {
          if (failed) await healthy();
        },
      );

      await step(
        "a reboot comes back to the desired state (boot-to-reconciled)",
        async () => {
          const started = await reboot();
          const id = await waitFor(
            "the workload to run again",
            async () => {
              const r = await containerId().catch(() => "");
              return r !== "" ? r : undefined;
            },
            300_000,
            1_000,
          );
          const seconds = (performance.now() - started) / 1000;
          printLine(`reboot → container running again: ${seconds.toFixed(1)} s`);
          assert.match(id, /^[0-9a-f]{64}$/);
          await waitForStatus(fleet, { name: "web" }, { matched: 1, succeeded: 1 }, 120_000);
        },
        async (failed) => {
          if (failed) await healthy();
        },
      );

      // Packets to NATS are dropped, not refused: the agent's connects time out, as in the
      // field. A oneshot unit puts the rule in place at boot, before fleet-agent starts.
      const rule = `OUTPUT -d 10.0.2.2 -p tcp --dport ${fleet.nats.port} -j DROP`;
      await step(
        "the network to NATS cut during boot (iptables in the guest): the cached desired state runs, no crash loop, it converges when the network returns",
        async () => {
          await must(target, [
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "-qq",
            "iptables",
          ]);
          await must(
            target,
            ["tee", "/etc/systemd/system/cut-nats.service"],
            true,
            [
              "[Unit]",
              "Description=Test: drop packets to NATS",
              // Only before the agent: ordering it before network-pre.target as well made a
              // cycle with cloud-init's network stage (which runs before sysinit.target, while
              // this unit has the default After=basic.target) that systemd broke by dropping
              // some other start job, now and then sshd's or the network's.
              "Before=fleet-agent.service",
              "[Service]",
              "Type=oneshot",
              `ExecStart=/usr/sbin/iptables -I ${rule}`,
              "RemainAfterExit=yes",
              "[Install]",
              "WantedBy=multi-user.target",
              "",
            ].join("\n"),
          );
          await must(target, ["systemctl", "enable", "cut-nats.service"]);
          await reboot();
          await waitFor(
            "the workload to run from the cache",
            async () => {
              const r = await containerId().catch(() => "");
              return r !== "" ? r : undefined;
            },
            300_000,
            1_000,
          );
          // The cut is real: the operator stops hearing from the device.
          await waitForStatus(
            fleet,
            { name: "web" },
            { matched: 1, succeeded: 1, unreachable: 1 },
            120_000,
          );
          assert.match(await must(target, ["iptables", "-S", "OUTPUT"]), /-j DROP/);
          await new Promise((r) => setTimeout(r, 15_000));
          assert.equal(await unitProperty(target, "NRestarts"), "0", "no crash loop offline");
          assert.equal(await unitProperty(target, "ActiveState"), "active");

          await must(target, ["systemctl", "disable", "cut-nats.service"]);
          await must(target, ["sh", "-c", `iptables -D ${rule}`]);
          await waitForStatus(fleet, { name: "web" }, { matched: 1, succeeded: 1 }, 180_000);
        },
        // The network must be back for every later step, whatever happened here.
        async (failed) => {
          await reachable();
          await target.run(["systemctl", "disable", "--now", "cut-nats.service"], { sudo: true });
          await target.run(["rm", "-f", "/etc/systemd/system/cut-nats.service"], { sudo: true });
          await target.run(["systemctl", "daemon-reload"], { sudo: true });
          await target.run(["sh", "-c", `while iptables -D ${rule} 2>/dev/null; do :; done`], {
            sudo: true,
          });
          if (failed) await healthy();
        },
      );

      await step(
        "a corrupt config: a crash loop with backoff whose status says what and where",
        async () => {
          await must(target, ["sh", "-c", `echo 'labels = [' >> ${CONFIG_PATH}`]);
          await must(target, ["systemctl", "restart", "fleet-agent"]);
          const status = await waitFor(
            "systemctl status to show the config error",
            async () => {
              const s = await target.run([
                "systemctl",
                "status",
                "--no-pager",
                "-n",
                "20",
                "fleet-agent",
              ], {
                sudo: true,
              });
              return /Invalid agent config \/etc\/fleet-agent\/config\.toml/.test(s.stdout)
                ? s.stdout
                : undefined;
            },
            120_000,
            2_000,
          );
          assert.match(status, /not valid TOML at line \d+/);
          await waitFor(
            "systemd to keep retrying",
            async () => Number(await unitProperty(target, "NRestarts")) >= 2 || undefined,
            240_000,
            2_000,
          );
          assert.notEqual(await containerId(), "", "the workload keeps running");
          // Recovery needs no console: enroll again from the laptop.
          await settle();
          assert.equal(await unitProperty(target, "ActiveState"), "active");
        },
        async (failed) => {
          if (failed) await settle();
        },
      );
    } finally {
      await target[Symbol.asyncDispose]();
      await destroyVm(vmsDir, DEVICE, log);
      await Deno.remove(work, { recursive: true });
    }
  },
);

Deno.test({
  name:
    "vm provision enrolls an aarch64 VM with the arm64 package (FLEET_TEST_AARCH64=1; slow under TCG)",
  ignore: Deno.env.get("FLEET_TEST_AARCH64") !== "1",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const log = testLogger();
    const work = await Deno.makeTempDir({ prefix: "fleet-enroll-arm-" });
    await using fleet = await startFleet();
    await fleet.startOperator();
    const build = await runTimed([
      "vm",
      "image",
      "build",
      "--arch",
      "aarch64",
    ]);
    assert.equal(build.code, 0, build.stderr);
    await buildPackages({ outDir: `${work}/dist`, arches: ["arm64"] });
    const vmsDir = `${work}/vms`;
    const device = "vm-arm-1";
    try {
      const provisioned = await runTimed([
        "vm",
        "provision",
        "--name",
        device,
        "--arch",
        "aarch64",
        "--memory",
        "2048",
        "--dir",
        vmsDir,
        "--package-dir",
        `${work}/dist`,
        "--label",
        "site=arm",
        "--nats-url",
        fleet.nats.url,
        "--heartbeat-timeout",
        "900",
      ]);
      const output = provisioned.lines.map(([, line]) => line).join("\n");
      assert.equal(provisioned.code, 0, `${output}\n${provisioned.stderr}`);
      const sshAt = provisioned.lines.find(([, l]) => /answered SSH after/.test(l))?.[0] ?? 0;
      printLine(
        `vm provision aarch64: SSH after ${sshAt.toFixed(1)} s, enroll ${
          (provisioned.seconds - sshAt).toFixed(1)
        } s\n${output}`,
      );
      assert.match(output, /^changed {4}package: installed fleet \S+$/m);
      assert.match(output, /heartbeat: reached NATS/);
      const infos = await readBucket(await fleet.connection(), Buckets.deviceInfo, log);
      const info = JSON.parse(new TextDecoder().decode(infos.get(keys.deviceInfo(device))!));
      assert.equal(info.inventory.arch, "aarch64");
      assert.equal(info.labels.site, "arm");
    } finally {
      await destroyVm(vmsDir, device, log);
      await Deno.remove(work, { recursive: true });
    }
  },
});

/**
 * Runs the CLI, noting when each stdout line arrived (seconds from the start), so one
 * command's phases can be timed.
 */
interface Timed {
  code: number;
  lines: [number, string][];
  seconds: number;
  stderr: string;
}

async function runTimed(args: string[]): Promise<Timed> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const lines: [number, string][] = [];
  let partial = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop()!;
    for (const line of parts) lines.push([(performance.now() - started) / 1000, line]);
  }
  if (partial !== "") lines.push([(performance.now() - started) / 1000, partial]);
  const { code } = await child.status;
  return { code, lines, seconds: (performance.now() - started) / 1000, stderr: await stderr };
}

/** `podman save` of the test image through the host's podman service. */
async function saveTestImage(socketPath: string, out: string): Promise<void> {
  const r = await new Deno.Command("podman", {
    args: ["--url", `unix://${socketPath}`, "save", "-o", out, "localhost/fleet-test:v1"],
  }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
}
