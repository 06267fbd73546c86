/**
 * The device agent: config, desired-state view and cache, reconciler, reporter, and the
 * Agent that wires them to NATS and podman.
 * @module
 */
export {
  AgentConfig,
  agentConfigFile,
  CredentialsConfig,
  NoCredentials,
  OidcCredentials,
  renderAgentConfig,
  UserPasswordCredentials,
} from "./config.ts";
export { Agent, type AgentOptions } from "./agent.ts";
export { DesiredView, type KeyProblem, toEntry } from "./desired_view.ts";
export { DesiredCache } from "./desired_cache.ts";
export { type PassInput, type PassResult, Reconciler } from "./reconciler.ts";
export { Reporter, type ReportSink } from "./reporter.ts";
export { type ContainerRuntime } from "./runtime.ts";
export { PodmanRuntime } from "./podman_runtime.ts";
