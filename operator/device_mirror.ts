/**
 * The device controller: keeps the registry (devices that report, each with the labels the
 * label registry gives it, never the ones it reports about itself) and each device's
 * liveness, judged on the control plane's clock (DESIGN.md §9 "Time"); mirrors both to the
 * {@link DeviceSink} (kube: Device objects), tells targeting when labels change and marks
 * aggregates when a device crosses the staleness line, either way.
 * @module
 */
import {
  type Clock,
  type DeploymentRef,
  formatLabels,
  instanceRole,
  isStale,
  type Labels,
  lastSeenAt,
  targetingLabels,
  unregisteredLabels,
  withSelectableLabels,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { every } from "../adapters/timers.ts";
import type { DeviceSink } from "./deployment_source.ts";
import type { FleetView } from "./fleet_view.ts";
import type { InitialRead } from "./initial_read.ts";
import type { LabelRegistryEvent } from "./label_registry.ts";
import type { DeviceInfoEvent, HeartbeatEvent } from "./report_feed.ts";

/** Devices named in one warning about unregistered labels; the rest are counted. */
const NAMED_DEVICES = 5;

/** What a person does about labels a device reports that the registry does not give it. */
const FIX = "If they are right, copy them with `fleet device label <device> --from-reported`, " +
  "or set them with `fleet device label <device> key=value`";

/** Options of {@link DeviceMirror}. */
export interface DeviceMirrorOptions {
  view: FleetView;
  /** Where the registry is mirrored, if anywhere. */
  deviceSink: DeviceSink | undefined;
  initialRead: InitialRead;
  clock: Clock;
  log: Logger;
  /** A device silent for longer is unreachable. */
  staleAfterMs: number;
  /** How often devices are checked for having gone silent (heartbeats age without events). */
  scanIntervalMs: number;
  /** Called when a device's labels changed (undefined: it left the registry). */
  labelsChanged: (deviceId: string, labels: Labels | undefined) => void;
  /** Called for each deployment targeting a device that became reachable or unreachable. */
  aggregateChanged: (ref: DeploymentRef) => void;
}

/** The device registry and liveness, and their mirror in the {@link DeviceSink}. */
export class DeviceMirror {
  readonly #o: DeviceMirrorOptions;
  /** Devices currently considered unreachable. */
  readonly #stale = new Set<string>();
  /**
   * Whether heartbeats now arrive live: their receive time is when the device was seen. While
   * the bucket is (re)read, a value may be old and the broker's timestamp says how old.
   */
  #heartbeatsLive = false;
  /** deviceId → its labels in the label registry (devices without an entry are absent). */
  readonly #registered = new Map<string, Labels>();
  /** Devices already warned about for reporting labels the registry does not give them. */
  readonly #warned = new Set<string>();
  /**
   * deviceId → what it reports, for devices seen during the first read: the registry may not
   * be read yet, so they are checked at its end, in one line (an upgraded fleet has many).
   */
  readonly #unchecked = new Map<string, Labels>();

  constructor(options: DeviceMirrorOptions) {
    this.#o = options;
  }

  onInfo(event: DeviceInfoEvent): void {
    const { view, deviceSink, log, initialRead } = this.#o;
    if (event.type === "restart" || event.type === "ready") return;
    if (event.type === "delete") {
      this.#warned.delete(event.deviceId);
      this.#unchecked.delete(event.deviceId);
      if (view.removeDevice(event.deviceId)) {
        deviceSink?.deviceRemoved(event.deviceId);
        log.info(`Device ${event.deviceId} was removed from the registry`);
        this.#o.labelsChanged(event.deviceId, undefined);
      }
      return;
    }
    // An older agent publishes free-text values among its labels: no selector may match them.
    const info = withSelectableLabels(event.info);
    const deviceId = info.deviceId;
    // While two agents run as one device, only the owner's labels count: targeting must not
    // flap between two machines (see instance_arbiter.ts).
    if (
      info.instance && instanceRole(view.agentConflicts.get(deviceId), info.instance) === "standby"
    ) {
      log.debug(`Ignoring the info of device ${deviceId}'s standby agent ${info.instance}`);
      return;
    }
    const isNew = !view.devices.has(deviceId);
    deviceSink?.deviceChanged(info);
    // Reachability is reported on transitions; a new device's first state is one. At cold
    // start it waits until the heartbeats are read too (see reportAll). A device that just
    // wrote its info is alive: counting that as seen keeps a device whose info arrives
    // before its first heartbeat from showing unreachable for a moment.
    if (isNew && initialRead.complete) {
      if (!view.lastSeen.has(deviceId)) view.lastSeen.set(deviceId, this.#o.clock.now());
      this.#reportReachability(deviceId);
    }
    this.#warnUnregistered(deviceId, info.labels);
    const labels = targetingLabels(deviceId, this.#registered.get(deviceId));
    if (view.setDevice(deviceId, labels)) {
      if (initialRead.complete && isNew) log.info(`Device ${deviceId} joined`);
      this.#o.labelsChanged(deviceId, labels);
    }
  }

  /** A device's entry in the label registry was set or removed. */
  onRegistry(event: LabelRegistryEvent): void {
    if (event.type === "ready") return;
    const { deviceId } = event;
    if (event.type === "put") this.#registered.set(deviceId, event.labels);
    else this.#registered.delete(deviceId);
    this.#warned.delete(deviceId);
    const { view, log, initialRead } = this.#o;
    if (!view.devices.has(deviceId)) return;
    const labels = targetingLabels(deviceId, this.#registered.get(deviceId));
    if (view.setDevice(deviceId, labels)) {
      if (initialRead.complete) {
        log.info(`Device ${deviceId} has the labels ${formatLabels(labels)} now`);
      }
      this.#o.labelsChanged(deviceId, labels);
    }
  }

  /**
   * Warns once per device (and registry change) when it reports labels the registry does not
   * give it: after an upgrade from a version that targeted on reported labels, deployments
   * selecting those labels no longer reach it, and a person has to say whether they are true.
   */
  #warnUnregistered(deviceId: string, reported: Labels): void {
    if (this.#warned.has(deviceId)) return;
    if (!this.#o.initialRead.complete) {
      this.#unchecked.set(deviceId, reported);
      return;
    }
    const registered = this.#registered.get(deviceId);
    const extra = this.#unregistered(deviceId, reported);
    if (Object.keys(extra).length === 0) return;
    this.#warned.add(deviceId);
    this.#o.log.warn(
      `Device ${deviceId} reports the labels ${formatLabels(extra)}, which the label registry ` +
        `does not give it${registered ? "" : " (it has no entry yet)"}: deployments selecting ` +
        `them do not reach it. ${FIX.replaceAll("<device>", deviceId)}`,
      { deviceId },
    );
  }

  #unregistered(deviceId: string, reported: Readonly<Labels>): Record<string, string> {
    return unregisteredLabels(reported, targetingLabels(deviceId, this.#registered.get(deviceId)));
  }

  /** The devices seen during the first read that report labels the registry does not give. */
  #warnUnchecked(): void {
    const found: string[] = [];
    for (const [deviceId, reported] of this.#unchecked) {
      const extra = this.#unregistered(deviceId, reported);
      if (Object.keys(extra).length === 0) continue;
      this.#warned.add(deviceId);
      found.push(`${deviceId} (${formatLabels(extra)})`);
    }
    this.#unchecked.clear();
    if (found.length === 0) return;
    const more = found.length > NAMED_DEVICES ? `, and ${found.length - NAMED_DEVICES} more` : "";
    this.#o.log.warn(
      `${found.length} device(s) report labels the label registry does not give them, so ` +
        `deployments selecting those labels do not reach them: ` +
        `${found.slice(0, NAMED_DEVICES).join(", ")}${more}. ${FIX}`,
      { devices: found.length },
    );
  }

  onHeartbeat(event: HeartbeatEvent): void {
    if (event.type === "restart") {
      this.#heartbeatsLive = false;
      return;
    }
    if (event.type === "ready") {
      this.#heartbeatsLive = true;
      return;
    }
    const seen = lastSeenAt({
      brokerAt: event.brokerAt,
      receivedAt: this.#o.clock.now(),
      live: this.#heartbeatsLive,
    });
    this.#o.view.lastSeen.set(event.deviceId, seen);
    this.#checkStaleness(event.deviceId);
  }

  /**
   * The first complete read is done: tells the sink where every device stands, and warns of
   * the devices whose reported labels the registry does not give them.
   */
  reportAll(): void {
    for (const deviceId of this.#o.view.devices.keys()) this.#reportReachability(deviceId);
    this.#warnUnchecked();
  }

  /** Checks for devices gone silent until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    await every(this.#o.scanIntervalMs, signal, () => this.scan(), this.#o.clock);
  }

  /** Heartbeats age without events: looks for devices that crossed the line. */
  scan(): void {
    if (!this.#o.initialRead.complete) return;
    for (const deviceId of this.#o.view.devices.keys()) this.#checkStaleness(deviceId);
  }

  #isStale(deviceId: string): boolean {
    const seen = this.#o.view.lastSeen.get(deviceId);
    return isStale(seen, this.#o.clock.now(), this.#o.staleAfterMs);
  }

  /** Tells the device sink whether a device is reachable now, and remembers it. */
  #reportReachability(deviceId: string): void {
    const stale = this.#isStale(deviceId);
    if (stale) this.#stale.add(deviceId);
    else this.#stale.delete(deviceId);
    this.#o.deviceSink?.reachabilityChanged(deviceId, !stale, this.#o.view.lastSeen.get(deviceId));
  }

  /** Marks a device's deployments when it crosses the staleness line, either way. */
  #checkStaleness(deviceId: string): void {
    const { view, initialRead, log } = this.#o;
    const stale = this.#isStale(deviceId);
    if (stale === this.#stale.has(deviceId)) return;
    if (stale) this.#stale.add(deviceId);
    else this.#stale.delete(deviceId);
    if (view.devices.has(deviceId) && initialRead.complete) {
      this.#o.deviceSink?.reachabilityChanged(deviceId, !stale, view.lastSeen.get(deviceId));
    }
    if (initialRead.complete) {
      log.info(
        stale ? `Device ${deviceId} stopped sending heartbeats` : `Device ${deviceId} is reachable`,
      );
    }
    for (const ref of view.deploymentsTargeting(deviceId)) this.#o.aggregateChanged(ref);
  }
}
