/**
 * What the stories that reach devices (logs, exec) run on: a folder, the test OpenID provider,
 * nats-server with the auth callout, podman with the test image, and one identity per device
 * and person; the `fleet` flags that connect as each, and agent configs for the devices.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { AuditRecord } from "../core/device_commands.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { type PodmanService, startPodmanService } from "../sandbox/podman_service.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import {
  type MachineUser,
  startTestProvider,
  type TestProvider,
} from "../testing/oidc_provider.ts";
import {
  type EdgeAgentConfig,
  type EdgeNats,
  startEdgeNats,
  writeAgentConfig,
} from "../testing/edge_nats.ts";
import { tempDir } from "../testing/temp_dir.ts";
import { eventually } from "../testing/eventually.ts";
import { addRoleUser, cliFlagsAs, fleet } from "./_helpers.ts";
import { stopOnDeadline, testLogger } from "./_story.ts";

export interface DeviceRig extends AsyncDisposable {
  dir: string;
  idp: TestProvider;
  edge: EdgeNats;
  podmanService: PodmanService;
  podman: PodmanClient;
  /** Each identity by its id: a device's id is its own name. */
  users: Record<string, MachineUser>;
  /** The `fleet` flags that connect as `id`. */
  flagsOf(id: string): Promise<string[]>;
  /** An agent config for device `id` (its identity, this NATS and podman, 2 s stop timeout). */
  agentConfig(id: string, extra?: Pick<EdgeAgentConfig, "remote">): Promise<string>;
  /**
   * Waits for `devices` to join, labels them `site=lab` as `admin` and applies `manifest` (a
   * Deployment selecting `site=lab`) as `maintainer`.
   */
  deploy(
    devices: string[],
    as: { admin: string[]; maintainer: string[] },
    manifest: string,
  ): Promise<void>;
  /** `fleet audit --device <deviceId> --since 10m -o json` as `flags`, once `enough` holds. */
  audit(
    deviceId: string,
    flags: string[],
    enough: (records: StoredRecord[]) => boolean,
  ): Promise<StoredRecord[]>;
}

/** An audit record as `fleet audit -o json` prints it. */
export type StoredRecord = AuditRecord & { storedAt: string };

/**
 * A Deployment `name` in namespace default for the devices {@link DeviceRig.deploy} labels
 * `site=lab`, running `services`: the YAML list under `services:`, indented by 8.
 */
export function labDeployment(name: string, services: string): string {
  return `apiVersion: fleet.nationtech.io/v1alpha1
kind: Deployment
metadata:
  name: ${name}
  namespace: default
spec:
  targetSelector:
    matchLabels:
      site: lab
  score:
    type: PodmanV0
    data:
      services:
${services.replace(/^\n/, "")}`;
}

/** How long one step of a story may take on a loaded machine. */
const STEP_MS = 120_000;

/**
 * Starts the parts, with an identity for each of `identities` (id → Fleet role), and one
 * `fleet-operator` of role operator.
 */
export async function startDeviceRig(
  prefix: string,
  identities: Record<string, string>,
): Promise<DeviceRig> {
  const stack = new AsyncDisposableStack();
  try {
    const dir = stack.use(await tempDir(prefix));
    const idp = stack.use(await startTestProvider({ accessTokenTtlSeconds: 600 }));
    const users: Record<string, MachineUser> = {};
    for (const [id, role] of Object.entries({ ...identities, "fleet-operator": "operator" })) {
      users[id] = await addRoleUser(idp, id, role);
    }
    const edge = stack.use(stopOnDeadline(await startEdgeNats(dir.path, idp, testLogger())));
    const podmanService = stack.use(stopOnDeadline(await startPodmanService()));
    const podman = stack.use(new PodmanClient({ socketPath: podmanService.socketPath }));
    await ensureTestImage(podman, "v1");
    const user = (id: string) => {
      const found = users[id];
      if (!found) throw new Error(`no identity ${id} in this rig`);
      return found;
    };
    const parts = stack.move();
    return {
      dir: dir.path,
      idp,
      edge,
      podmanService,
      podman,
      users,
      flagsOf: (id) => cliFlagsAs(dir.path, edge.ns.url, idp, user(id)),
      agentConfig: (id, extra = {}) =>
        writeAgentConfig(dir.path, {
          deviceId: id,
          urls: [edge.ns.url],
          idp,
          user: user(id),
          podmanSocket: podmanService.socketPath,
          stopTimeoutSeconds: 2,
          ...extra,
        }),
      async deploy(devices, as, manifest) {
        await eventually(`${devices.join(" and ")} to join`, async () => {
          const r = await fleet(["get", "devices", ...as.admin]);
          return devices.every((id) => new RegExp(`${id}\\s+yes`).test(r.stdout));
        }, STEP_MS);
        for (const id of devices) {
          const label = await fleet(["device", "label", id, "site=lab", ...as.admin]);
          assert.equal(label.code, 0, label.stderr);
        }
        const path = join(dir.path, "deployment.yaml");
        await Deno.writeTextFile(path, manifest);
        const applied = await fleet(["apply", "-f", path, ...as.maintainer]);
        assert.equal(applied.code, 0, applied.stderr);
      },
      audit: (deviceId, flags, enough) =>
        eventually(`the audit records of ${deviceId}`, async () => {
          const r = await fleet([
            ...["audit", "--device", deviceId, "--since", "10m", "-o", "json"],
            ...flags,
          ]);
          assert.equal(r.code, 0, r.stderr);
          const records = JSON.parse(r.stdout) as StoredRecord[];
          return enough(records) ? records : undefined;
        }, STEP_MS),
      [Symbol.asyncDispose]: () => parts.disposeAsync(),
    };
  } catch (error) {
    await stack.disposeAsync();
    throw error;
  }
}
