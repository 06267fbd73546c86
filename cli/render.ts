/** How `fleet get` shows deployments and devices: tables for people, JSON/YAML for tools. */
import YAML from "yaml";
import { DEFAULT_STALE_AFTER_MS, DEVICE_ID_LABEL, formatSelector } from "../core/mod.ts";
import type { DeploymentRow, DeviceRow } from "./nats_store.ts";
import { age, renderTable } from "./table.ts";

export const OutputFormats = ["table", "wide", "json", "yaml"] as const;
export type OutputFormat = typeof OutputFormats[number];

function images(row: DeploymentRow): string {
  return row.deployment.spec.score.data.services.map((s) => s.image).join(",");
}

export function renderDeployments(
  rows: DeploymentRow[],
  format: OutputFormat,
  now: number,
): string {
  if (format === "json" || format === "yaml") {
    const items = rows.map((r) => ({ ...r.deployment, status: r.status ?? null }));
    return format === "json"
      ? JSON.stringify({ items }, null, 2)
      : YAML.stringify({ items }).trimEnd();
  }
  if (rows.length === 0) return "No deployments.";
  const wide = format === "wide";
  const header = [
    "NAMESPACE",
    "NAME",
    "GEN",
    "MATCHED",
    "SUCCEEDED",
    "FAILED",
    "PENDING",
    "UNREACHABLE",
    "AGE",
    ...(wide ? ["IMAGES", "SELECTOR"] : []),
    "LAST ERROR",
  ];
  return renderTable(
    header,
    rows.map(({ deployment, status }) => {
      const a = status?.aggregate;
      const observed = status?.observedGeneration ?? 0;
      const gen = `${deployment.metadata.generation}${
        observed < deployment.metadata.generation ? "*" : ""
      }`;
      const created = Date.parse(deployment.metadata.creationTimestamp ?? "");
      return [
        deployment.metadata.namespace,
        deployment.metadata.name,
        gen,
        String(a?.matchedDeviceCount ?? "-"),
        String(a?.succeeded ?? "-"),
        String(a?.failed ?? "-"),
        String(a?.pending ?? "-"),
        String(a?.unreachable ?? "-"),
        Number.isNaN(created) ? "-" : age(created, now),
        ...(wide
          ? [images({ deployment, status }), formatSelector(deployment.spec.targetSelector)]
          : []),
        a?.lastError ? `${a.lastError.deviceId}: ${a.lastError.message}` : "",
      ];
    }),
  );
}

export function renderDevices(
  rows: DeviceRow[],
  format: OutputFormat,
  now: number,
  staleAfterMs = DEFAULT_STALE_AFTER_MS,
): string {
  if (format === "json" || format === "yaml") {
    const items = rows.map((r) => ({
      ...r.info,
      lastSeen: r.lastSeen === undefined ? null : new Date(r.lastSeen).toISOString(),
      reachable: r.lastSeen !== undefined && now - r.lastSeen <= staleAfterMs,
    }));
    return format === "json"
      ? JSON.stringify({ items }, null, 2)
      : YAML.stringify({ items }).trimEnd();
  }
  if (rows.length === 0) return "No devices.";
  const wide = format === "wide";
  return renderTable(
    [
      "DEVICE",
      "REACHABLE",
      "LAST SEEN",
      "ARCH",
      "AGENT",
      ...(wide ? ["OS", "KERNEL", "CPUS", "MEMORY"] : []),
      "LABELS",
    ],
    rows.map(({ info, lastSeen }) => [
      info.deviceId,
      lastSeen !== undefined && now - lastSeen <= staleAfterMs ? "yes" : "no",
      lastSeen === undefined ? "never" : `${age(lastSeen, now)} ago`,
      info.inventory.arch,
      info.inventory.agentVersion,
      ...(wide
        ? [
          info.inventory.os,
          info.inventory.kernel,
          String(info.inventory.cpuCores),
          `${info.inventory.memoryMb}Mi`,
        ]
        : []),
      Object.entries(info.labels)
        .filter(([k]) => k !== DEVICE_ID_LABEL)
        .map(([k, v]) => `${k}=${v}`)
        .join(","),
    ]),
  );
}
