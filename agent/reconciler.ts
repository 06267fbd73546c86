/**
 * One reconcile pass: observe podman, plan, carry out the actions, and say how each
 * deployment is doing. Failures are collected per deployment; one bad deployment never
 * stops the others.
 */
import {
  type Action,
  type Assessment,
  ContainerLabels,
  type DesiredEntry,
  plan,
  refKey,
  shortError,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import type { ContainerRuntime } from "./runtime.ts";

export interface PassInput {
  deviceId: string;
  desired: ReadonlyMap<string, DesiredEntry>;
  /** Computes the deployments whose containers must stay, given those observed. */
  retained(observedRefs: Iterable<string>): ReadonlySet<string>;
}

export interface PassResult {
  assessments: Assessment[];
  /** Number of actions carried out (successfully or not). */
  actions: number;
  /** Deployments without desired state whose containers are still there (retained or not yet removed). */
  lingering: Set<string>;
}

function describe(action: Action): string {
  return action.kind === "create"
    ? `Creating container ${action.containerName} (${action.service.image}): ${action.reason}`
    : action.kind === "start"
    ? `Starting container ${action.containerName}: ${action.reason}`
    : `Removing container ${action.containerName}: ${action.reason}`;
}

export class Reconciler {
  readonly #runtime: ContainerRuntime;
  readonly #log: Logger;
  readonly #stopTimeoutSeconds: number;

  constructor(runtime: ContainerRuntime, log: Logger, stopTimeoutSeconds: number) {
    this.#runtime = runtime;
    this.#log = log;
    this.#stopTimeoutSeconds = stopTimeoutSeconds;
  }

  /** Runs one pass; throws only when podman itself cannot be listed. */
  async pass(input: PassInput): Promise<PassResult> {
    const observed = await this.#runtime.listManaged(input.deviceId);
    const observedRefs = new Set<string>();
    for (const c of observed) {
      const ns = c.labels[ContainerLabels.namespace];
      const name = c.labels[ContainerLabels.deployment];
      if (ns && name) observedRefs.add(`${ns}.${name}`);
    }
    const retained = input.retained(observedRefs);
    const { actions, assessments } = plan({
      deviceId: input.deviceId,
      desired: input.desired,
      observed,
      retained,
    });

    const failures = new Map<string, string>();
    for (const action of actions) {
      const key = action.ref ? refKey(action.ref) : undefined;
      // After one failure in a deployment, skip its remaining steps (e.g. create after a failed remove).
      if (key !== undefined && failures.has(key)) continue;
      this.#log.info(describe(action), key ? { deployment: key.replace(".", "/") } : {});
      try {
        await this.#carryOut(action);
      } catch (error) {
        const message = shortError((error as Error).message);
        this.#log.error(`Could not ${action.kind} container ${action.containerName}: ${message}`);
        if (key !== undefined) failures.set(key, message);
      }
    }

    const lingering = new Set(
      [...observedRefs].filter((ref) =>
        !input.desired.has(ref) && (retained.has(ref) || failures.has(ref))
      ),
    );
    return {
      actions: actions.length,
      lingering,
      assessments: assessments.map((a) => {
        const failure = failures.get(refKey(a.ref));
        return failure === undefined ? a : { ...a, phase: "Failed", error: failure };
      }),
    };
  }

  async #carryOut(action: Action): Promise<void> {
    switch (action.kind) {
      case "create":
        await this.#runtime.ensureImage(action.service.image);
        await this.#runtime.run(action.containerName, action.service, action.labels);
        return;
      case "start":
        await this.#runtime.start(action.containerId);
        return;
      case "remove":
        await this.#runtime.remove(action.containerId, this.#stopTimeoutSeconds);
        return;
    }
  }
}
