/**
 * The operator: deployment sources, the fleet view, and the Operator that writes desired
 * state and aggregates; plus the nats store the CLI uses.
 * @module
 */
export * from "./deployment_source.ts";
export * from "./nats_source.ts";
export * from "./fleet_view.ts";
export * from "./operator.ts";
export * from "./kube_resources.ts";
export * from "./kube_source.ts";
export * from "./kube_devices.ts";
export * from "./kube_install.ts";
export * from "./leader_election.ts";
export * from "./helm_chart.ts";
export * from "./image.ts";
