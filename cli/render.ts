/** How `fleet get` shows deployments and devices: tables for people, JSON/YAML for tools. */
import YAML from "yaml";
import {
  DEFAULT_STALE_AFTER_MS,
  formatSelector,
  type RolloutStatus,
  unregisteredLabels,
  withoutDeviceId,
  withSelectableLabels,
} from "../core/mod.ts";
import type { DeploymentRow, DeviceRow } from "./nats_store.ts";
import { age, renderTable } from "./table.ts";

export const OutputFormats = ["table", "wide", "json", "yaml"] as const;
export type OutputFormat = typeof OutputFormats[number];

function images(row: DeploymentRow): string {
  return row.deployment.spec?.score.data.services.map((s) => s.image).join(",") ?? "-";
}

/**
 * Deployments as a table (`wide` adds images and selector) or JSON/YAML. A deployment whose
 * latest generation the operator refused has GEN marked `!` and a note under the table saying
 * why and what its devices keep.
 */
export function renderDeployments(
  rows: DeploymentRow[],
  format: OutputFormat,
  now: number,
): string {
  if (format === "json" || format === "yaml") {
    const items = rows.map((r) => ({
      ...r.deployment,
      status: r.status ?? null,
      refused: r.refused ?? null,
    }));
    return format === "json"
      ? JSON.stringify({ items }, null, 2)
      : YAML.stringify({ items }).trimEnd();
  }
  if (rows.length === 0) return "No deployments.";
  const wide = format === "wide";
  // Shown once a deployment rolls out progressively, as kubectl's REVISION and ROLLOUT columns.
  const rollouts = rows.some((row) => row.status?.rollout !== undefined);
  const header = [
    "NAMESPACE",
    "NAME",
    "GEN",
    ...(rollouts ? ["ROLLOUT"] : []),
    "MATCHED",
    "SUCCEEDED",
    "FAILED",
    "PENDING",
    "UNREACHABLE",
    "AGE",
    ...(wide ? ["IMAGES", "SELECTOR"] : []),
    "LAST ERROR",
  ];
  const table = renderTable(
    header,
    rows.map((row) => {
      const { deployment, status, refused } = row;
      const a = status?.aggregate;
      const observed = status?.observedGeneration ?? 0;
      const gen = `${deployment.metadata.generation}${
        refused !== undefined ? "!" : observed < deployment.metadata.generation ? "*" : ""
      }`;
      const created = Date.parse(deployment.metadata.creationTimestamp ?? "");
      return [
        deployment.metadata.namespace,
        deployment.metadata.name,
        gen,
        ...(rollouts ? [rolloutCell(status?.rollout)] : []),
        String(a?.matchedDeviceCount ?? "-"),
        String(a?.succeeded ?? "-"),
        String(a?.failed ?? "-"),
        String(a?.pending ?? "-"),
        String(a?.unreachable ?? "-"),
        Number.isNaN(created) ? "-" : age(created, now),
        ...(wide
          ? [
            images(row),
            deployment.spec ? formatSelector(deployment.spec.targetSelector) : "-",
          ]
          : []),
        // Why it targets no device comes first: no device error can follow from it.
        a?.targetingProblem ??
          (a?.lastError ? `${a.lastError.deviceId}: ${a.lastError.message}` : ""),
      ];
    }),
  );
  const notes = rows.flatMap(({ deployment: { metadata }, refused }) =>
    refused === undefined ? [] : [`${metadata.namespace}/${metadata.name} ${refused}`]
  );
  return [table, ...notes].join("\n\n");
}

/** `rev 3 Progressing 2/3`: the revision rolled out, the phase and, while moving, the batch. */
function rolloutCell(rollout: RolloutStatus | undefined): string {
  if (rollout === undefined) return "-";
  const moving = rollout.phase !== "Complete" && rollout.phase !== "RolledBack";
  const batch = moving ? ` ${rollout.currentBatch}/${rollout.batches.length}` : "";
  return `rev ${rollout.revision.number} ${rollout.phase}${batch}`;
}

/** Marks a label no selector can match, in the LABELS column. */
const NOT_SELECTABLE = "(not selectable)";

/** Table cells are one line: control characters (from a device's free text) become spaces. */
function oneLine(text: string): string {
  return text.replace(/\p{Cc}+/gu, " ");
}

function pairs(record: Readonly<Record<string, string>>, show = (v: string) => v): string[] {
  return Object.entries(record).map(([k, v]) => `${k}=${show(v)}`);
}

/**
 * Devices as a table (`wide` adds the machine, description and annotations) or JSON/YAML.
 * LABELS are the labels deployments select on (the label registry's); REPORTED, shown only
 * where it differs, is what the device's agent says about itself, labels no selector can
 * match (free text from an agent of an older version or its config) marked.
 */
export function renderDevices(
  rows: DeviceRow[],
  format: OutputFormat,
  now: number,
  staleAfterMs = DEFAULT_STALE_AFTER_MS,
): string {
  const devices = rows.map((r) => ({ ...r, info: withSelectableLabels(r.info) }));
  if (format === "json" || format === "yaml") {
    const items = devices.map((r) => ({
      ...r.info,
      labels: r.labels,
      reportedLabels: r.info.labels,
      lastSeen: r.lastSeen === undefined ? null : new Date(r.lastSeen).toISOString(),
      reachable: r.lastSeen !== undefined && now - r.lastSeen <= staleAfterMs,
      agentConflict: r.agentConflict ?? null,
    }));
    return format === "json"
      ? JSON.stringify({ items }, null, 2)
      : YAML.stringify({ items }).trimEnd();
  }
  if (devices.length === 0) return "No devices.";
  const wide = format === "wide";
  const reported = devices.map(({ info, labels }) =>
    Object.keys(unregisteredLabels(info.labels, labels)).length === 0 &&
      info.unselectableLabels === undefined
      ? ""
      : [
        ...pairs(withoutDeviceId(info.labels)),
        ...pairs(
          info.unselectableLabels ?? {},
          (v) => `${oneLine(JSON.stringify(v))} ${NOT_SELECTABLE}`,
        ),
      ].join(",")
  );
  const showReported = reported.some((cell) => cell !== "");
  const table = renderTable(
    [
      "DEVICE",
      "REACHABLE",
      "LAST SEEN",
      "ARCH",
      "AGENT",
      ...(wide ? ["OS", "KERNEL", "CPUS", "MEMORY", "DESCRIPTION", "ANNOTATIONS"] : []),
      "LABELS",
      ...(showReported ? ["REPORTED"] : []),
    ],
    devices.map(({ info, labels, lastSeen, agentConflict }, i) => {
      return [
        info.deviceId,
        (lastSeen !== undefined && now - lastSeen <= staleAfterMs ? "yes" : "no") +
        (agentConflict ? `, ${1 + agentConflict.standby.length} agents!` : ""),
        lastSeen === undefined ? "never" : `${age(lastSeen, now)} ago`,
        info.inventory.arch,
        info.inventory.agentVersion,
        ...(wide
          ? [
            info.inventory.os,
            info.inventory.kernel,
            String(info.inventory.cpuCores),
            `${info.inventory.memoryMb}Mi`,
            oneLine(info.description ?? ""),
            oneLine(pairs(info.annotations ?? {}).join(",")),
          ]
          : []),
        pairs(withoutDeviceId(labels)).join(","),
        ...(showReported ? [reported[i]!] : []),
      ];
    }),
  );
  const notes = devices.flatMap(({ agentConflict: c }) =>
    c
      ? [
        `${c.deviceId}: ${1 + c.standby.length} agents run with this device id (instances ` +
        `${[c.owner, ...c.standby].join(", ")}). ${c.owner} keeps the containers; ` +
        `${c.standby.join(", ")} stand(s) by and touch(es) nothing. Give each machine its own ` +
        "device id (fleet device enroll --device-id ...), or stop the extra agent.",
      ]
      : []
  );
  if (showReported) {
    notes.push(
      "REPORTED is what a device's agent config says about it, where it differs from LABELS. " +
        "Deployments select on LABELS only: set them with fleet device label <device> " +
        "key=value, or copy what the device reports with fleet device label <device> " +
        "--from-reported.",
    );
  }
  if (devices.some((r) => r.info.unselectableLabels !== undefined)) {
    notes.push(
      `Labels marked ${NOT_SELECTABLE} are not Kubernetes label values, so no ` +
        "deployment selects a device by them; the device's agent log says how to fix its config.",
    );
  }
  return [table, ...notes].join("\n\n");
}
