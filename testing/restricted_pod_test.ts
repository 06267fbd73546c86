import assert from "node:assert/strict";
import { restrictedV2Problems } from "./restricted_pod.ts";

const RESTRICTED = {
  securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
  containers: [{
    name: "app",
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    },
  }],
  volumes: [{ name: "tmp", emptyDir: {} }, { name: "data", persistentVolumeClaim: {} }],
};

Deno.test("restrictedV2Problems() passes a restricted pod whose IDs the SCC assigns", () => {
  assert.deepEqual(restrictedV2Problems(RESTRICTED), []);
});

Deno.test("restrictedV2Problems() names each field that restricted-v2 refuses", () => {
  const container = RESTRICTED.containers[0]!;
  const cases: [unknown, string][] = [
    [{ ...RESTRICTED, hostNetwork: true }, "pod: hostNetwork is true"],
    [
      { ...RESTRICTED, securityContext: { ...RESTRICTED.securityContext, fsGroup: 1000 } },
      "pod: securityContext.fsGroup is pinned",
    ],
    [
      { ...RESTRICTED, volumes: [{ name: "host", hostPath: { path: "/" } }] },
      "pod: volume host is of type hostPath",
    ],
    [
      {
        ...RESTRICTED,
        containers: [{
          ...container,
          securityContext: { ...container.securityContext, runAsUser: 0 },
        }],
      },
      "container app: securityContext.runAsUser is pinned",
    ],
    [
      { ...RESTRICTED, securityContext: { seccompProfile: { type: "RuntimeDefault" } } },
      "container app: runAsNonRoot is not true",
    ],
    [
      {
        ...RESTRICTED,
        containers: [{
          ...container,
          securityContext: { ...container.securityContext, allowPrivilegeEscalation: true },
        }],
      },
      "container app: allowPrivilegeEscalation is not false",
    ],
    [
      {
        ...RESTRICTED,
        containers: [{
          ...container,
          securityContext: { ...container.securityContext, readOnlyRootFilesystem: false },
        }],
      },
      "container app: readOnlyRootFilesystem is not true",
    ],
    [
      {
        ...RESTRICTED,
        containers: [{
          ...container,
          securityContext: {
            ...container.securityContext,
            capabilities: { drop: ["ALL"], add: ["NET_ADMIN"] },
          },
        }],
      },
      "container app: adds capability NET_ADMIN",
    ],
    [
      {
        ...RESTRICTED,
        containers: [{
          ...container,
          securityContext: { ...container.securityContext, capabilities: {} },
        }],
      },
      "container app: capabilities do not drop ALL",
    ],
    [
      { ...RESTRICTED, securityContext: { runAsNonRoot: true } },
      "container app: seccompProfile is not RuntimeDefault",
    ],
    [
      { ...RESTRICTED, initContainers: [{ name: "init" }] },
      "container init: allowPrivilegeEscalation is not false",
    ],
    [
      {
        ...RESTRICTED,
        containers: [{ ...container, ports: [{ containerPort: 80, hostPort: 80 }] }],
      },
      "container app: hostPort 80",
    ],
    [{ ...RESTRICTED, containers: [] }, "pod: no containers"],
  ];
  for (const [pod, problem] of cases) {
    assert.ok(restrictedV2Problems(pod).includes(problem), `${problem}: ${JSON.stringify(pod)}`);
  }
});
