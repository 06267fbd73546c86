/**
 * The device agent: config, desired-state view and cache, reconciler, reporter, and the
 * Agent that wires them to NATS and podman.
 * @module
 */
export * from "./config.ts";
export * from "./agent.ts";
export * from "./desired_view.ts";
export * from "./desired_cache.ts";
export * from "./reconciler.ts";
export * from "./reporter.ts";
export * from "./runtime.ts";
export * from "./podman_runtime.ts";
