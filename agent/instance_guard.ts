/**
 * This agent's side of an agent conflict (two agents configured with one device id): its
 * instance id, and what the control plane's `agent-conflict` decision asks of it. The owner
 * carries on; a standby agent touches no container and sends no report but its heartbeat
 * until the conflict ends. Both say so loudly, since only a person can end it.
 * @module
 */
import { InstanceConflict, instanceRole, newInstanceId, parseJsonWith } from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";

export type InstanceRole = ReturnType<typeof instanceRole>;

export class InstanceGuard {
  readonly id: string;
  readonly #deviceId: string;
  readonly #log: Logger;
  #role: InstanceRole = "alone";

  constructor(deviceId: string, log: Logger, id: string = newInstanceId()) {
    this.id = id;
    this.#deviceId = deviceId;
    this.#log = log;
  }

  get role(): InstanceRole {
    return this.#role;
  }

  /** Whether this agent must leave its containers and reports alone. */
  get standingBy(): boolean {
    return this.#role === "standby";
  }

  /**
   * Takes the decision stored under the device's `agent-conflict` key (undefined: deleted).
   * @returns true when this agent's role changed
   */
  onDecision(raw: string | undefined): boolean {
    let conflict: InstanceConflict | undefined;
    if (raw !== undefined) {
      try {
        conflict = parseJsonWith(InstanceConflict, raw, "agent conflict decision");
      } catch (error) {
        // Unreadable: keep the role held so far rather than guess.
        this.#log.warn(
          `Ignoring the control plane's agent conflict decision: ${(error as Error).message}`,
        );
        return false;
      }
    }
    const role = instanceRole(conflict, this.id);
    if (role === this.#role) return false;
    const before = this.#role;
    this.#role = role;
    const others = conflict
      ? [conflict.owner, ...conflict.standby].filter((id) => id !== this.id).join(", ")
      : "";
    const fix =
      `Each machine needs its own device id: re-enroll one of them with another --device-id, or stop the extra agent.`;
    if (role === "standby") {
      this.#log.error(
        `Another agent (instance ${others}) already runs as device "${this.#deviceId}". ` +
          `This agent (instance ${this.id}) stands by: it leaves every container as it is and ` +
          `reports nothing until that one stops. ${fix}`,
      );
    } else if (role === "owner") {
      this.#log.error(
        `Another agent (instance ${others}) is also running as device "${this.#deviceId}". ` +
          `This agent (instance ${this.id}) keeps managing the containers; the other stands by. ${fix}`,
      );
    } else {
      this.#log.info(
        before === "standby"
          ? `The other agent running as device "${this.#deviceId}" stopped; this agent (instance ${this.id}) takes over`
          : `Only this agent (instance ${this.id}) runs as device "${this.#deviceId}" again`,
      );
    }
    return true;
  }
}
