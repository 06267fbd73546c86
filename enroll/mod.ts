/**
 * Enrolling a device over SSH (`fleet device enroll`, `fleet vm provision`): the pure plan
 * of steps and the config stamp that tells a config enroll wrote from one changed by hand.
 * @module
 */
export { enrollDevice, type EnrollOptions, type EnrollResult } from "./enroll.ts";
export {
  AGENT_USER,
  CONFIG_PATH,
  type ConfirmOverwrite,
  DEVICE_KEY_PATH,
  EnrollError,
  ensureAgentUser,
  ensureConfig,
  ensureDeviceKey,
  ensureLinger,
  ensurePackage,
  ensurePodman,
  ensurePodmanSocket,
  ensureService,
  hasDeviceKey,
  inspectSystem,
  PACKAGE_RECORD_PATH,
  podmanSocketPath,
  STATE_DIR,
  type StepOutcome,
  type TargetFacts,
} from "./steps.ts";
export { isUntouched, sha256, stampConfig } from "./config_stamp.ts";
