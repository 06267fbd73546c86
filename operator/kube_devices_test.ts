/**
 * The Device mirror on a real API server: the object's labels are people's (the label
 * registry), the device's own labels are shown in spec.reportedLabels, and an older operator's
 * labels stay on upgrade; labels of an older agent never reach the object's labels unless a
 * selector can match them.
 */
import assert from "node:assert/strict";
import { DEVICE_ID_LABEL } from "../core/mod.ts";
import { KubeClient } from "../adapters/kube/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { waitFor } from "../adapters/timers.ts";
import { startKubeApiServer } from "../testing/kube_apiserver.ts";
import { testDeviceInfo } from "../testing/devices.ts";
import { DeviceResource } from "../crd/device_resource.ts";
import { installCrds } from "./kube_install.ts";
import { KubeDeviceSink } from "./kube_devices.ts";
import { DeviceType } from "./kube_resources.ts";
import { OPERATOR_FIELD_MANAGER } from "./kube_source.ts";

Deno.test("KubeDeviceSink keeps an older operator's selectable Device labels as registry labels, drops its original-labels annotation, shows the free text and reported labels in spec, and sets no label but device-id", async () => {
  await using kube = await startKubeApiServer();
  using client = new KubeClient(kube.adminConfig);
  await installCrds(client, silentLogger);
  const info = testDeviceInfo("pi-old", { site: "lab" });
  info.labels.room = "Lab A / 2nd floor";
  // What an operator that sanitized free-text values wrote for this device.
  await client.apply(DeviceType, {
    apiVersion: "fleet.nationtech.io/v1alpha1",
    kind: "Device",
    metadata: {
      name: "pi-old",
      labels: { ...info.labels, room: "Lab-A-2nd-floor" },
      annotations: {
        "fleet.nationtech.io/original-labels":
          '{"room":{"key":"room","value":"Lab A / 2nd floor"}}',
      },
    },
    spec: { inventory: info.inventory },
  }, { fieldManager: OPERATOR_FIELD_MANAGER, force: true });

  const sink = new KubeDeviceSink(client, silentLogger);
  await sink.load();
  const controller = new AbortController();
  const running = sink.run(controller.signal);
  try {
    sink.deviceChanged(info);
    sink.deviceChanged({
      ...testDeviceInfo("pi-new", { site: "lab" }),
      unselectableLabels: { room: "Building 7 / Room 3" },
      description: "Gateway by the loading dock",
      annotations: { owner: "Facilities, ext. 4411" },
    });
    const read = (name: string) => async () => {
      const object = await client.get(DeviceType, name);
      const parsed = object === undefined ? undefined : DeviceResource.parse(object);
      return parsed?.spec.unselectableLabels ? parsed : undefined;
    };
    const old = await waitFor("pi-old rewritten", read("pi-old"), 30_000, 50);
    // Upgrade: what the older operator put there (and targeted on) stays, now as people's.
    assert.deepEqual(old.metadata.labels, {
      [DEVICE_ID_LABEL]: "pi-old",
      site: "lab",
      room: "Lab-A-2nd-floor",
    });
    assert.deepEqual(old.spec.unselectableLabels, { room: "Lab A / 2nd floor" });
    assert.deepEqual(old.spec.reportedLabels, { site: "lab" });
    assert.equal(old.metadata.annotations?.["fleet.nationtech.io/original-labels"], undefined);

    const fresh = await waitFor("pi-new created", read("pi-new"), 30_000, 50);
    // What the device says about itself is shown, never made a label.
    assert.deepEqual(fresh.metadata.labels, { [DEVICE_ID_LABEL]: "pi-new" });
    assert.deepEqual(fresh.spec, {
      inventory: fresh.spec.inventory,
      reportedLabels: { site: "lab" },
      description: "Gateway by the loading dock",
      annotations: { owner: "Facilities, ext. 4411" },
      unselectableLabels: { room: "Building 7 / Room 3" },
    });

    // A person labels it; the device's next report does not take the label away.
    await client.mergePatch(DeviceType, "pi-new", { metadata: { labels: { site: "vault" } } }, {
      fieldManager: "kubectl-label",
    });
    const moved = testDeviceInfo("pi-new", { site: "elsewhere" });
    sink.deviceChanged(moved);
    const after = await waitFor(
      "pi-new's report applied",
      async () => {
        const object = await client.get(DeviceType, "pi-new");
        const parsed = object === undefined ? undefined : DeviceResource.parse(object);
        return parsed?.spec.reportedLabels?.site === "elsewhere" ? parsed : undefined;
      },
      30_000,
      50,
    );
    assert.deepEqual(after.metadata.labels, { [DEVICE_ID_LABEL]: "pi-new", site: "vault" });
  } finally {
    controller.abort();
    await running;
  }
});

Deno.test("KubeDeviceSink shows an agent conflict on the Device (condition and who keeps it), keeps Reachable, and clears it", async () => {
  await using kube = await startKubeApiServer();
  using client = new KubeClient(kube.adminConfig);
  await installCrds(client, silentLogger);
  const sink = new KubeDeviceSink(client, silentLogger);
  await sink.load();
  const controller = new AbortController();
  const listeners = countAbortListeners(controller.signal);
  const running = sink.run(controller.signal);
  const status = async () => {
    const object = await client.get(DeviceType, "pi-1");
    return object === undefined ? undefined : DeviceResource.parse(object).status;
  };
  const conflict = {
    deviceId: "pi-1",
    owner: "aaaaaa",
    standby: ["bbbbbb"],
    since: "2026-06-01T12:00:00.000Z",
  };
  try {
    sink.deviceChanged(testDeviceInfo("pi-1", { site: "lab" }));
    // Before its object exists: the conflict waits for it, like reachability.
    sink.agentConflictChanged("pi-1", conflict);
    sink.reachabilityChanged("pi-1", true, Date.parse("2026-06-01T12:00:00Z"));
    const during = await waitFor(
      "the conflict shown",
      async () => {
        const s = await status();
        return s?.agentConflict && s.conditions?.length === 2 ? s : undefined;
      },
      30_000,
      50,
    );
    assert.deepEqual(during.agentConflict, {
      owner: "aaaaaa",
      standby: ["bbbbbb"],
      since: conflict.since,
    });
    assert.deepEqual(during.conditions?.map((c) => `${c.type}=${c.status}`).sort(), [
      "AgentConflict=True",
      "Reachable=True",
    ]);

    sink.reachabilityChanged("pi-1", false, Date.parse("2026-06-01T12:00:00Z"));
    await waitFor(
      "unreachable, conflict kept",
      async () => {
        const s = await status();
        const reachable = s?.conditions?.find((c) => c.type === "Reachable")?.status;
        return reachable === "False" && s?.agentConflict !== undefined;
      },
      30_000,
      50,
    );

    // Each write woke the idle write loop: none of those waits is still listening.
    assert.ok(listeners.count <= 2, `${listeners.count} abort listeners after a few writes`);

    sink.agentConflictChanged("pi-1", undefined);
    const after = await waitFor(
      "the conflict over",
      async () => {
        const s = await status();
        return s && s.agentConflict === undefined ? s : undefined;
      },
      30_000,
      50,
    );
    assert.equal(after.conditions?.find((c) => c.type === "AgentConflict")?.status, "False");
    assert.equal(after.conditions?.find((c) => c.type === "Reachable")?.status, "False");
  } finally {
    controller.abort();
    await running;
  }
});

/** Counts the abort listeners added to `signal` and not removed (nor fired). */
function countAbortListeners(signal: AbortSignal): { count: number } {
  const counter = { count: 0 };
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((type: string, listener: EventListener, options?: unknown) => {
    if (type === "abort") counter.count++;
    add(type, listener, options as AddEventListenerOptions);
  }) as typeof signal.addEventListener;
  signal.removeEventListener = ((type: string, listener: EventListener, options?: unknown) => {
    if (type === "abort") counter.count--;
    remove(type, listener, options as EventListenerOptions);
  }) as typeof signal.removeEventListener;
  return counter;
}
