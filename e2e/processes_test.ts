/**
 * The real commands as separate processes, as systemd runs them: `fleet operator run`,
 * `fleet agent run --config agent.toml`, and `fleet apply` / `fleet get` from a shell.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ContainerLabels, MANAGED_BY } from "../core/mod.ts";
import { startNatsServer } from "../sandbox/nats_server.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { waitFor } from "../adapters/timers.ts";
import { stopOnDeadline, story } from "./_story.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

/** A `fleet` process whose stderr is collected, stopped with SIGTERM. */
class FleetProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #stderr: Promise<string>;
  #status: Promise<Deno.CommandStatus>;

  constructor(args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#stderr = new Response(this.#child.stderr).text();
    this.#status = this.#child.status;
  }

  async stop(): Promise<{ code: number; stderr: string }> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    const status = await this.#status;
    return { code: status.code, stderr: await this.#stderr };
  }

  async [Symbol.asyncDispose]() {
    await this.stop();
  }
}

async function fleet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

story(
  "fleet operator run + fleet agent run --config: apply converges, SIGTERM leaves containers, restart recreates nothing",
  async () => {
    await using nats = stopOnDeadline(await startNatsServer());
    await using podman = stopOnDeadline(await startPodmanService());
    using client = new PodmanClient({ socketPath: podman.socketPath });
    await ensureTestImage(client, "v1");
    const dir = await Deno.makeTempDir({ prefix: "fleet-proc-" });
    const config = `${dir}/agent.toml`;
    await Deno.writeTextFile(
      config,
      `# written by the test, as device enroll would
device_id = "proc-dev-1"
state_dir = "${dir}/state"
labels = { site = "lab", role = "gateway" }

[nats]
urls = ["${nats.url}"]

[podman]
socket = "${podman.socketPath}"

[intervals]
heartbeat_seconds = 2
relist_seconds = 3
`,
    );
    const managed = () =>
      client.listContainers({
        [ContainerLabels.managedBy]: MANAGED_BY,
        [ContainerLabels.deviceId]: "proc-dev-1",
      });
    try {
      await using _operator = new FleetProcess([
        "operator",
        "run",
        "--nats-url",
        nats.url,
        "--allow-unbound-namespaces",
      ]);
      let agent = new FleetProcess(["agent", "run", "--config", config]);
      const devices = await waitFor("the device to register", async () => {
        const r = await fleet("get", "devices", "--nats-url", nats.url);
        return /proc-dev-1\s+yes/.test(r.stdout) ? r.stdout : undefined;
      });
      assert.match(devices, /role=gateway/);
      // Deployments select on the registry's labels, as device enroll would have set them.
      const labelled = await fleet(
        "device",
        "label",
        "proc-dev-1",
        "site=lab",
        "role=gateway",
        "--nats-url",
        nats.url,
      );
      assert.equal(labelled.code, 0, labelled.stderr);

      const applied = await fleet(
        "apply",
        "deployment",
        "--name",
        "web",
        "--image",
        "localhost/fleet-test:v1",
        "--selector",
        "site=lab",
        "--nats-url",
        nats.url,
      );
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stdout, /deployment default\/web created \(generation 1\)/);
      await waitFor("the deployment to succeed", async () => {
        const r = await fleet("get", "deployments", "-o", "json", "--nats-url", nats.url);
        const items = JSON.parse(r.stdout).items;
        return items[0]?.status?.aggregate?.succeeded === 1 ? true : undefined;
      });
      const [container] = await managed();
      assert.equal(container?.state, "running");

      const stopped = await agent.stop();
      assert.equal(stopped.code, 0, "the agent exits cleanly on SIGTERM");
      assert.match(stopped.stderr, /Connected to NATS/);
      assert.match(stopped.stderr, /Deployment default\/web is running/);
      assert.match(stopped.stderr, /containers keep running/);
      assert.equal((await managed())[0]?.id, container!.id, "SIGTERM leaves containers running");

      agent = new FleetProcess(["agent", "run", "--config", config]);
      await waitFor("the restarted agent to read its desired state", async () => {
        const r = await fleet("get", "deployments", "-o", "json", "--nats-url", nats.url);
        return JSON.parse(r.stdout).items[0]?.status?.aggregate?.succeeded === 1 ? true : undefined;
      });
      await new Promise((r) => setTimeout(r, 4000)); // more than one relist
      const after = await agent.stop();
      assert.deepEqual((await managed()).map((c) => c.id), [container!.id], "nothing recreated");
      assert.doesNotMatch(after.stderr, /Creating container/);
    } finally {
      for (const c of await managed()) await client.removeContainer(c.id);
      await Deno.remove(dir, { recursive: true });
    }
  },
);
