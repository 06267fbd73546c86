/**
 * Tenancy: a namespace targets only the devices an admin bound it to. The binding is a device
 * selector in the kubectl syntax (`site=a,tier in (x,y)`), or `*` for every device: on the kube
 * source a Namespace annotation, on the nats source a key of the `fleet-namespaces` bucket. A
 * device is a deployment's target only when it matches both the deployment's selector and its
 * namespace's binding, so no selector a tenant writes reaches past the binding. Pure.
 * @module
 */
import * as z from "zod";
import { API_GROUP, type DeploymentSpec, emptySelectorProblem } from "./deployment.ts";
import {
  type Labels,
  type LabelSelector,
  matchesSelector,
  parseSelector,
  SelectorSyntaxError,
} from "./selector.ts";

/** The Namespace annotation (kube source) holding its binding. */
export const DEVICE_SELECTOR_ANNOTATION = `${API_GROUP}/device-selector`;

/** The binding that grants every device. */
export const ALL_DEVICES = "*";

/**
 * The nats source's bindings, key `<namespace>`: admins write it, the operator and maintainers
 * read it, devices nothing.
 */
export const NAMESPACES_BUCKET = "fleet-namespaces";

/** Value at key `<namespace>` of the `fleet-namespaces` bucket (nats source). */
export const NamespaceBinding = z.object({
  /** kubectl selector syntax, or `*` for every device. */
  deviceSelector: z.string(),
});
export type NamespaceBinding = z.infer<typeof NamespaceBinding>;

/**
 * Reads a binding: `*` is every device, anything else a non-empty kubectl selector.
 * @throws SelectorSyntaxError naming the text and the rule
 */
export function parseBinding(text: string): LabelSelector {
  const trimmed = text.trim();
  if (trimmed === ALL_DEVICES) return {};
  if (trimmed === "") {
    throw new SelectorSyntaxError(
      text,
      `a namespace's device selector must not be empty; bind it to every device with ${ALL_DEVICES}`,
    );
  }
  return parseSelector([trimmed]);
}

/**
 * What the operator knows of one namespace's binding: its text (undefined: none), and whether
 * an unbound namespace gets every device (`--allow-unbound-namespaces`, for development).
 */
export interface BindingInput {
  namespace: string;
  binding: string | undefined;
  allowUnbound: boolean;
}

/** The devices a deployment may target: those matching every selector; or why none. */
export type TargetScope =
  | { selectors: LabelSelector[]; problem?: undefined }
  | { selectors?: undefined; problem: string };

/**
 * The scope of a deployment in its namespace: its own selector and its namespace's binding, or,
 * when it can target no device whatever the devices' labels, why (said on its status). An
 * unbound namespace, an unreadable binding and an empty selector without
 * `targetAllBoundDevices` all target nothing.
 */
export function targetScope(spec: DeploymentSpec, input: BindingInput): TargetScope {
  const { namespace, binding } = input;
  if (emptySelectorProblem(spec) !== undefined) {
    return {
      problem: "its targetSelector is empty, so it targets no device; to target every device " +
        `bound to namespace ${namespace}, set targetAllBoundDevices: true`,
    };
  }
  if (binding === undefined) {
    if (input.allowUnbound) return { selectors: [spec.targetSelector] };
    return {
      problem: `namespace ${namespace} is bound to no devices; an admin binds it with ` +
        `fleet namespace bind ${namespace} --devices 'site=a' (or --devices '${ALL_DEVICES}')`,
    };
  }
  try {
    return { selectors: [spec.targetSelector, parseBinding(binding)] };
  } catch (error) {
    if (!(error instanceof SelectorSyntaxError)) throw error;
    return {
      problem: `namespace ${namespace} has an unreadable device binding, so it targets no ` +
        `device until an admin fixes it: ${error.message}`,
    };
  }
}

/** Whether a device with `labels` is in `scope`. */
export function inScope(scope: TargetScope, labels: Readonly<Labels>): boolean {
  return scope.selectors?.every((selector) => matchesSelector(selector, labels)) ?? false;
}
