import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { NATS_SERVER_BIN_ENV, NatsServerError, startNatsServer } from "./nats_server.ts";
import { dirname } from "node:path";
import { waitFor } from "../adapters/timers.ts";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

Deno.test("startNatsServer() serves JetStream and keeps its data across restart on the same port", async () => {
  let dir: string;
  {
    await using ns = await startNatsServer();
    dir = ns.storeDir;
    assert.match(ns.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(ns.url, `nats://127.0.0.1:${ns.port}`);

    const nc = await connect({ servers: ns.url });
    const kv = await new Kvm(nc).create("persist", { history: 1 });
    await kv.put("a", "1");
    await nc.close();

    await ns.restart();
    assert.equal(ns.running, true);
    const nc2 = await connect({ servers: ns.url });
    const kv2 = await new Kvm(nc2).open("persist");
    assert.equal((await kv2.get("a"))?.string(), "1");
    await nc2.close();

    // A crash (SIGKILL) then a restart also keeps the port and the flushed data.
    const port = ns.port;
    await ns.kill();
    assert.equal(ns.running, false);
    await ns.restart();
    assert.equal(ns.port, port);
    const nc3 = await connect({ servers: ns.url });
    assert.equal((await (await new Kvm(nc3).open("persist")).get("a"))?.string(), "1");
    await nc3.close();
  }
  assert.equal(await exists(dir), false, "the temporary folder is removed on dispose");
});

Deno.test("startNatsServer() keeps a caller-provided store dir on dispose", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-nats-test-" });
  try {
    {
      await using ns = await startNatsServer({ storeDir: dir });
      assert.equal(ns.storeDir, dir);
    }
    assert.equal(await exists(`${dir}/nats-server.conf`), true);
    assert.match(await Deno.readTextFile(`${dir}/nats-server.log`), /Server is ready/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startNatsServer() reports a bad config with the server's own message", async () => {
  await assert.rejects(
    startNatsServer({ extraConfig: "this is { not valid" }),
    (err: unknown) => {
      assert.ok(err instanceof NatsServerError);
      assert.match(err.message, /exited with code \d+ during start-up/);
      assert.match(err.message, /Parse error on line \d+/);
      return true;
    },
  );
});

Deno.test("startNatsServer() names the missing binary and the variable to set", async () => {
  const previous = Deno.env.get(NATS_SERVER_BIN_ENV);
  Deno.env.set(NATS_SERVER_BIN_ENV, "/nonexistent/nats-server");
  try {
    await assert.rejects(startNatsServer(), (err: unknown) => {
      assert.ok(err instanceof NatsServerError);
      assert.match(err.message, /"\/nonexistent\/nats-server" was not found/);
      assert.match(err.message, /FLEET_NATS_SERVER_BIN/);
      return true;
    });
  } finally {
    if (previous === undefined) Deno.env.delete(NATS_SERVER_BIN_ENV);
    else Deno.env.set(NATS_SERVER_BIN_ENV, previous);
  }
});

Deno.test("startNatsServer(): the server ignores a Ctrl-C to its starter's group and dies with the starter", async () => {
  // The starter: a program that handles SIGINT (as `fleet demo` does) and keeps its server.
  const starter = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { startNatsServer } from ${JSON.stringify(import.meta.resolve("./nats_server.ts"))};
      Deno.addSignalListener("SIGINT", () => console.log("SIGINT"));
      const ns = await startNatsServer();
      console.log(ns.url, ns.logFile);`,
    ],
    // Its own process group, as a shell runs a job; -pid signals all of it, as Ctrl-C does.
    detached: true,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let running = true;
  const status = starter.status.finally(() => running = false);
  let output = "";
  let storeDir: string | undefined;
  const read = (async () => {
    for await (const text of starter.stdout.pipeThrough(new TextDecoderStream())) output += text;
  })();
  try {
    const { url, logFile } = await waitFor("the starter to print the URL", () => {
      const [line, rest] = output.split("\n", 2);
      const [url = "", logFile = ""] = line!.split(" ");
      return rest === undefined ? undefined : { url, logFile };
    });
    storeDir = dirname(logFile);
    Deno.kill(-starter.pid, "SIGINT");
    await waitFor("the starter to get its SIGINT", () => output.includes("SIGINT") || undefined);
    const nc = await connect({ servers: url });
    await nc.flush();
    await nc.close();
    assert.doesNotMatch(await Deno.readTextFile(logFile), /Trapped/, "no signal reached it");

    starter.kill("SIGKILL");
    await status;
    const port = Number(new URL(url).port);
    await waitFor("the server to stop", async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return false;
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionRefused) return true;
        throw error;
      }
    });
  } finally {
    if (running) starter.kill("SIGKILL");
    await status;
    await read;
    // The starter died before its cleanup could remove it.
    if (storeDir) await Deno.remove(storeDir, { recursive: true });
  }
});
