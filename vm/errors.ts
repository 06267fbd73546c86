/** Errors of the VM tooling, each with a message a field engineer can act on. */
import { FleetError } from "../core/errors.ts";

/** A flag or name the user gave cannot be used as given (exit code 2). */
export class VmUsageError extends FleetError {
  override name = "VmUsageError";
  constructor(message: string, options?: ErrorOptions) {
    super("usage", message, options);
  }
}

/** Something on this machine is missing or refused (a tool, root, firmware, a free port). */
export class VmHostError extends Error {
  override name = "VmHostError";
}

/** Building the base image failed; `step` names the stage (debootstrap, kernel, disk...). */
export class VmImageBuildError extends Error {
  override name = "VmImageBuildError";
  constructor(readonly step: string, readonly reason: string, options?: ErrorOptions) {
    super(`Image build failed at ${step}: ${reason}`, options);
  }
}

/** The VM did not start or did not become reachable in time. */
export class VmBootError extends Error {
  override name = "VmBootError";
}
