/**
 * The story `fleet demo` tells: a local fleet of three devices, a deployment that selects
 * two of them, its status converging, the containers answering, then (with --auto) an
 * image update and a delete. Each step reports what it saw and how long it took. A stop
 * signal ends the story between steps, never in the middle of one, so what a step started
 * is always known to the cleanup.
 */
import type { Deployment, DeploymentStatus } from "../core/mod.ts";
import { singleServiceDeployment } from "./deployments.ts";
import type { Logger } from "../adapters/logger.ts";
import { narrate } from "../adapters/output.ts";
import { ensureTestImage } from "./local_image.ts";
import { renderDeployments, renderDevices } from "../cli/render.ts";
import { type DeviceSpec, LocalFleet } from "./local_fleet.ts";
import { waitFor } from "../adapters/timers.ts";

/**
 * Labels say where a device is, not what it is: all three agents run on this machine and
 * report its real hardware (arch, OS, memory) in their inventory, which a label must not
 * contradict.
 */
export const DEMO_DEVICES: DeviceSpec[] = [
  { deviceId: "pi-lab-1", labels: { site: "lab" } },
  { deviceId: "pi-lab-2", labels: { site: "lab" } },
  { deviceId: "pi-shop-1", labels: { site: "shop" } },
];

export interface StepResult {
  step: string;
  ok: boolean;
  ms: number;
  detail: string;
}

/** Thrown instead of running a step once the demo was told to stop. */
export class DemoInterrupted extends Error {
  override name = "DemoInterrupted";
}

/** The deployment the story applies: it selects the two `site=lab` devices. */
export function helloDeployment(image: string): Deployment {
  return singleServiceDeployment({
    name: "hello",
    namespace: "demo",
    image,
    selector: { matchLabels: { site: "lab" } },
    env: { GREETING: "hello from the fleet" },
  });
}

export class DemoStory {
  readonly results: StepResult[] = [];
  readonly #log: Logger;
  readonly #version: string;
  readonly #stop: AbortSignal;
  #fleet: LocalFleet | undefined;
  #stepRunning = false;

  /** @param stop ends the story before its next step (a step under way finishes first). */
  constructor(log: Logger, version: string, stop: AbortSignal) {
    this.#log = log;
    this.#version = version;
    this.#stop = stop;
    stop.addEventListener("abort", () => {
      if (this.#stepRunning) {
        narrate("\n    Stopping: this step finishes, then everything is removed");
      }
    }, { once: true });
  }

  get fleet(): LocalFleet | undefined {
    return this.#fleet;
  }

  /**
   * Runs one step; a failed step is recorded and ends the story.
   * @throws {DemoInterrupted} instead of starting it once the stop signal fired.
   */
  async step(name: string, run: () => Promise<string>): Promise<void> {
    if (this.#stop.aborted) {
      narrate(`\n==> Stopped before "${name}"`);
      throw new DemoInterrupted(`The demo was stopped before "${name}"`);
    }
    narrate(`\n==> ${name}`);
    const started = performance.now();
    this.#stepRunning = true;
    try {
      const detail = await run();
      const ms = Math.round(performance.now() - started);
      this.results.push({ step: name, ok: true, ms, detail });
      narrate(`    ok in ${(ms / 1000).toFixed(2)} s: ${detail}`);
    } catch (error) {
      const ms = Math.round(performance.now() - started);
      const detail = (error as Error).message;
      this.results.push({ step: name, ok: false, ms, detail });
      narrate(`    FAILED after ${(ms / 1000).toFixed(2)} s: ${detail}`);
      throw error;
    } finally {
      this.#stepRunning = false;
    }
  }

  /** Start, apply, converge, curl. Leaves the fleet running. */
  async up(): Promise<void> {
    await this.step("Start nats-server (JetStream, temp dir) and a podman service", async () => {
      this.#fleet = await LocalFleet.start({ log: this.#log, version: this.#version });
      const removed = await this.#removeLeftovers(this.#fleet);
      const left = removed > 0 ? `; removed ${removed} containers a killed demo had left` : "";
      return `NATS at ${this.#fleet.nats.url}${left}`;
    });
    const fleet = this.#fleet!;
    await this.step("Build the local test images (no registry needed)", async () => {
      const v1 = await ensureTestImage(fleet.podman, "v1");
      const v2 = await ensureTestImage(fleet.podman, "v2");
      return `${v1}, ${v2}`;
    });
    await this.step("Start the operator", async () => {
      await fleet.startOperator();
      return "watching fleet-deployments and the device buckets";
    });
    await this.step("Label three devices as enrollment does, and start their agents", async () => {
      for (const device of DEMO_DEVICES) await fleet.startAgent(device);
      const store = await fleet.store();
      const devices = await waitFor("three devices to register", async () => {
        const rows = await store.devices();
        return rows.length === DEMO_DEVICES.length ? rows : undefined;
      });
      narrate(renderDevices(devices, "table", Date.now()));
      return "pi-lab-1, pi-lab-2 (site=lab) and pi-shop-1 (site=shop) registered";
    });
    await this.step("Apply deployment demo/hello (image v1) selecting site=lab", async () => {
      const store = await fleet.store();
      await store.apply(helloDeployment("localhost/fleet-test:v1"));
      const status = await this.#converged(1, 2);
      return `status converged: ${status.aggregate.succeeded}/${status.aggregate.matchedDeviceCount} running`;
    });
    await this.step("Curl the containers", () => this.#curlAll("v1"));
  }

  /** The rest of the automatic story: update the image, then delete. */
  async updateAndDelete(): Promise<void> {
    const fleet = this.#fleet!;
    const before = new Set((await fleet.containers()).map((c) => c.id));
    await this.step("Update the image tag to v2", async () => {
      const store = await fleet.store();
      await store.apply(helloDeployment("localhost/fleet-test:v2"));
      await this.#converged(2, 2);
      const now = await fleet.containers();
      const recreated = now.filter((c) => !before.has(c.id)).length;
      if (recreated !== 2) throw new Error(`expected 2 new containers, found ${recreated}`);
      return "both containers recreated with new ids";
    });
    await this.step("Curl the updated containers", () => this.#curlAll("v2"));
    await this.step("Delete the deployment", async () => {
      const store = await fleet.store();
      await store.delete({ namespace: "demo", name: "hello" });
      await waitFor(
        "the containers to be removed",
        async () => (await fleet.containers()).length === 0 || undefined,
      );
      return "all demo containers are gone";
    });
  }

  async down(): Promise<void> {
    const fleet = this.#fleet;
    if (!fleet) return;
    this.#fleet = undefined;
    narrate("\n==> Cleaning up (agents, operator, containers, podman service, nats-server)");
    await fleet[Symbol.asyncDispose]();
  }

  /**
   * Removes the containers of the demo's devices that a demo killed before its cleanup
   * (SIGKILL) left running, so the story starts from none. Its helper processes died with it.
   */
  async #removeLeftovers(fleet: LocalFleet): Promise<number> {
    let removed = 0;
    for (const { deviceId } of DEMO_DEVICES) {
      for (const c of await fleet.containers(deviceId)) {
        await fleet.podman.removeContainer(c.id);
        removed++;
      }
    }
    return removed;
  }

  async #converged(generation: number, running: number): Promise<DeploymentStatus> {
    const fleet = this.#fleet!;
    const store = await fleet.store();
    let shown = "";
    const status = await waitFor(
      `demo/hello generation ${generation} running on ${running} devices`,
      async () => {
        const rows = await store.deployments();
        const table = renderDeployments(rows, "table", Date.now());
        if (table !== shown) {
          narrate(table);
          shown = table;
        }
        const s = rows.find((r) => r.deployment.metadata.name === "hello")?.status;
        return s && s.observedGeneration === generation && s.aggregate.succeeded === running &&
            s.aggregate.pending === 0
          ? s
          : undefined;
      },
      60_000,
      250,
    );
    return status;
  }

  async #curlAll(tag: string): Promise<string> {
    const fleet = this.#fleet!;
    const answers: string[] = [];
    for (const c of await fleet.containers()) {
      const address = await fleet.podman.containerAddress(c.id);
      if (!address) throw new Error(`container ${c.name} has no IP address`);
      const body = await waitFor(`http://${address}/ to answer`, async () => {
        const response = await fetch(`http://${address}/`);
        return response.ok ? await response.text() : undefined;
      }, 10_000);
      if (body.trim() !== `fleet-test ${tag}`) {
        throw new Error(`${c.name} answered "${body.trim()}"`);
      }
      narrate(`    curl http://${address}/  (${c.name}) -> ${body.trim()}`);
      answers.push(c.name);
    }
    if (answers.length !== 2) throw new Error(`expected 2 containers, found ${answers.length}`);
    return `${answers.length} containers answered "fleet-test ${tag}"`;
  }
}
