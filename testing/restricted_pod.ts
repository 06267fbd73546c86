/**
 * What keeps a pod from running unchanged under OpenShift's restricted-v2 SCC (and the
 * "restricted" Pod Security Standard), plus what this project asks of its own pods on top: a
 * read-only root filesystem. Pure: it reads a parsed pod spec.
 *
 * @module
 */

/** The volume types restricted-v2 allows. */
const ALLOWED_VOLUMES = new Set([
  "configMap",
  "csi",
  "downwardAPI",
  "emptyDir",
  "ephemeral",
  "persistentVolumeClaim",
  "projected",
  "secret",
]);

/** Capabilities restricted-v2 lets a container add. */
const ADDABLE = new Set(["NET_BIND_SERVICE"]);

type Json = Record<string, unknown>;

function record(value: unknown): Json {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? value as Json : {};
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** IDs the SCC assigns from the namespace's range; a pinned one is refused outside it. */
const PINNED_IDS = ["runAsUser", "runAsGroup", "fsGroup", "seLinuxOptions"];

/**
 * The reasons `pod` (a PodSpec) would not run unchanged under restricted-v2, each naming the
 * container and the field; empty when it would.
 */
export function restrictedV2Problems(pod: unknown): string[] {
  const spec = record(pod);
  const problems: string[] = [];
  for (const field of ["hostNetwork", "hostPID", "hostIPC"]) {
    if (spec[field] === true) problems.push(`pod: ${field} is true`);
  }
  const podContext = record(spec["securityContext"]);
  for (const field of PINNED_IDS) {
    if (podContext[field] !== undefined) problems.push(`pod: securityContext.${field} is pinned`);
  }
  for (const volume of list(spec["volumes"]).map(record)) {
    const type = Object.keys(volume).find((key) => key !== "name");
    if (type === undefined || !ALLOWED_VOLUMES.has(type)) {
      problems.push(`pod: volume ${String(volume["name"])} is of type ${String(type)}`);
    }
  }
  const podSeccomp = record(podContext["seccompProfile"])["type"];
  const containers = [...list(spec["initContainers"]), ...list(spec["containers"])].map(record);
  if (containers.length === 0) problems.push("pod: no containers");
  for (const container of containers) {
    const where = `container ${String(container["name"])}`;
    const context = record(container["securityContext"]);
    for (const field of PINNED_IDS) {
      if (context[field] !== undefined) {
        problems.push(`${where}: securityContext.${field} is pinned`);
      }
    }
    if (context["privileged"] === true) problems.push(`${where}: privileged`);
    if (context["allowPrivilegeEscalation"] !== false) {
      problems.push(`${where}: allowPrivilegeEscalation is not false`);
    }
    const runAsNonRoot = context["runAsNonRoot"] ?? podContext["runAsNonRoot"];
    if (runAsNonRoot !== true) problems.push(`${where}: runAsNonRoot is not true`);
    if (context["readOnlyRootFilesystem"] !== true) {
      problems.push(`${where}: readOnlyRootFilesystem is not true`);
    }
    const capabilities = record(context["capabilities"]);
    if (!list(capabilities["drop"]).includes("ALL")) {
      problems.push(`${where}: capabilities do not drop ALL`);
    }
    for (const added of list(capabilities["add"])) {
      if (!ADDABLE.has(String(added))) problems.push(`${where}: adds capability ${added}`);
    }
    const seccomp = record(context["seccompProfile"])["type"] ?? podSeccomp;
    if (seccomp !== "RuntimeDefault") {
      problems.push(`${where}: seccompProfile is not RuntimeDefault`);
    }
    for (const port of list(container["ports"]).map(record)) {
      if (port["hostPort"] !== undefined) problems.push(`${where}: hostPort ${port["hostPort"]}`);
    }
  }
  return problems;
}
