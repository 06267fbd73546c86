/**
 * Whether a device runs an `exec` request, and in which container: the device's own
 * `[remote]` switches, one interactive session at a time (a second one only with `force`,
 * which takes the first over), and exactly one container of the deployment.
 *
 * Pure: no I/O.
 * @module
 */
import type { ObservedContainer } from "./planner.ts";
import { type ExecRequest, selectedContainers } from "./device_commands.ts";

/** The most exec sessions open at once on a device, interactive or not. */
export const MAX_EXEC_SESSIONS = 4;

/** The device's own say (its config's `[remote]` table). */
export interface ExecPolicy {
  /** Exec at all. */
  exec: boolean;
  /** A shell on the device itself, outside every container. */
  hostShell: boolean;
}

/** An exec session open on the device. */
export interface OpenExec {
  sessionId: string;
  principal: string;
  /** Interactive: it has a terminal. */
  tty: boolean;
}

/** Run it (ending `takeOver` first), or why not, in a sentence for the person who asked. */
export type ExecAdmission = { admit: true; takeOver?: OpenExec } | { refuse: string };

/** Whether device `deviceId` runs `request` now, with `open` sessions under `policy`. */
export function admitExec(
  deviceId: string,
  request: ExecRequest,
  policy: ExecPolicy,
  open: readonly OpenExec[],
): ExecAdmission {
  if (!policy.exec) {
    return {
      refuse: `exec is switched off on device ${deviceId} ([remote] exec = false in its config)`,
    };
  }
  if (request.host) {
    if (request.deployment !== undefined) {
      return { refuse: "ask for a shell on the host or in a deployment, not both" };
    }
    if (!policy.hostShell) {
      return {
        refuse: `device ${deviceId} does not allow a shell on its host: its config does not ` +
          `set [remote] host_shell = true`,
      };
    }
  } else if (request.deployment === undefined || request.namespace === undefined) {
    return { refuse: "an exec request names a namespace and a deployment, or the host" };
  }
  const interactive = request.tty ? open.find((s) => s.tty) : undefined;
  if (interactive !== undefined && !request.force) {
    return {
      refuse: `device ${deviceId} already has an interactive session, opened by ` +
        `${interactive.principal}; add --force to take it over (they are told)`,
    };
  }
  const others = open.length - (interactive === undefined ? 0 : 1);
  if (others >= MAX_EXEC_SESSIONS) {
    return { refuse: `device ${deviceId} already has ${MAX_EXEC_SESSIONS} exec sessions open` };
  }
  return interactive === undefined ? { admit: true } : { admit: true, takeOver: interactive };
}

/** The one container an exec runs in, or why there is none. */
export type ExecContainer = { service: string; containerId: string } | { problem: string };

/**
 * The container of `request`'s deployment (and service) among `observed`. A deployment of
 * several services needs the service named: running in whichever came first would surprise.
 */
export function execContainer(
  observed: readonly ObservedContainer[],
  request: { namespace: string; deployment: string; service?: string | undefined },
): ExecContainer {
  const chosen = selectedContainers(observed, request);
  if ("problem" in chosen) return chosen;
  const [first, ...rest] = chosen.containers;
  if (rest.length > 0) {
    const services = chosen.containers.map((c) => c.service).join(", ");
    return {
      problem: `deployment "${request.deployment}" has several services here (${services}): ` +
        `name one, as ${request.deployment}/${first!.service}`,
    };
  }
  return first!;
}

/**
 * What an exec's audit record keeps of the command: the program and how many arguments, never
 * the arguments themselves (a password typed on a command line must not reach the audit log).
 */
export function execAuditArguments(request: ExecRequest): Record<string, string> {
  return {
    program: request.command[0]!,
    args: String(request.command.length - 1),
    ...(request.host ? { host: "true" } : {}),
    ...(request.tty ? { tty: "true" } : {}),
    ...(request.stdin ? { stdin: "true" } : {}),
    ...(request.force ? { force: "true" } : {}),
  };
}
