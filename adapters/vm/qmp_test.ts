import assert from "node:assert/strict";
import { VmHostError, type VmState } from "../../vm/mod.ts";
import { resetVm } from "./instances.ts";
import { QmpClient, QmpError } from "./qmp.ts";
import { findTool, runTool } from "./tools.ts";

/**
 * A real qemu with no machine at all: it starts at once and speaks QMP on `socket`, which
 * is all a QMP client needs to be tested against.
 */
async function startBareQemu(): Promise<AsyncDisposable & { socket: string }> {
  const dir = await Deno.makeTempDir({ prefix: "fleet-qmp-" });
  const socket = `${dir}/qmp.sock`;
  const child = new Deno.Command(findTool("qemu-system-x86_64"), {
    args: [
      "-machine",
      "none",
      "-nodefaults",
      "-display",
      "none",
      "-qmp",
      `unix:${socket},server=on,wait=off`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await Deno.lstat(socket);
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`qemu made no QMP socket at ${socket} within 10 s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  return { socket, [Symbol.asyncDispose]: stop };
}

Deno.test("QmpClient against a real qemu: greeting, capabilities, a query, system_reset and its RESET event", async () => {
  await using qemu = await startBareQemu();
  await using qmp = await QmpClient.connect(qemu.socket);
  assert.ok(qmp.greeting.version.qemu.major >= 5, JSON.stringify(qmp.greeting));
  const status = await qmp.execute("query-status") as { running: boolean; status: string };
  assert.equal(status.status, "running");
  await qmp.systemReset();
  // qemu sends the event before the command's reply.
  const reset = qmp.events.find((e) => e.event === "RESET");
  assert.ok(reset, JSON.stringify(qmp.events));
  assert.equal(reset.data?.["reason"], "host-qmp-system-reset");
  // The session goes on after events.
  assert.equal((await qmp.execute("query-status") as { status: string }).status, "running");
});

Deno.test("QmpClient.execute() throws QmpError with qemu's class and description", async () => {
  await using qemu = await startBareQemu();
  await using qmp = await QmpClient.connect(qemu.socket);
  await assert.rejects(qmp.execute("no-such-command"), (error: unknown) => {
    assert.ok(error instanceof QmpError);
    assert.equal(error.errorClass, "CommandNotFound");
    assert.equal(error.command, "no-such-command");
    assert.match(error.message, /^qemu refused QMP command "no-such-command": .*not been found/);
    return true;
  });
  // An error answer does not end the session.
  await qmp.execute("query-status");
});

Deno.test("QmpClient.connect() names the socket when nothing listens there", async () => {
  const socket = `/tmp/fleet-qmp-none-${crypto.randomUUID()}/qmp.sock`;
  await assert.rejects(QmpClient.connect(socket), (error: unknown) => {
    assert.ok(error instanceof VmHostError);
    assert.ok(error.message.includes(socket), error.message);
    assert.match(error.message, /is its qemu running\?/);
    return true;
  });
});

Deno.test("QmpClient.connect() gives up on a socket that never greets", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-qmp-mute-" });
  const listener = Deno.listen({ transport: "unix", path: `${dir}/qmp.sock` });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  try {
    await assert.rejects(
      QmpClient.connect(`${dir}/qmp.sock`, { timeoutMs: 300 }),
      (error: unknown) => {
        assert.ok(error instanceof VmHostError);
        assert.match(error.message, /did not greet as a QMP server: no answer within 0\.3 s/);
        return true;
      },
    );
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of accepted) conn.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resetVm() power-cycles a VM of the qemu driver through its QMP socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-qmp-vm-" });
  // What provisionVm records for a qemu VM, around a qemu with no machine (starts at once).
  const state: VmState = {
    name: "qmp-test",
    arch: "x86_64",
    accel: "tcg",
    memoryMb: 16,
    cpus: 1,
    image: { key: "none", dir },
    ssh: {
      address: { user: "fleet", host: "127.0.0.1", port: 22 },
      identityFile: `${dir}/id`,
      knownHostsFile: `${dir}/known_hosts`,
    },
    guestIp: "10.0.2.15",
    consoleLog: `${dir}/console.log`,
    createdAt: new Date().toISOString(),
    driver: { kind: "qemu", pidFile: `${dir}/qemu.pid`, qmpSocket: `${dir}/qmp.sock`, command: [] },
  };
  const started = await runTool("qemu-system-x86_64", [
    "-machine",
    "none",
    "-nodefaults",
    "-display",
    "none",
    "-qmp",
    `unix:${dir}/qmp.sock,server=on,wait=off`,
    "-daemonize",
    "-pidfile",
    `${dir}/qemu.pid`,
  ]);
  assert.equal(started.code, 0, started.stderr);
  const pid = Number((await Deno.readTextFile(`${dir}/qemu.pid`)).trim());
  try {
    await resetVm(state);
    // It closed its session: the socket takes the next one, and the machine runs on.
    await using after = await QmpClient.connect(`${dir}/qmp.sock`);
    assert.equal((await after.execute("query-status") as { status: string }).status, "running");
  } finally {
    Deno.kill(pid, "SIGKILL");
    for (let i = 0; i < 100 && await Deno.stat(`/proc/${pid}`).then(() => true, () => false); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await assert.rejects(resetVm(state), /VM "qmp-test" is not running: there is nothing to reset/);
  await Deno.remove(dir, { recursive: true });
});
