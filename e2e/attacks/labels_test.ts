/**
 * Attacks on targeting through what a device says about itself (issue 12, item 3), on a real
 * nats-server with users issued by the auth callout and a real operator: a device that claims
 * `site=vault` or another device's id in its DeviceInfo gets none of vault's workloads, cannot
 * write the label registry, and the vault device keeps its deployment.
 */
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream } from "@nats-io/jetstream";
import {
  Buckets,
  DEVICE_ID_LABEL,
  keys,
  type LabelSelector,
  type RegisteredLabels,
} from "../../core/mod.ts";
import { silentLogger } from "../../adapters/logger.ts";
import { openBucket, readBucket } from "../../adapters/nats/mod.ts";
import { startCalloutFixture } from "../../testing/callout.ts";
import { testDeviceInfo } from "../../testing/devices.ts";
import { eventually } from "../../testing/eventually.ts";
import { singleServiceDeployment } from "../../sandbox/deployments.ts";
import { NatsDeviceLabelStore } from "../../cli/device_labels.ts";
import { NatsDeploymentStore } from "../../cli/nats_store.ts";
import { createOperator } from "../../operator/mod.ts";

const VAULT: LabelSelector = { matchLabels: { site: "vault" } };
const BY_ID: LabelSelector = { matchLabels: { [DEVICE_ID_LABEL]: "vault-1" } };

/** What an agent publishes on its own key, through its own callout-issued user. */
async function report(nc: NatsConnection, deviceId: string, labels: Record<string, string>) {
  const info = await openBucket(nc, Buckets.deviceInfo);
  await info.put(keys.deviceInfo(deviceId), JSON.stringify(testDeviceInfo(deviceId, labels)));
  const beats = await openBucket(nc, Buckets.deviceHeartbeat);
  await beats.put(keys.heartbeat(deviceId), JSON.stringify({ deviceId, at: Date.now() }));
}

async function desiredKeys(nc: NatsConnection): Promise<string[]> {
  return [...(await readBucket(nc, Buckets.desiredState, silentLogger)).keys()]
    .filter((key) => key.split(".").length === 3)
    .sort();
}

Deno.test({
  name:
    "attack: a device claiming site=vault or vault's device id in its DeviceInfo gets none of vault's workloads, cannot write the label registry, and vault keeps its own",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using t = await startCalloutFixture(false);
    const admin = await t.connectAs(await t.mint("ops-admin", ["fleet-admin"]));
    // The operator with fleet-wide rights: the attack is the device's, not on the operator.
    const operatorNc = await t.connectAs(await t.mint("fleet-operator", ["fleet-admin"]));
    const vault = await t.connectAs(await t.mint("vault-1", ["fleet-device"]), "vault-1");
    const evil = await t.connectAs(await t.mint("evil-1", ["fleet-device"]), "evil-1");
    const abort = new AbortController();
    let running: Promise<void> | undefined;
    try {
      const operator = createOperator({
        nc: operatorNc,
        log: silentLogger,
        replicas: 1,
        flushIntervalMs: 100,
        allowUnboundNamespaces: true,
      });
      running = operator.run(abort.signal);
      await operator.ready;

      // A person labels the vault device; both devices report, the attacker claiming vault.
      const registry = new NatsDeviceLabelStore(admin);
      await registry.edit("vault-1", () => ({ site: "vault" }));
      await report(vault, "vault-1", { site: "vault" });
      await report(evil, "evil-1", { site: "vault", [DEVICE_ID_LABEL]: "vault-1" });

      const store = new NatsDeploymentStore(admin, silentLogger);
      await store.apply(
        singleServiceDeployment({ name: "secrets", image: "localhost/vault:1", selector: VAULT }),
      );
      await store.apply(
        singleServiceDeployment({ name: "pinned", image: "localhost/vault:1", selector: BY_ID }),
      );
      await eventually(
        "vault-1's two keys",
        async () => (await desiredKeys(admin)).length === 2 || undefined,
      );
      // Both deployments are resolved with both devices known: nothing for evil-1, now or later.
      await eventually(
        "evil-1 to be known to the operator",
        () => operator.view.devices.has("evil-1"),
      );
      await store.apply(
        singleServiceDeployment({ name: "secrets", image: "localhost/vault:2", selector: VAULT }),
      );
      await eventually("generation 2 written", async () => {
        const value = (await readBucket(admin, Buckets.desiredState, silentLogger))
          .get("vault-1.default.secrets");
        return value && JSON.parse(new TextDecoder().decode(value)).generation === 2;
      });
      assert.deepEqual(await desiredKeys(admin), [
        "vault-1.default.pinned",
        "vault-1.default.secrets",
      ]);

      // The registry is not the device's to write: its own entry, let alone vault's.
      const js = jetstream(evil, { timeout: 2_000 });
      for (const deviceId of ["evil-1", "vault-1"]) {
        await assert.rejects(
          js.publish(
            `$KV.${Buckets.deviceLabels}.${keys.deviceLabels(deviceId)}`,
            JSON.stringify({ labels: { site: "vault" } } satisfies RegisteredLabels),
          ),
          `evil-1 writing the registry entry of ${deviceId}`,
        );
      }
      const entry = await (await openBucket(admin, Buckets.deviceLabels))
        .get(keys.deviceLabels("evil-1"));
      assert.equal(entry, null, "evil-1 has no registry entry");
      assert.deepEqual(operator.view.devices.get("evil-1"), { [DEVICE_ID_LABEL]: "evil-1" });

      // Nothing lost: vault still holds both, and its labels are what the person set.
      assert.deepEqual(await desiredKeys(admin), [
        "vault-1.default.pinned",
        "vault-1.default.secrets",
      ]);
      assert.deepEqual(operator.view.devices.get("vault-1"), {
        site: "vault",
        [DEVICE_ID_LABEL]: "vault-1",
      });
    } finally {
      abort.abort();
      await running;
      for (const nc of [evil, vault, operatorNc, admin]) await nc.close();
    }
  },
});
