/**
 * What `fleet device ping|diag|restart|reconcile` and `fleet audit` print: readable text for a
 * field engineer (or the reply as JSON), and the sentence for a device that does not answer.
 * Ages are judged on the control plane's clock (DESIGN.md §9 "Time"): the broker's timestamp
 * of the last heartbeat, the requester's clock for now.
 */
import type {
  DiagResult,
  PingResult,
  ReconcileResult,
  RestartResult,
} from "../core/device_commands.ts";
import type { AuditRecord } from "../core/device_commands.ts";
import { age, renderTable } from "./table.ts";

/** A device with no agent listening: since when, by its last heartbeat (broker's time). */
export function offlineMessage(deviceId: string, lastHeartbeat: number | undefined, now: number) {
  const since = lastHeartbeat === undefined
    ? "it never sent a heartbeat"
    : `last heartbeat ${age(lastHeartbeat, now)} ago`;
  return `device ${deviceId} is offline (${since})`;
}

/** A device that did not answer in time: what was asked, and how long we waited. */
export function timeoutMessage(deviceId: string, verb: string, timeoutMs: number): string {
  return `device ${deviceId} did not answer ${verb} within ${timeoutMs / 1000}s: it is ` +
    `connected but busy or on a slow link; try again, or with a longer --timeout`;
}

/** `ping`: who answered, how fast, and how far its clock is from ours. */
export function renderPing(
  deviceId: string,
  result: PingResult,
  roundTripMs: number,
  now: number,
): string {
  const skew = Math.round((result.deviceTime - now) / 1000);
  const clock = Math.abs(skew) < 2
    ? "in step with this machine"
    : `${Math.abs(skew)}s ${skew > 0 ? "ahead of" : "behind"} this machine`;
  return [
    `device ${deviceId} answered in ${Math.round(roundTripMs)} ms`,
    `  agent     ${result.agentVersion}, up ${duration(result.uptimeSeconds)}`,
    `  clock     ${new Date(result.deviceTime).toISOString()} (${clock})`,
    ...result.natsRttMs === undefined
      ? []
      : [`  nats rtt  ${Math.round(result.natsRttMs)} ms (device to its NATS server)`],
  ].join("\n");
}

/** `diag`: the agent, podman, the desired state, each deployment, recent warnings. */
export function renderDiag(deviceId: string, d: DiagResult): string {
  const c = d.config;
  const labels = Object.entries(c.labels).map(([k, v]) => `${k}=${v}`).join(",") || "<none>";
  const lines = [
    `device ${deviceId}: agent ${d.agentVersion}`,
    `  nats         ${c.natsUrls.join(", ")} as ${c.credentials}`,
    `  podman       ${
      d.podman.healthy
        ? `${d.podman.version} at ${c.podmanSocket}`
        : `NOT ANSWERING at ${c.podmanSocket}: ${d.podman.error}`
    }`,
    `  state dir    ${c.stateDir}`,
    `  labels       ${labels}`,
    `  desired      ${d.desiredCache.deployments} deployment(s), ${
      d.desiredCache.readFromNats ? "read from NATS" : "from the local cache (NATS not read yet)"
    }; cache ${d.desiredCache.path}`,
    "",
    d.deployments.length === 0 ? "No deployments." : renderTable(
      ["NAMESPACE", "DEPLOYMENT", "GEN", "PHASE", "LAST ERROR"],
      d.deployments.map((x) => [
        x.namespace,
        x.deployment,
        String(x.generation),
        x.phase,
        x.lastError ?? "",
      ]),
    ),
    "",
    d.warnings.length === 0 ? "No recent warnings." : [
      "Recent warnings (device clock):",
      ...d.warnings.map((w) =>
        `  ${new Date(w.at).toISOString()} ${w.level.toUpperCase()} ${w.message}`
      ),
    ].join("\n"),
  ];
  return lines.join("\n");
}

/** `restart`: what was restarted, or that a retry changed nothing. */
export function renderRestart(deviceId: string, r: RestartResult): string {
  const what = r.restarted.map((c) => `${c.service} (${c.containerId.slice(0, 12)})`).join(", ");
  return r.repeated
    ? `device ${deviceId} had already restarted ${what} for this request id; nothing done again`
    : `device ${deviceId} restarted ${what}`;
}

/** `reconcile`: the pass that ran. */
export function renderReconcile(deviceId: string, r: ReconcileResult): string {
  return `device ${deviceId} ran a reconcile pass in ${Math.round(r.durationMs)} ms ` +
    `(pass ${r.passes} since the agent started)`;
}

/** `fleet audit`: one line per record, times the broker's. */
export function renderAudit(records: { record: AuditRecord; storedAt: number }[]): string {
  if (records.length === 0) return "No audit records.";
  return renderTable(
    ["END", "DEVICE", "WHO", "VERB", "ARGUMENTS", "DURATION", "OUTCOME"],
    records.map(({ record: r, storedAt }) => [
      new Date(storedAt).toISOString(),
      r.deviceId,
      r.principal,
      r.verb,
      Object.entries(r.arguments).map(([k, v]) => `${k}=${v}`).join(",") || "-",
      `${Math.round(r.durationMs)}ms`,
      r.outcome + (r.reason ? `: ${r.reason}` : "") +
      (r.bytes === undefined ? "" : ` (${r.bytes} bytes)`),
    ]),
  );
}

function duration(seconds: number): string {
  return age(0, seconds * 1000);
}
