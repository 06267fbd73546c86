import assert from "node:assert/strict";
import {
  offlineMessage,
  renderAudit,
  renderDiag,
  renderPing,
  renderRestart,
  timeoutMessage,
} from "./device_commands.ts";

const NOW = Date.parse("2026-12-06T10:00:00Z");

Deno.test("offlineMessage() gives the age of the last heartbeat on the control plane's clock", () => {
  assert.equal(
    offlineMessage("pi-1", NOW - 4 * 60_000 - 5_000, NOW),
    "device pi-1 is offline (last heartbeat 4m ago)",
  );
  assert.equal(
    offlineMessage("pi-1", undefined, NOW),
    "device pi-1 is offline (it never sent a heartbeat)",
  );
});

Deno.test("timeoutMessage() names the device, what was asked and how long we waited", () => {
  assert.match(
    timeoutMessage("pi-1", "diag", 10_000),
    /^device pi-1 did not answer diag within 10s/,
  );
});

Deno.test("renderPing() shows the device's clock against ours", () => {
  const text = renderPing(
    "pi-1",
    {
      agentVersion: "0.1.0",
      uptimeSeconds: 3_700,
      deviceTime: NOW - 3 * 3_600_000,
      natsRttMs: 0.4,
    },
    12.3,
    NOW,
  );
  assert.match(text, /^device pi-1 answered in 12 ms/);
  assert.match(text, /agent {5}0\.1\.0, up 61m/);
  assert.match(text, /10800s behind this machine/);
  assert.match(text, /nats rtt {2}0 ms/);
});

Deno.test("renderDiag() shows podman down, each deployment's error and recent warnings", () => {
  const text = renderDiag("pi-1", {
    agentVersion: "0.1.0",
    config: {
      deviceId: "pi-1",
      natsUrls: ["nats://10.0.0.5:4222"],
      credentials: "OIDC client pi-1",
      podmanSocket: "/run/podman/podman.sock",
      stateDir: "/var/lib/fleet-agent",
      labels: { site: "lab" },
    },
    podman: { healthy: false, error: "connection refused" },
    desiredCache: { path: "/var/lib/fleet-agent/desired.json", deployments: 1, readFromNats: true },
    deployments: [{
      namespace: "default",
      deployment: "web",
      generation: 3,
      phase: "Failed",
      lastError: "image not found",
    }],
    warnings: [{ at: NOW, level: "warn", message: "Deployment default/web failed" }],
  });
  assert.match(text, /NOT ANSWERING at \/run\/podman\/podman\.sock: connection refused/);
  assert.match(text, /default\s+web\s+3\s+Failed\s+image not found/);
  assert.match(text, /2026-12-06T10:00:00\.000Z WARN Deployment default\/web failed/);
});

Deno.test("renderRestart() says when a retried request changed nothing", () => {
  const restarted = [{ service: "app", containerId: "0123456789abcdef" }];
  assert.equal(
    renderRestart("pi-1", { restarted, repeated: false }),
    "device pi-1 restarted app (0123456789ab)",
  );
  assert.match(renderRestart("pi-1", { restarted, repeated: true }), /nothing done again/);
});

Deno.test("renderAudit() shows who asked what and how it ended, with the refusal's reason", () => {
  const text = renderAudit([{
    storedAt: NOW,
    record: {
      kind: "command",
      deviceId: "pi-1",
      principal: "mia-0a1b",
      verb: "restart",
      arguments: { namespace: "default", deployment: "web" },
      startedAt: NOW,
      durationMs: 812,
      outcome: "refused",
      reason: "no container of deployment",
    },
  }]);
  assert.match(
    text,
    /2026-12-06T10:00:00\.000Z\s+pi-1\s+mia-0a1b\s+restart\s+namespace=default,deployment=web\s+812ms\s+refused: no container/,
  );
  assert.equal(renderAudit([]), "No audit records.");
});

Deno.test("renderAudit() shows how a session ended and the bytes it sent", () => {
  const text = renderAudit([{
    storedAt: NOW,
    record: {
      kind: "session",
      deviceId: "pi-1",
      principal: "mia-0a1b",
      verb: "logs",
      arguments: { namespace: "default", deployment: "web", follow: "true" },
      startedAt: NOW,
      durationMs: 4210,
      outcome: "ok",
      reason: "cancelled: the requester cancelled",
      sessionId: "abcdef0123456789",
      bytes: 5242880,
    },
  }]);
  assert.match(
    text,
    /logs\s+namespace=default,deployment=web,follow=true\s+4210ms\s+ok: cancelled: the requester cancelled \(5242880 bytes\)/,
  );
});
