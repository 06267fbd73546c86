/**
 * Exec through the Podman runtime, against a real podman service: output split by stream,
 * stdin and its end, a terminal of a given size that resizes, exit codes, and a shell on the
 * host through a host shell container that is gone afterwards.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { DataFrame } from "../core/device_sessions.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { tempDir } from "../testing/temp_dir.ts";
import { testContainerSpec, uniqueContainerName } from "../testing/containers.ts";
import { eventually } from "../testing/eventually.ts";
import { ContainerLabels } from "../core/mod.ts";
import { PodmanRuntime } from "./podman_runtime.ts";
import type { ExecProcess } from "./runtime.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Everything the command printed, per stream, once it ended. */
async function collect(process: ExecProcess): Promise<{ stdout: string; stderr: string }> {
  const out = { stdout: "", stderr: "" };
  for await (const frame of process.output as AsyncIterable<DataFrame>) {
    out[frame.stream] += dec.decode(frame.data);
  }
  return out;
}

/** Reads `process`'s output until `text` appeared; returns what came. */
async function until(
  reader: ReadableStreamDefaultReader<DataFrame>,
  text: string,
): Promise<string> {
  let seen = "";
  while (!seen.includes(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the output ended before "${text}": ${seen}`);
    seen += dec.decode(value.data);
  }
  return seen;
}

Deno.test("PodmanRuntime.exec runs commands in a container: streams, stdin, TTY, exit codes, host shell", async (t) => {
  await using service = await startPodmanService();
  using client = new PodmanClient({ socketPath: service.socketPath });
  const image = await ensureTestImage(client, "v1");
  const runtime = new PodmanRuntime(client);
  const id = await client.createContainer(
    testContainerSpec(uniqueContainerName("exec-test"), image, { command: ["/bin/sleep", "600"] }),
  );
  try {
    await client.startContainer(id);
    const target = { containerId: id };

    await t.step("stdout and stderr apart, and the exit code", async () => {
      const p = await runtime.exec(target, {
        command: ["/bin/sh", "-c", "echo out; echo err >&2; echo out2; exit 3"],
        tty: false,
        stdin: false,
      });
      assert.deepEqual(await collect(p), { stdout: "out\nout2\n", stderr: "err\n" });
      assert.equal(await p.exitCode(), 3);
      await p.close();
    });

    await t.step("stdin until its end, a megabyte of it", async () => {
      const p = await runtime.exec(target, {
        command: ["/bin/sh", "-c", "wc -c"],
        tty: false,
        stdin: true,
      });
      const output = collect(p);
      const chunk = new Uint8Array(64 * 1024).fill(0x61);
      for (let i = 0; i < 16; i++) await p.write(chunk);
      await p.closeStdin();
      assert.equal((await output).stdout.trim(), String(16 * chunk.length));
      assert.equal(await p.exitCode(), 0);
      await p.close();
    });

    await t.step("a terminal of the asked size, resized, and Ctrl-C typed into it", async () => {
      const p = await runtime.exec(target, {
        command: [
          "/bin/sh",
          "-c",
          "stty size; trap 'stty size; exit 9' INT; echo ready; while true; do sleep 0.1; done",
        ],
        tty: true,
        stdin: true,
        size: { rows: 33, cols: 111 },
      });
      const reader = p.output.getReader();
      const first = await until(reader, "ready");
      assert.match(first, /^33 111\r\n/, "the size at the start");
      await p.resize({ rows: 50, cols: 160 });
      await p.write(enc.encode("\x03"));
      const rest = await until(reader, "50 160");
      assert.match(rest, /50 160/, "the size after the resize, printed on Ctrl-C");
      while (!(await reader.read()).done) {
        // the output ends when the command exits
      }
      assert.equal(await p.exitCode(), 9);
      await p.close();
    });

    await t.step("a shell let go of mid-command ends: interrupted, then end of input", async () => {
      const p = await runtime.exec(target, { command: ["/bin/sh"], tty: true, stdin: true });
      const reader = p.output.getReader();
      await p.write(enc.encode("echo started; sleep 77\n"));
      await until(reader, "started\r\n");
      await p.close();
      const ps = async () => {
        const probe = await runtime.exec(target, { command: ["ps"], tty: false, stdin: false });
        return (await collect(probe)).stdout;
      };
      await eventually("the shell and its sleep to end", async () => {
        const now = await ps();
        return !now.includes("sleep 77") && !/ \/bin\/sh$/m.test(now);
      });
    });

    await t.step("a command that does not exist: Podman's reason", async () => {
      const p = await runtime.exec(target, {
        command: ["/no/such/program"],
        tty: false,
        stdin: false,
      });
      const output = await collect(p);
      assert.match(output.stdout + output.stderr, /no such file or directory|not found/i);
      assert.equal(await p.exitCode(), 127);
      await p.close();
    });
  } finally {
    await client.removeContainer(id);
  }

  await t.step("a host shell runs on the host's root, and its container goes with it", async () => {
    await using dir = await tempDir("fleet-host-shell-");
    await Deno.writeTextFile(join(dir.path, "marker"), "on the host\n");
    const p = await runtime.exec({ host: { deviceId: "pi-9", sessionId: "abcdef0123456789" } }, {
      command: ["/bin/sh", "-c", `cat ${dir.path}/marker; echo written > ${dir.path}/back`],
      tty: false,
      stdin: false,
    });
    const shells = await client.listContainers({ [ContainerLabels.hostShell]: "pi-9" });
    assert.equal(shells.length, 1, "one host shell container while it runs");
    assert.deepEqual(await collect(p), { stdout: "on the host\n", stderr: "" });
    assert.equal(await p.exitCode(), 0);
    await p.close();
    assert.equal(await Deno.readTextFile(join(dir.path, "back")), "written\n", "writes land");
    assert.deepEqual(await client.listContainers({ [ContainerLabels.hostShell]: "pi-9" }), []);
  });

  await t.step("host shells an agent left behind are removed", async () => {
    const left = await client.createHostShell("fleet-host-shell_pi-9_left", {
      [ContainerLabels.hostShell]: "pi-9",
    });
    const other = await client.createHostShell("fleet-host-shell_pi-8_left", {
      [ContainerLabels.hostShell]: "pi-8",
    });
    await runtime.removeHostShells("pi-9");
    assert.deepEqual(await client.listContainers({ [ContainerLabels.hostShell]: "pi-9" }), []);
    assert.equal((await client.inspectContainer(other))?.id, other, "another device's stays");
    await client.removeContainer(other);
    assert.equal(await client.inspectContainer(left), undefined);
  });
});
