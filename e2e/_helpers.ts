/** Shared pieces of the end-to-end stories. */
import type { Deployment, DeploymentStatus, LabelSelector } from "../core/mod.ts";
import { stopOnDeadline, testLogger } from "./_story.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { LocalFleet } from "../sandbox/local_fleet.ts";
import { waitFor } from "../adapters/timers.ts";
import { singleServiceDeployment } from "../sandbox/deployments.ts";
import { fileURLToPath } from "node:url";

import type { MachineUser, TestProvider } from "../testing/oidc_provider.ts";
import { writeKeyFile } from "../testing/edge_nats.ts";

export { writeCalloutConfig } from "../testing/edge_nats.ts";

export async function startFleet(): Promise<LocalFleet> {
  const fleet = stopOnDeadline(
    await LocalFleet.start({ log: testLogger(), version: "0.0.0-test", staleAfterMs: 6000 }),
  );
  await ensureTestImage(fleet.podman, "v1");
  await ensureTestImage(fleet.podman, "v2");
  return fleet;
}

export function webDeployment(options: {
  name: string;
  namespace?: string;
  tag?: string;
  selector: LabelSelector;
}): Deployment {
  return singleServiceDeployment({
    name: options.name,
    selector: options.selector,
    image: `localhost/fleet-test:${options.tag ?? "v1"}`,
    ...(options.namespace ? { namespace: options.namespace } : {}),
  });
}

export interface Expected {
  generation?: number;
  matched: number;
  succeeded: number;
  failed?: number;
  pending?: number;
  unreachable?: number;
}

/** Waits until the deployment's stored status shows exactly `expected`. */
export async function waitForStatus(
  fleet: LocalFleet,
  ref: { namespace?: string; name: string },
  expected: Expected,
  timeoutMs = 30_000,
): Promise<DeploymentStatus> {
  const store = await fleet.store();
  const namespace = ref.namespace ?? "default";
  let last: DeploymentStatus | undefined;
  try {
    return await waitFor(
      `status of ${namespace}/${ref.name} to be ${JSON.stringify(expected)}`,
      async () => {
        const row = (await store.deployments()).find((r) =>
          r.deployment.metadata.namespace === namespace && r.deployment.metadata.name === ref.name
        );
        const s = row?.status;
        last = s;
        if (!s) return undefined;
        const a = s.aggregate;
        const ok = a.matchedDeviceCount === expected.matched &&
          a.succeeded === expected.succeeded &&
          a.failed === (expected.failed ?? 0) &&
          a.pending ===
            (expected.pending ?? expected.matched - expected.succeeded - (expected.failed ?? 0)) &&
          a.unreachable === (expected.unreachable ?? 0) &&
          (expected.generation === undefined || s.observedGeneration === expected.generation);
        return ok ? s : undefined;
      },
      timeoutMs,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last)}`);
  }
}

/** GETs the container's page over the podman bridge network. */
export async function curl(fleet: LocalFleet, containerId: string): Promise<string> {
  const address = await fleet.podman.containerAddress(containerId);
  if (!address) throw new Error(`container ${containerId} has no IP address`);
  return await waitFor(`http://${address}/`, async () => {
    const response = await fetch(`http://${address}/`);
    return response.ok ? (await response.text()).trim() : undefined;
  }, 10_000);
}

/** Container ids by name, for "nothing was recreated" checks. */
export async function containerIds(fleet: LocalFleet): Promise<Map<string, string>> {
  return new Map((await fleet.containers()).map((c) => [c.name, c.id]));
}

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

/**
 * A `fleet` process whose log lines (stderr) are kept as they come, and copied to the story's
 * log under `name` for its failure report; SIGTERM stops it. `env` adds to this process's.
 */
export class FleetProcess implements AsyncDisposable {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<void>;

  constructor(name: string, args: string[], env: Record<string, string> = {}) {
    const log = testLogger().with({ process: name });
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1", ...env },
    }).spawn();
    this.#child = child;
    this.#reading = (async () => {
      let rest = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        const lines = (rest + chunk).split("\n");
        rest = lines.pop() ?? "";
        this.lines.push(...lines);
        for (const line of lines) log.info(line);
      }
    })();
  }

  /** The lines that match `pattern`. */
  matching(pattern: RegExp): string[] {
    return this.lines.filter((line) => pattern.test(line));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await this.#child.status;
    await this.#reading;
  }
}

/** `fleet <args>` run once, as a person runs it from a shell. */
export async function fleet(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: "null",
    env: { NO_COLOR: "1", ...env },
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** A machine user of the test provider with one Fleet role; a device's id is its own name. */
export function addRoleUser(idp: TestProvider, id: string, role: string): Promise<MachineUser> {
  return idp.addMachineUser({ id, roles: [role], ...(role === "device" ? { deviceId: id } : {}) });
}

/** The `fleet` flags that connect to `natsUrl` as `user`, through the callout. */
export async function cliFlagsAs(
  dir: string,
  natsUrl: string,
  idp: TestProvider,
  user: MachineUser,
): Promise<string[]> {
  return [
    ...["--nats-url", natsUrl],
    ...["--oidc-issuer", idp.issuer, "--oidc-client-id", user.clientId],
    ...["--oidc-key", await writeKeyFile(dir, user), "--oidc-audience", idp.audience],
  ];
}
