import assert from "node:assert/strict";
import { VmHostError } from "../../vm/mod.ts";
import { QmpClient, QmpError } from "./qmp.ts";
import { findTool } from "./tools.ts";

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
