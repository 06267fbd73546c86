/**
 * Exec on devices (issue 14, item 3), on real parts: the test OpenID provider, nats-server with
 * the auth callout, `fleet operator run`, two `fleet agent run` processes, podman. An admin runs
 * commands in a deployment's container with `fleet exec`: output on stdout and stderr, the exit
 * code as the CLI's, stdin (a megabyte of it), a terminal (raw, sized, Ctrl-C typed into it,
 * under `script` as a person's terminal), one interactive session per device with `--force`
 * taking it over, a shell on the host where the device allows it; a device with exec switched
 * off refuses, so do the roles below admin at the broker; every exec is in the audit trail with
 * its exit code and without its arguments.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ContainerLabels } from "../core/mod.ts";
import { installConnectionResetGuard } from "../adapters/nats/mod.ts";
import { eventually } from "../testing/eventually.ts";
import { fleet, FleetProcess } from "./_helpers.ts";
import { labDeployment, startDeviceRig } from "./_device_rig.ts";
import { Interactive } from "./_interactive.ts";
import { story, testLogger } from "./_story.ts";

const STEP_MS = 120_000;

/** A deployment of two services that only wait. */
const BOX = labDeployment(
  "box",
  `
        - name: app
          image: localhost/fleet-test:v1
          command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 5; done"]
        - name: side
          image: localhost/fleet-test:v1
          command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 5; done"]
`,
);

story(
  "device exec: streams, exit codes, stdin, a terminal, one interactive session and --force, host shell, switched off, roles, audited",
  { deadlineMs: 12 * 60_000 },
  async () => {
    installConnectionResetGuard(testLogger());
    await using rig = await startDeviceRig("fleet-exec-", {
      "exec-pi-1": "device",
      "exec-pi-2": "device",
      val: "viewer",
      moe: "maintainer",
      ada: "admin",
      bob: "admin",
    });
    const { podman } = rig;
    const flags = {
      viewer: await rig.flagsOf("val"),
      maintainer: await rig.flagsOf("moe"),
      ada: await rig.flagsOf("ada"),
      bob: await rig.flagsOf("bob"),
    };
    const log = testLogger();
    const exec = (args: string[]) => fleet(["exec", ...args]);
    try {
      await using _operator = new FleetProcess("operator", [
        ...["operator", "run", ...await rig.flagsOf("fleet-operator")],
        "--allow-unbound-namespaces",
      ]);
      // exec-pi-1 allows a shell on its host; exec-pi-2 keeps the defaults.
      await using _agent1 = new FleetProcess("agent-1", [
        ...["agent", "run", "--config"],
        await rig.agentConfig("exec-pi-1", { remote: { hostShell: true } }),
      ]);
      let agent2: FleetProcess | undefined = new FleetProcess("agent-2", [
        ...["agent", "run", "--config", await rig.agentConfig("exec-pi-2")],
      ]);
      try {
        await rig.deploy(["exec-pi-1", "exec-pi-2"], { admin: flags.ada, ...flags }, BOX);
        await eventually("box to run on exec-pi-1", async () => {
          const running = (await podman.listContainers({
            [ContainerLabels.deviceId]: "exec-pi-1",
          })).filter((c) => c.state === "running");
          return running.length === 2;
        }, STEP_MS);

        // The operator recorded the workload's first revision; a viewer may read the history.
        const history = await eventually("box's first revision", async () => {
          const r = await fleet(["rollout", "history", "box", ...flags.viewer]);
          return r.code === 0 && r.stdout.includes("1 (current)") ? r : undefined;
        }, STEP_MS);
        assert.match(history.stdout, /^1 \(current\)\s+\S+\s+1\s+[0-9a-f]{16}\s+first revision$/m);

        // Output on stdout and stderr, and the command's exit code as the CLI's.
        const streams = await exec([
          ...["exec-pi-1", "box/app", ...flags.ada],
          ...["--", "/bin/sh", "-c", "echo out; echo err >&2; echo out2; exit 3"],
        ]);
        assert.equal(streams.code, 3, streams.stderr);
        assert.equal(streams.stdout, "out\nout2\n");
        assert.match(streams.stderr, /^err$/m);
        log.info(`fleet exec exec-pi-1 box/app -- sh -c '... exit 3': exit ${streams.code}`);

        // Two services: the person names one.
        const which = await exec(["exec-pi-1", "box", ...flags.ada, "--", "true"]);
        assert.equal(which.code, 1);
        assert.match(
          which.stderr,
          /has several services here \(app, side\): name one, as box\/app/,
        );

        // Stdin to its end: lines, and a megabyte that goes only as fast as the device takes it.
        {
          await using swap = Interactive.fleet([
            ...["exec", "exec-pi-1", "box/side", "-i", ...flags.ada],
            ...["--", "/bin/sh", "-c", 'read a; read b; echo "$b $a"'],
          ]);
          await swap.write("one\ntwo\n");
          await swap.closeStdin();
          assert.equal(await swap.exit(), 0, swap.stderr);
          assert.equal(swap.stdout, "two one\n");
        }
        {
          await using count = Interactive.fleet([
            ...["exec", "exec-pi-1", "box/side", "-i", ...flags.ada],
            ...["--", "wc", "-c"],
          ]);
          const chunk = new Uint8Array(64 * 1024).fill(0x61);
          for (let i = 0; i < 16; i++) await count.write(chunk);
          await count.closeStdin();
          assert.equal(await count.exit(), 0, count.stderr);
          assert.equal(count.stdout.trim(), String(16 * chunk.length));
        }

        // A terminal without a local one: the command still gets a terminal.
        const tty = await exec(["exec-pi-1", "box/app", "-t", ...flags.ada, "--", "tty"]);
        assert.equal(tty.code, 0, tty.stderr);
        assert.match(tty.stdout, /^\/dev\/pts\/\d+\r?\n$/);

        // A person's terminal: raw, its size on the device, Ctrl-C typed into the command.
        {
          await using term = Interactive.inTerminal(
            [
              ...["exec", "exec-pi-1", "box/app", "-it", ...flags.ada, "--", "/bin/sh", "-c"],
              "stty size; trap 'echo interrupted; exit 9' INT; echo ready; while :; do sleep 1; done",
            ],
            33,
            111,
          );
          await eventually(
            "the remote shell to be ready",
            () => term.stdout.includes("ready"),
            STEP_MS,
          );
          await term.write("\x03");
          assert.equal(await term.exit(), 9, term.stdout + term.stderr);
          assert.match(term.stdout, /33 111/);
          assert.match(term.stdout, /interrupted/);
          log.info(`fleet exec -it in a 33x111 terminal, Ctrl-C:\n${term.stdout}`);
        }

        // One interactive session per device; a command without a terminal runs beside it;
        // --force takes it over and its user is told.
        {
          await using first = Interactive.fleet([
            ...["exec", "exec-pi-1", "box/app", "-it", ...flags.ada, "--", "/bin/sh", "-c"],
            "echo ready; while :; do sleep 2; done",
          ]);
          await eventually("ada's session", () => first.stdout.includes("ready"), STEP_MS);
          const second = await exec(["exec-pi-1", "box/app", "-it", ...flags.bob, "--", "true"]);
          assert.equal(second.code, 1);
          assert.match(
            second.stderr,
            /device exec-pi-1 refused exec: device exec-pi-1 already has an interactive session, opened by ada\S*; add --force to take it over/,
          );
          const beside = await exec(["exec-pi-1", "box/app", ...flags.bob, "--", "echo", "beside"]);
          assert.equal(beside.code, 0, beside.stderr);
          assert.equal(beside.stdout, "beside\n");
          const forced = await exec([
            ...["exec-pi-1", "box/app", "-it", "--force", ...flags.bob],
            ...["--", "echo", "mine"],
          ]);
          assert.equal(forced.code, 0, forced.stderr);
          assert.match(forced.stdout, /mine/);
          assert.equal(await first.exit(), 1);
          assert.match(first.stderr, /fleet: bob\S* took over this device's interactive session/);
          assert.match(first.stderr, /your session on device exec-pi-1 was taken over/);
          // The taken-over shell was hung up, not left running in the container.
          await eventually("ada's shell to end", async () => {
            const ps = await exec(["exec-pi-1", "box/app", ...flags.ada, "--", "ps"]);
            return ps.code === 0 && !ps.stdout.includes("sleep 2");
          }, STEP_MS);
        }

        // A shell on the device itself, where its config allows it; refused where it does not.
        const marker = join(rig.dir, "on-the-host");
        await Deno.writeTextFile(marker, "written on the host\n");
        const hostShell = await exec([
          ...["exec-pi-1", "--host", ...flags.ada, "--", "/bin/sh", "-c"],
          `cat ${marker}; id -u`,
        ]);
        assert.equal(hostShell.code, 0, hostShell.stderr);
        assert.equal(hostShell.stdout, `written on the host\n${Deno.uid()}\n`);
        const noHost = await exec(["exec-pi-2", "--host", ...flags.ada, "--", "true"]);
        assert.equal(noHost.code, 1);
        assert.match(
          noHost.stderr,
          /device exec-pi-2 does not allow a shell on its host: its config does not set \[remote\] host_shell = true/,
        );

        // exec switched off in exec-pi-2's config: refused, the containers untouched.
        await agent2[Symbol.asyncDispose]();
        agent2 = new FleetProcess("agent-2-off", [
          ...["agent", "run", "--config"],
          await rig.agentConfig("exec-pi-2", { remote: { exec: false } }),
        ]);
        const off = await eventually("exec-pi-2 back, refusing exec", async () => {
          const r = await exec(["exec-pi-2", "box/app", ...flags.ada, "--", "true"]);
          return /switched off/.test(r.stderr) ? r : undefined;
        }, STEP_MS);
        assert.equal(off.code, 1);
        assert.match(
          off.stderr,
          /exec is switched off on device exec-pi-2 \(\[remote\] exec = false in its config\)/,
        );

        // Below admin, the broker refuses before any device hears of it.
        for (const role of ["viewer", "maintainer"] as const) {
          const r = await exec(["exec-pi-1", "box/app", ...flags[role], "--", "true"]);
          assert.equal(r.code, 1, `${role}: ${r.stderr}`);
          assert.match(r.stderr, /your role does not allow exec on devices/, role);
        }

        // The audit trail: each exec with its exit code, none with its arguments.
        const audit = (await rig.audit(
          "exec-pi-1",
          flags.viewer,
          (records) => records.some((x) => x.kind === "session" && x.arguments.host === "true"),
        )).filter((x) => x.verb === "exec");
        assert.ok(audit.some((r) => r.kind === "session" && r.exitCode === 3), "exit code 3");
        assert.ok(audit.some((r) => r.exitCode === 9 && r.arguments.tty === "true"), "Ctrl-C");
        assert.ok(
          audit.some((r) => r.outcome === "refused" && /interactive session/.test(r.reason ?? "")),
          "the refused second session",
        );
        assert.ok(audit.some((r) => r.reason?.startsWith("taken-over")), "the taken-over one");
        assert.ok(!JSON.stringify(audit).includes("echo out"), "no argument is recorded");
        const offAudit = await fleet([
          ...["audit", "--device", "exec-pi-2", "--since", "10m", "-o", "json"],
          ...flags.viewer,
        ]);
        assert.match(offAudit.stdout, /exec is switched off/);
        const text = await fleet(["audit", "--device", "exec-pi-1", ...flags.viewer]);
        log.info(`fleet audit --device exec-pi-1:\n${text.stdout}`);
      } finally {
        await agent2?.[Symbol.asyncDispose]();
      }
    } finally {
      for (const id of ["exec-pi-1", "exec-pi-2"]) {
        for (const c of await podman.listContainers({ [ContainerLabels.deviceId]: id })) {
          await podman.removeContainer(c.id);
        }
      }
    }
  },
);
