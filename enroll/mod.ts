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
  ensureNatsCa,
  ensurePackage,
  ensurePodman,
  ensurePodmanSocket,
  ensureService,
  hasDeviceKey,
  inspectSystem,
  NATS_CA_PATH,
  PACKAGE_RECORD_PATH,
  podmanSocketPath,
  readRootFile,
  STATE_DIR,
  type StepOutcome,
  type TargetFacts,
  writeAgentFile,
} from "./steps.ts";
export {
  type OidcCredentials,
  rotateDeviceKey,
  type RotateKeyOptions,
  type RotateKeyResult,
} from "./rotate.ts";
export { isUntouched, maskSecrets, sha256, stampConfig } from "./config_stamp.ts";
