/**
 * `fleet device enroll`: runs the steps in order on a target, reports each as it finishes
 * ("changed" or "unchanged"), and waits until the device's first heartbeat reaches NATS.
 * The device id is validated before anything is touched.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Buckets, keys, validateIdentifier } from "../core/mod.ts";
import type { Target } from "../adapters/host/target.ts";
import type { Logger } from "../adapters/logger.ts";
import type { IdentityProvider } from "../adapters/zitadel/mod.ts";
import { watchBucket } from "../adapters/nats/mod.ts";
import { type CredentialsConfig, renderAgentConfig } from "../agent/config.ts";
import {
  CONFIG_PATH,
  type ConfirmOverwrite,
  DEVICE_KEY_PATH,
  EnrollError,
  ensureAgentUser,
  ensureConfig,
  ensureDeviceKey,
  ensureLinger,
  ensureNatsCa,
  ensurePackage,
  ensurePodman,
  ensurePodmanSocket,
  ensureService,
  hasDeviceKey,
  inspectSystem,
  NATS_CA_PATH,
  podmanSocketPath,
  STATE_DIR,
  type StepOutcome,
} from "./steps.ts";

export interface EnrollOptions {
  target: Target;
  deviceId: string;
  /** Kubernetes label values only (the config refuses others). */
  labels: Record<string, string>;
  /** Free text about the device, shown and never selected. */
  description?: string;
  /** Free text under label-like keys, shown and never selected. */
  annotations?: Record<string, string>;
  natsUrls: string[];
  /** The CA of the NATS server's certificate (PEM), installed as `[nats] ca_file`. */
  natsCa?: string;
  /** The NATS server's public-key pin (`[nats] pin`). */
  natsPin?: string;
  /** The agent's NATS credentials; `oidc` ones get `key_file` set to the device key. */
  credentials: CredentialsConfig;
  /** The .deb for each architecture (`fleet_<version>_<arch>.deb`). */
  packages: Record<string, { path: string; version: string }>;
  /** A device key to install (read from a file by the caller). */
  deviceKey?: string;
  /** Creates the device's identity (and a key when the device has none) at the provider. */
  identity?: IdentityProvider;
  confirm: ConfirmOverwrite;
  /** A connection to the fleet's NATS, to see the heartbeat; none = do not wait. */
  nats?: NatsConnection;
  heartbeatTimeoutMs: number;
  /** One line per step, as it finishes. */
  report: (line: string) => void;
  log: Logger;
}

export interface EnrollResult {
  changed: number;
  steps: number;
}

/**
 * @throws {EnrollError} (or a target error) naming the step that failed; the steps before it
 *   stay done, and a new run picks up from there.
 */
export async function enrollDevice(o: EnrollOptions): Promise<EnrollResult> {
  validateIdentifier("device id", o.deviceId);
  let changed = 0;
  let steps = 0;
  const step = async <T extends StepOutcome>(title: string, run: () => Promise<T>): Promise<T> => {
    const outcome = await run();
    steps++;
    if (outcome.changed) changed++;
    o.report(`${outcome.changed ? "changed  " : "unchanged"}  ${title}: ${outcome.detail}`);
    return outcome;
  };

  const system = await step(`system on ${o.target.description}`, () => inspectSystem(o.target));
  const pkg = o.packages[system.arch];
  if (!pkg) {
    throw new EnrollError(
      `No package for ${system.arch} was given (have: ${
        Object.keys(o.packages).join(", ") || "none"
      })`,
    );
  }
  await step("podman", () => ensurePodman(o.target));
  const user = await step("service user", () => ensureAgentUser(o.target));
  await step("linger", () => ensureLinger(o.target));
  await step("podman socket", () => ensurePodmanSocket(o.target, user.uid));
  const installed = await step("package", () => ensurePackage(o.target, pkg));

  let key = o.deviceKey;
  const identity = o.identity;
  if (identity) {
    const created = await step("identity", async () => {
      // A key can be had only when created: ask for one only when the device has none.
      const needKey = key === undefined && !await hasDeviceKey(o.target);
      const id = await identity.ensureDeviceIdentity(o.deviceId, { newKey: needKey });
      return {
        changed: id.changed,
        detail: `${id.clientId} ${id.changed ? "set up" : "already set up"} at the provider` +
          (id.keyFile ? ", with a new key" : ""),
        key: id.keyFile,
      };
    });
    key ??= created.key;
  }
  let keyChanged = false;
  if (o.credentials.type === "oidc") {
    keyChanged = (await step("device key", () => ensureDeviceKey(o.target, key))).changed;
  }
  const natsCa = o.natsCa;
  const caChanged = natsCa !== undefined &&
    (await step("NATS CA", () => ensureNatsCa(o.target, natsCa))).changed;
  const credentials = o.credentials.type === "oidc"
    ? { ...o.credentials, key_file: DEVICE_KEY_PATH }
    : o.credentials;
  const config = renderAgentConfig({
    device_id: o.deviceId,
    labels: o.labels,
    ...(o.description === undefined ? {} : { description: o.description }),
    ...(o.annotations === undefined || Object.keys(o.annotations).length === 0
      ? {}
      : { annotations: o.annotations }),
    state_dir: STATE_DIR,
    nats: {
      urls: o.natsUrls,
      ...(natsCa !== undefined ? { ca_file: NATS_CA_PATH } : {}),
      ...(o.natsPin !== undefined ? { pin: o.natsPin } : {}),
      credentials,
    },
    podman: { socket: podmanSocketPath(user.uid) },
  }, CONFIG_PATH);
  const wrote = await step("config", () => ensureConfig(o.target, config, o.confirm));

  // Watch before (re)starting, so the first heartbeat cannot slip past.
  const heartbeat = o.nats
    ? nextHeartbeat(o.nats, o.deviceId, o.heartbeatTimeoutMs, o.log)
    : undefined;
  try {
    await step(
      "service",
      () =>
        ensureService(
          o.target,
          user.uid,
          installed.changed || wrote.changed || keyChanged || caChanged,
        ),
    );
    if (heartbeat) {
      await step("heartbeat", async () => {
        const seconds = await heartbeat.promise;
        return { changed: false, detail: `reached NATS ${seconds.toFixed(1)} s after the start` };
      });
    }
  } finally {
    heartbeat?.cancel();
  }
  return { changed, steps };
}

/** Resolves with the seconds until the device's next heartbeat put. */
function nextHeartbeat(
  nc: NatsConnection,
  deviceId: string,
  timeoutMs: number,
  log: Logger,
): { promise: Promise<number>; cancel: () => void } {
  const stop = new AbortController();
  const started = performance.now();
  const promise = (async () => {
    const timer = setTimeout(() => stop.abort(), timeoutMs);
    try {
      let ready = false;
      for await (
        const e of watchBucket({
          nc,
          bucket: Buckets.deviceHeartbeat,
          keyFilter: keys.heartbeat(deviceId),
          logger: log,
          signal: stop.signal,
        })
      ) {
        if (e.type === "ready") ready = true;
        else if (ready && e.type === "put") return (performance.now() - started) / 1000;
      }
    } finally {
      clearTimeout(timer);
    }
    throw new EnrollError(
      `${deviceId} sent no heartbeat within ${timeoutMs / 1000} s of starting fleet-agent; ` +
        `on the device, \`systemctl status fleet-agent\` and \`journalctl -u fleet-agent\` say why`,
    );
  })();
  // Not awaited when an earlier step fails.
  promise.catch(() => {});
  return { promise, cancel: () => stop.abort() };
}
