/** Helpers shared by the Kubernetes adapter tests (not part of the adapter's surface). */

import { type KubeApiServer, OPERATOR_TEST_USER, startKubeApiServer } from "./kube_apiserver.ts";
import { eventually } from "./eventually.ts";
import type { KubeClient } from "../adapters/kube/client.ts";
import { createLogger, type Logger } from "../adapters/logger.ts";
import type { PolicyRule } from "../operator/helm_chart.ts";
import {
  CustomResourceDefinitionType,
  type KubeObject,
  NamespaceType,
  type ResourceType,
} from "../adapters/kube/types.ts";

/** Options for tests that share one API server across a file. */
export const sharedServerTest = { sanitizeOps: false, sanitizeResources: false };

let shared: Promise<KubeApiServer> | undefined;

/** One API server for the whole test file, started on first use. */
export function sharedKube(): Promise<KubeApiServer> {
  shared ??= startKubeApiServer();
  return shared;
}

/** Stops the shared API server (the file's last test calls this). */
export async function disposeSharedKube(): Promise<void> {
  const server = shared;
  shared = undefined;
  if (server) await (await server)[Symbol.asyncDispose]();
}

let counter = 0;

/** Creates a namespace with a unique name starting with `prefix`, so tests stay apart. */
export async function createNamespace(client: KubeClient, prefix: string): Promise<string> {
  const name = `${prefix}-${Date.now().toString(36)}-${counter++}`;
  await client.create(NamespaceType, { metadata: { name } });
  return name;
}

const RoleType: ResourceType = {
  group: "rbac.authorization.k8s.io",
  version: "v1",
  plural: "roles",
  kind: "Role",
  namespaced: true,
};
const RoleBindingType: ResourceType = { ...RoleType, plural: "rolebindings", kind: "RoleBinding" };

/**
 * Grants {@linkcode OPERATOR_TEST_USER} the `rules` in `namespace` (a Role and RoleBinding named
 * `name`). The API server's authorizer learns of the binding through its own watch a moment
 * later, so the caller waits for a call it allows to go through.
 */
export async function grantToOperatorTestUser(
  admin: KubeClient,
  namespace: string,
  name: string,
  rules: readonly PolicyRule[],
): Promise<void> {
  await admin.apply(RoleType, { metadata: { name, namespace }, rules }, {
    fieldManager: "fleet-test",
  });
  await admin.apply(RoleBindingType, {
    metadata: { name, namespace },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
    subjects: [{ kind: "User", name: OPERATOR_TEST_USER, apiGroup: "rbac.authorization.k8s.io" }],
  }, { fieldManager: "fleet-test" });
}

/** A logger whose lines are kept in `lines`. */
export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return {
    logger: createLogger({ level: "debug", timestamps: false, write: (l) => lines.push(l) }),
    lines,
  };
}

/** The tiny test kind: namespaced `Widget` with a status subresource and one CEL rule. */
export const WidgetType: ResourceType = {
  group: "kubetest.fleet.nationtech.io",
  version: "v1",
  plural: "widgets",
  kind: "Widget",
  namespaced: true,
};

/** The CEL rule's message, which must reach callers verbatim. */
export const WIDGET_SIZE_RULE_MESSAGE =
  "spec.size must be at most 10 (a Widget that big does not fit)";

/** A Widget as the tests read it. */
export interface Widget extends KubeObject {
  spec?: { size?: number; color?: string };
  status?: { phase?: string; observedSize?: number };
}

/** Installs the Widget CRD with `apply` and waits until it is Established. */
export async function installWidgetCrd(client: KubeClient): Promise<void> {
  const name = `${WidgetType.plural}.${WidgetType.group}`;
  await client.apply(CustomResourceDefinitionType, {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name },
    spec: {
      group: WidgetType.group,
      scope: "Namespaced",
      names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
      versions: [{
        name: "v1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: {
                type: "object",
                properties: {
                  size: { type: "integer" },
                  color: { type: "string" },
                },
                "x-kubernetes-validations": [{
                  rule: "!has(self.size) || self.size <= 10",
                  message: WIDGET_SIZE_RULE_MESSAGE,
                }],
              },
              status: {
                type: "object",
                properties: {
                  phase: { type: "string" },
                  observedSize: { type: "integer" },
                },
              },
            },
          },
        },
      }],
    },
  }, { fieldManager: "fleet-test" });
  await eventually(`CRD ${name} to be Established`, async () => {
    const crd = await client.get<
      { status?: { conditions?: { type: string; status: string }[] } }
    >(CustomResourceDefinitionType, name);
    return crd?.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") ??
      false;
  });
}
