/** The container runtime as the agent sees it; podman_runtime.ts is the real one. */
import type { ObservedContainer, PodmanService } from "../core/mod.ts";

export interface ContainerRuntime {
  /** Containers this agent manages on this device (by label), running or not. */
  listManaged(deviceId: string): Promise<ObservedContainer[]>;
  /** Pulls the image when it is not present (IfNotPresent). */
  ensureImage(image: string): Promise<void>;
  /** Creates and starts a container for `service`; returns its id. */
  run(name: string, service: PodmanService, labels: Record<string, string>): Promise<string>;
  start(containerId: string): Promise<void>;
  /** Graceful stop, kill after `stopTimeoutSeconds`, then remove; gone already is fine. */
  remove(containerId: string, stopTimeoutSeconds: number): Promise<void>;
}
