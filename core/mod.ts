/**
 * Fleet's pure core: wire types (zod schemas and their inferred types), identifier rules,
 * keys and subjects, label selectors, the agent's planner, the operator's targeting diff
 * and aggregation, the Device resource and the CRDs generated from the wire schemas. Nothing
 * here does I/O or imports from outside `core/`.
 * @module
 */
export * from "./ids.ts";
export * from "./errors.ts";
export * from "./selector.ts";
export * from "./score.ts";
export * from "./deployment.ts";
export * from "./device_info.ts";
export * from "./deployment_state.ts";
export * from "./heartbeat.ts";
export * from "./deployment_status.ts";
export * from "./keys.ts";
export * from "./spec_hash.ts";
export * from "./planner.ts";
export * from "./targeting.ts";
export * from "./aggregate.ts";
export * from "./deployment_builder.ts";
export * from "./permissions.ts";
export * from "./text_diff.ts";
