/**
 * The Helm v3 chart `fleet`, the whole control plane, generated from code so that its
 * version, CRDs, RBAC rules and NATS configuration never drift from the program:
 * `fleet operator chart` writes these files out, and `helm install fleet <dir>` installs,
 * each switchable in values, NATS with the auth callout (helm_control_plane.ts), the callout,
 * the operator (`--source kube`) and a Route or Ingress for devices.
 *
 * The chart installs the CRDs from `crds/` (Helm installs those once and never upgrades or
 * deletes them), a ServiceAccount, a ClusterRole with exactly the verbs the operator uses,
 * the leader-election Lease with a Role that grants get and update on that one Lease, and the
 * operator Deployment. Every pod has a restricted security context that runs unchanged under
 * OpenShift's restricted-v2 SCC (no pinned UID/GID). It refuses to render a control plane
 * that would run without authentication or send tokens over plaintext.
 *
 * @module
 */

import YAML from "yaml";
import { API_GROUP } from "../core/deployment.ts";
import { FleetRoles } from "../core/permissions.ts";
import { OPERATOR_LEASE_NAME } from "./kube_lease.ts";
import {
  CALLOUT_CONFIG,
  CALLOUT_DEPLOYMENT,
  NATS_CA_DIR,
  NATS_CONFIG,
  NATS_IMAGE,
  NATS_PORTS,
  NATS_SERVICES,
  NATS_STATEFULSET,
  ROUTE,
} from "./helm_control_plane.ts";

/** Name of the chart, and the prefix of everything it installs. */
export const HELM_CHART_NAME = "fleet";

/** Where the operator's and the callout's pods find the trustedCA ConfigMap. */
const TRUSTED_CA_DIR = "/etc/fleet/trusted-ca";

/**
 * Default repository of the fleet image in `values.yaml`, as `fleet operator image` names it
 * (built locally: push it and override).
 */
export const OPERATOR_IMAGE_REPOSITORY = "localhost/fleet";

/** One RBAC policy rule, as a ClusterRole or Role lists it. */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  /** Only these objects; absent for every object of the resources. */
  resourceNames?: string[];
  verbs: string[];
}

/**
 * The cluster-wide rules of the operator's ClusterRole: what the kube deployment source
 * and the Device mirror call, nothing more. Deployment CRs are watched in every namespace;
 * Devices are cluster-scoped. Namespaces are read for their device binding (the annotation
 * fleet.nationtech.io/device-selector), never written: binding is an admin's act.
 */
export const OPERATOR_CLUSTER_RULES: readonly PolicyRule[] = [
  { apiGroups: [API_GROUP], resources: ["deployments"], verbs: ["get", "list", "watch", "patch"] },
  { apiGroups: [API_GROUP], resources: ["deployments/status"], verbs: ["get", "patch"] },
  { apiGroups: [API_GROUP], resources: ["deployments/finalizers"], verbs: ["update"] },
  {
    apiGroups: [API_GROUP],
    resources: ["devices"],
    verbs: ["get", "list", "watch", "create", "patch", "delete"],
  },
  { apiGroups: [API_GROUP], resources: ["devices/status"], verbs: ["get", "patch"] },
  { apiGroups: [""], resources: ["namespaces"], verbs: ["get", "list", "watch"] },
];

/**
 * The rules of the Role in the release namespace: read and renew the leader-election Lease,
 * that one by name. No `create`: RBAC cannot limit it to a name, so the chart creates the Lease.
 */
export const OPERATOR_LEASE_RULES: readonly PolicyRule[] = [
  {
    apiGroups: ["coordination.k8s.io"],
    resources: ["leases"],
    resourceNames: [OPERATOR_LEASE_NAME],
    verbs: ["get", "update"],
  },
];

/** The annotation that keeps CRDs (and so every CR) when the release is uninstalled. */
export const HELM_KEEP_ANNOTATION = "helm.sh/resource-policy";

/** Options of {@linkcode helmChart}. */
export interface HelmChartOptions {
  /**
   * The program version: the chart's `version` and `appVersion`, and the default image
   * tag. Must be SemVer 2 (Helm refuses anything else), e.g. `0.1.0` or `0.2.0-rc.1`.
   */
  version: string;
  /** The CRDs as multi-document YAML (`fleet operator crds`); only CRDs are allowed. */
  crdsYaml: string;
}

// SemVer 2.0.0, as Helm checks `version` (without a leading "v").
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/**
 * The files of the `fleet` Helm chart. Pure: the same options always give the
 * same files.
 *
 * @param options the program version and the CRDs.
 * @returns relative path (`Chart.yaml`, `templates/deployment.yaml`, ...) → file content, in
 * a stable order.
 * @throws {TypeError} when `version` is not SemVer 2, or `crdsYaml` does not parse, holds
 * no CustomResourceDefinition or holds another kind of object.
 *
 * @example
 * ```ts
 * import { crdsYaml } from "../core/mod.ts";
 * for (const [path, content] of helmChart({ version: "0.1.0", crdsYaml: crdsYaml() })) {
 *   await Deno.mkdir(`chart/${path}`.replace(/\/[^/]+$/, ""), { recursive: true });
 *   await Deno.writeTextFile(`chart/${path}`, content);
 * }
 * ```
 */
export function helmChart(options: HelmChartOptions): Map<string, string> {
  const { version } = options;
  if (!SEMVER.test(version)) {
    throw new TypeError(
      `Invalid chart version "${version}": Helm needs SemVer 2 such as "0.1.0" or "0.2.0-rc.1"`,
    );
  }
  return new Map([
    ["Chart.yaml", chartYaml(version)],
    ["values.yaml", valuesYaml(version)],
    ["crds/fleet.nationtech.io.yaml", keepCrds(options.crdsYaml)],
    ["templates/_helpers.tpl", HELPERS],
    ["templates/checks.yaml", CHECKS],
    ["templates/nats-config.yaml", NATS_CONFIG],
    ["templates/nats-services.yaml", NATS_SERVICES],
    ["templates/nats-statefulset.yaml", NATS_STATEFULSET],
    ["templates/callout-config.yaml", CALLOUT_CONFIG],
    ["templates/callout-deployment.yaml", CALLOUT_DEPLOYMENT],
    ["templates/route.yaml", ROUTE],
    ["templates/serviceaccount.yaml", SERVICE_ACCOUNT],
    ["templates/clusterrole.yaml", rbacYaml()],
    ["templates/lease.yaml", LEASE],
    ["templates/deployment.yaml", DEPLOYMENT],
    ["templates/NOTES.txt", NOTES],
  ]);
}

/**
 * Adds `helm.sh/resource-policy: keep` to every CRD of a multi-document YAML text, keeping
 * comments and order.
 */
function keepCrds(crdsYaml: string): string {
  const documents = YAML.parseAllDocuments(crdsYaml);
  if (!Array.isArray(documents)) {
    throw new TypeError("Invalid CRD YAML: it holds no document");
  }
  const kept: string[] = [];
  documents.forEach((document, index) => {
    const error = document.errors[0];
    if (error !== undefined) {
      throw new TypeError(`Invalid CRD YAML (document ${index + 1}): ${error.message}`);
    }
    // An empty document, e.g. after a trailing "---" (its contents are null or a null scalar).
    if (document.contents === null || document.toJS() === null) return;
    const kind: unknown = document.get("kind");
    if (kind !== "CustomResourceDefinition") {
      throw new TypeError(
        `Invalid CRD YAML (document ${index + 1}): kind is ${JSON.stringify(kind ?? null)}, ` +
          `only CustomResourceDefinition belongs in a chart's crds/`,
      );
    }
    document.setIn(["metadata", "annotations", HELM_KEEP_ANNOTATION], "keep");
    kept.push(document.toString({ lineWidth: 0 }));
  });
  if (kept.length === 0) {
    throw new TypeError("Invalid CRD YAML: it holds no CustomResourceDefinition");
  }
  return kept.map((text) => text.replace(/^---\n/, "")).join("---\n");
}

function chartYaml(version: string): string {
  return `apiVersion: v2
name: ${HELM_CHART_NAME}
description: >-
  The Fleet control plane: NATS with JetStream and the auth callout, the callout, and the
  operator that targets Deployment CRs at matching devices through NATS and aggregates their
  status; devices connect over wss:// through a Route or Ingress.
type: application
version: ${version}
appVersion: ${JSON.stringify(version)}
keywords:
  - fleet
  - edge
  - podman
  - nats
`;
}

/** The OIDC role → Fleet role map the callout starts with: each Fleet role by its own name. */
const DEFAULT_ROLES = FleetRoles.map((role) => `${role}: ${role}`).join(", ");

// Every key has a comment above it (the chart's tests check it), so that values.yaml is the
// reference a platform engineer reads.
function valuesYaml(version: string): string {
  return `# Values of the ${HELM_CHART_NAME} chart: the Fleet control plane. Each part can be switched off
# (nats.enabled, callout.enabled, operator.enabled, route.kind: none). Secrets never go in
# values: the chart reads them from Secrets you create (README.md, "Install on OKD").

# The fleet image, which runs both the operator and the callout.
image:
  # Push the image to a registry the cluster can pull from and set the repository here.
  repository: ${OPERATOR_IMAGE_REPOSITORY}
  # Defaults to the chart's appVersion when empty.
  tag: ${JSON.stringify(version)}
  # IfNotPresent, Always or Never.
  pullPolicy: IfNotPresent

# Secrets for pulling images from a private registry: [{ name: my-registry }]
imagePullSecrets: []

# debug, info, warn or error: the log level of the operator and the callout.
logLevel: info

# CAs the operator and the callout trust besides the public ones (DENO_CERT), e.g. a company CA
# that signed the OIDC issuer's certificate.
trustedCA:
  # Name of a ConfigMap in the release namespace holding the CAs (PEM) under trustedCA.key;
  # empty: the public CAs only. On OpenShift an empty ConfigMap labelled
  # config.openshift.io/inject-trusted-cabundle: "true" receives the cluster's trusted CAs.
  configMap: ""
  # The ConfigMap's key with the PEM file (OpenShift injects ca-bundle.crt).
  key: ca-bundle.crt

# NATS: the server the chart installs, and how the operator and the callout reach it.
nats:
  # Install NATS as a StatefulSet. false: the operator and the callout use the NATS at nats.url,
  # which must already have the auth-callout block (fleet callout nats-config).
  enabled: true
  # NATS URL(s) the operator and the callout connect to, comma-separated (FLEET_NATS_URL).
  # Empty: the chart's NATS, tls://<release>-nats-headless.<namespace>.svc:4222.
  url: ""
  # How the operator authenticates to NATS: set exactly one of nats.oidc (production) and
  # nats.credentialsSecret (development). The chart refuses to render with neither, as the
  # control plane must not run without authentication, and takes no password in values:
  # credentials come from Secrets.
  oidc:
    # The OIDC issuer URL, e.g. https://auth.example.com (FLEET_OIDC_ISSUER). The auth callout
    # checks the operator's tokens and gives it the operator role.
    issuer: ""
    # Name of a Secret in the release namespace holding the operator's private key under the
    # key \`key\`: a JWK, a Zitadel key JSON or a PEM private key (FLEET_OIDC_KEY). Required
    # with issuer.
    keySecret: ""
    # The operator's OIDC client id (FLEET_OIDC_CLIENT_ID); may stay empty when the key is a
    # Zitadel key JSON, which names its user.
    clientId: ""
    # The resource the tokens are for: the auth callout's audience (FLEET_OIDC_AUDIENCE).
    audience: ""
    # How tokens are minted: jwt-bearer or client-credentials (FLEET_OIDC_GRANT).
    grant: jwt-bearer
    # Zitadel only: the Fleet project's id (fleet zitadel setup prints it). Zitadel leaves the
    # operator role out of the token unless the request asks for the project's roles and the
    # project as audience, which setting this does (FLEET_OIDC_PROVIDER=zitadel,
    # FLEET_OIDC_PROJECT_ID).
    zitadelProjectId: ""
  # Development only: name of a Secret in the release namespace with the keys \`user\` and
  # \`password\` (FLEET_NATS_USER, FLEET_NATS_PASSWORD).
  credentialsSecret: ""
  # TLS from the operator and the callout to NATS. With nats.oidc it is required: the
  # operator's tokens must not cross the network in clear. The chart's NATS is always TLS and
  # its CA is found without these (nats.server.tls).
  tls:
    # Name of a Secret in the release namespace holding the CA that signed the NATS server's
    # certificate under the key \`ca.crt\` (FLEET_NATS_CA); the connection is then TLS.
    caSecret: ""
    # The server's public-key pin, sha256//<base64> (FLEET_NATS_PIN): the SHA-256 of its
    # SubjectPublicKeyInfo.
    pin: ""
  # The NATS server the chart installs (with nats.enabled).
  server:
    # The nats-server image (2.10 or newer: auth callout). The project tests against 2.10.27.
    image:
      # Image repository.
      repository: ${NATS_IMAGE.repository}
      # Image tag.
      tag: ${JSON.stringify(NATS_IMAGE.tag)}
      # IfNotPresent, Always or Never.
      pullPolicy: IfNotPresent
    # 1, or 3 (or 5) for a cluster: JetStream replicates the buckets across the pods.
    replicas: 1
    # The client port (4222) is TLS only; set exactly one of these.
    tls:
      # Name of a Secret holding the server's certificate (tls.crt), key (tls.key) and the CA
      # that signed it (ca.crt, given to the operator and the callout). The certificate must
      # name <release>-nats-headless.<namespace>.svc.
      secret: ""
      # OpenShift: let the service CA create the Secret (<release>-nats-tls) through the
      # annotation service.beta.openshift.io/serving-cert-secret-name on the headless
      # Service, and inject its CA into the ConfigMap <release>-nats-ca.
      openshiftServingCert: false
    # JetStream's storage: one PersistentVolumeClaim per pod.
    jetstream:
      # Size of each pod's volume.
      size: 10Gi
      # Storage class of the volumes; empty: the cluster's default.
      storageClassName: ""
    # Extra pod securityContext. Leave empty on OpenShift (restricted-v2 assigns the UID and
    # fsGroup). Elsewhere the nats image runs as root, which runAsNonRoot refuses: set e.g.
    # { runAsUser: 1000, fsGroup: 1000 }.
    podSecurityContext: {}
    # Requests and limits of each NATS pod.
    resources: { requests: { cpu: 100m, memory: 256Mi }, limits: { memory: 1Gi } }

# The NATS auth callout: turns OIDC access tokens into NATS users (fleet callout run).
callout:
  # Install the callout. Its settings below are needed with nats.enabled too: NATS names the
  # callout's public keys and reads its password from the same Secret.
  enabled: true
  # Replicas share the authorization requests as a queue group: each is answered once.
  replicas: 2
  # Name of a Secret in the release namespace with the keys issuer.nk (account signing seed),
  # xkey.nk (curve seed; fleet callout keys writes both) and password (the callout's NATS
  # password: letters and digits).
  keysSecret: ""
  # Public key of issuer.nk (A..., printed by fleet callout keys): NATS trusts the users it signs.
  issuer: ""
  # Public key of xkey.nk (X..., printed by fleet callout keys): authorization requests are
  # encrypted with it.
  xkey: ""
  # How the callout checks tokens (callout.toml [oidc]; the chart renders callout.toml into the
  # Secret <release>-callout-config).
  oidc:
    # The OIDC issuer URL (https).
    issuer: ""
    # The audience tokens must carry; with Zitadel, the Fleet project's id.
    audience: ""
    # Client ids whose tokens are access tokens although their header says typ JWT (Zitadel).
    accessTokenClients: []
    # The claim that names the device.
    deviceIdClaim: sub
    # The claim holding the roles; with Zitadel urn:zitadel:iam:org:project:roles.
    roleClaim: roles
    # Prefix removed from the device claim (machine user device-pi-1 is device pi-1).
    stripPrefix: ""
    # OIDC role -> Fleet role (${FleetRoles.join(", ")}).
    roles: { ${DEFAULT_ROLES} }
  # Lifetime cap of the NATS users the callout issues.
  jwtMaxTtlSeconds: 3600
  # Port of /healthz, /readyz and /metrics (FLEET_CALLOUT_HEALTH_PORT).
  healthPort: 8080
  # Requests and limits of each callout pod.
  resources: { requests: { cpu: 50m, memory: 128Mi }, limits: { cpu: 500m, memory: 256Mi } }
  # V8 flags (DENO_V8_FLAGS): cap the heap near half of the memory limit.
  v8Flags: --max-old-space-size=128

# The operator: Deployment CRs in, desired state to NATS (fleet operator run --source kube).
operator:
  # Install the operator.
  enabled: true
  # Replicas beyond the first wait as hot standbys; only the holder of the Lease writes.
  replicas: 2
  # Leader election through the Lease "${OPERATOR_LEASE_NAME}" in the release namespace, which
  # the chart creates; needed with replicas > 1.
  leaderElection: true
  # Copies of each JetStream bucket the operator creates (FLEET_REPLICAS). 0: one per server of
  # the chart's NATS, at most 3 (1 with nats.enabled false: set it for a NATS cluster of yours).
  bucketReplicas: 0
  # Workload revisions kept per deployment, for fleet rollout history and rollbacks
  # (FLEET_REVISION_HISTORY).
  revisionHistory: 10
  # Port of /healthz (liveness), /readyz (readiness: connected to NATS and, on the leader, the
  # fleet read; a standby is ready) and /metrics (Prometheus) (FLEET_OPERATOR_HEALTH_PORT).
  healthPort: 8080
  # Requests and limits of each operator pod.
  resources: { requests: { cpu: 50m, memory: 128Mi }, limits: { cpu: 500m, memory: 256Mi } }
  # V8 flags, comma-separated (DENO_V8_FLAGS). Deno sizes its heap from the node's memory
  # unless it can read the container's cgroup limit (cgroup v2 only), so cap the old generation
  # to about half of the memory limit (V8 adds up to 96 MiB of young generation on top).
  v8Flags: --max-old-space-size=128

# How devices reach NATS: wss://<host> through the router, which terminates TLS (edge) and
# forwards to NATS's WebSocket listener.
route:
  # route (OpenShift Route), ingress (networking.k8s.io/v1 Ingress) or none.
  kind: route
  # The host name devices connect to; empty for a Route: the router picks one.
  host: ""
  # Route only: Redirect or None for plain http:// requests.
  insecureEdgeTerminationPolicy: Redirect
  # Ingress only: the IngressClass; empty: the cluster's default.
  ingressClassName: ""
  # Ingress only: a Secret with the host's certificate (tls.crt, tls.key); empty: the
  # controller's default certificate.
  tlsSecret: ""
  # Annotations of the Route or Ingress, e.g. haproxy.router.openshift.io/timeout-tunnel.
  annotations: {}

# Node selector of every pod.
nodeSelector: {}
# Tolerations of every pod.
tolerations: []

# Replaces the chart name in object names.
nameOverride: ""
# Replaces <release>-<chart> (or <release>) as the prefix of object names.
fullnameOverride: ""
`;
}

const HELPERS = `{{/* Chart name, at most 63 characters (a DNS label). */}}
{{- define "fleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of the release's objects: the release name, plus the chart name unless it is in it. */}}
{{- define "fleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "fleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object (with app.kubernetes.io/component, fleet.componentLabels). */}}
{{- define "fleet.labels" -}}
helm.sh/chart: {{ include "fleet.chart" . }}
{{ include "fleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: fleet
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The release's labels that select pods (immutable once installed). */}}
{{- define "fleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of a component's objects: (dict "root" . "component" "nats"). */}}
{{- define "fleet.componentLabels" -}}
{{ include "fleet.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels that select a component's pods: (dict "root" . "component" "nats"). */}}
{{- define "fleet.componentSelector" -}}
{{ include "fleet.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Metadata of a namespaced object: (dict "root" . "name" "nats" "component" "nats"). */}}
{{- define "fleet.metadata" -}}
name: {{ include "fleet.fullname" .root }}-{{ .name }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "fleet.componentLabels" . | nindent 2 }}
{{- end }}

{{/* Pull secrets, node selector and tolerations of every pod. */}}
{{- define "fleet.podPlacement" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The fleet image's health port and probes: /healthz (alive) and /readyz. */}}
{{- define "fleet.healthProbes" -}}
ports:
  - name: health
    containerPort: {{ . }}
livenessProbe:
  httpGet:
    path: /healthz
    port: health
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: health
  periodSeconds: 5
{{- end }}

{{/* Deno's environment in the fleet image: its code cache on the /tmp emptyDir, V8 flags. */}}
{{- define "fleet.denoEnv" -}}
- name: DENO_DIR
  value: /tmp/deno
{{- with . }}
- name: DENO_V8_FLAGS
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* The extra CA Deno trusts (trustedCA), as env entries. */}}
{{- define "fleet.trustedCaEnv" -}}
{{- with .Values.trustedCA.configMap }}
- name: DENO_CERT
  value: ${TRUSTED_CA_DIR}/{{ $.Values.trustedCA.key }}
{{- end }}
{{- end }}

{{/* The fleet image's writable folders, the CA of NATS and the trusted CA, as volumeMounts. */}}
{{- define "fleet.denoMounts" -}}
- name: tmp
  mountPath: /tmp
- name: deno-dir
  mountPath: /tmp/deno
{{- if .Values.trustedCA.configMap }}
- name: trusted-ca
  mountPath: ${TRUSTED_CA_DIR}
  readOnly: true
{{- end }}
{{- if include "fleet.natsCaVolume" . }}
- name: nats-ca
  mountPath: ${NATS_CA_DIR}
  readOnly: true
{{- end }}
{{- end }}

{{/* The volumes of fleet.denoMounts. */}}
{{- define "fleet.denoVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
- name: deno-dir
  emptyDir:
    sizeLimit: 256Mi
{{- if include "fleet.natsCaVolume" . }}
- name: nats-ca
  {{- include "fleet.natsCaVolume" . | trim | nindent 2 }}
{{- end }}
{{- with .Values.trustedCA.configMap }}
- name: trusted-ca
  configMap:
    name: {{ . | quote }}
    items:
      - key: {{ $.Values.trustedCA.key | quote }}
        path: {{ $.Values.trustedCA.key | quote }}
{{- end }}
{{- end }}

{{/* The fleet image (operator and callout). */}}
{{- define "fleet.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The NATS URL(s) of the operator and the callout: nats.url, else the chart's NATS. */}}
{{- define "fleet.natsUrl" -}}
{{- if .Values.nats.url }}
{{- .Values.nats.url }}
{{- else if .Values.nats.enabled }}
{{- printf "tls://%s-nats-headless.%s.svc:${NATS_PORTS.client}" (include "fleet.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* Copies of each bucket: operator.bucketReplicas, else one per server of the chart's NATS (at most 3). */}}
{{- define "fleet.bucketReplicas" -}}
{{- if .Values.operator.bucketReplicas }}
{{- int .Values.operator.bucketReplicas }}
{{- else if .Values.nats.enabled }}
{{- min 3 (int .Values.nats.server.replicas) }}
{{- else }}1
{{- end }}
{{- end }}

{{/* The Secret with the chart's NATS serving certificate. */}}
{{- define "fleet.natsTlsSecret" -}}
{{- if .Values.nats.server.tls.openshiftServingCert }}
{{- include "fleet.fullname" . }}-nats-tls
{{- else }}
{{- .Values.nats.server.tls.secret }}
{{- end }}
{{- end }}

{{/* The volume with the CA of NATS's certificate (as ca.crt), empty when there is none to mount. */}}
{{- define "fleet.natsCaVolume" -}}
{{- if .Values.nats.tls.caSecret }}
secret:
  secretName: {{ .Values.nats.tls.caSecret | quote }}
  items:
    - key: ca.crt
      path: ca.crt
{{- else if and .Values.nats.enabled .Values.nats.server.tls.openshiftServingCert }}
configMap:
  name: {{ include "fleet.fullname" . }}-nats-ca
  items:
    - key: service-ca.crt
      path: ca.crt
{{- else if and .Values.nats.enabled .Values.nats.server.tls.secret }}
secret:
  secretName: {{ .Values.nats.server.tls.secret | quote }}
  items:
    - key: ca.crt
      path: ca.crt
{{- end }}
{{- end }}

{{/*
Pod and container security contexts: the "restricted" Pod Security Standard and OpenShift's
restricted-v2 SCC. No user, group or volume group ID is pinned, so OpenShift assigns them
from the namespace's range; the root filesystem is read-only (each pod has an emptyDir at /tmp).
*/}}
{{- define "fleet.podSecurityContext" -}}
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "fleet.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}
`;

const SERVICE_ACCOUNT = `{{- if .Values.operator.enabled }}
apiVersion: v1
kind: ServiceAccount
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "operator" "component" "operator") | nindent 2 }}
automountServiceAccountToken: true
{{- end }}
`;
/** `text` as a Go template string literal (JSON's escapes are Go's, for this ASCII text). */
function goString(text: string): string {
  return JSON.stringify(text);
}

/** Rules as a YAML sequence under a top-level `rules:`, one flow list per field. */
function rulesYaml(rules: readonly PolicyRule[]): string {
  const list = (items: string[]) => `[${items.map((item) => JSON.stringify(item)).join(", ")}]`;
  return rules.map((rule) =>
    `  - apiGroups: ${list(rule.apiGroups)}\n` +
    `    resources: ${list(rule.resources)}\n` +
    (rule.resourceNames ? `    resourceNames: ${list(rule.resourceNames)}\n` : "") +
    `    verbs: ${list(rule.verbs)}`
  ).join("\n");
}

function rbacYaml(): string {
  return `{{- if .Values.operator.enabled }}
# What the operator calls on the API server, and nothing more.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ include "fleet.fullname" . }}-operator
  labels:
    {{- include "fleet.componentLabels" (dict "root" . "component" "operator") | nindent 4 }}
rules:
${rulesYaml(OPERATOR_CLUSTER_RULES)}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ include "fleet.fullname" . }}-operator
  labels:
    {{- include "fleet.componentLabels" (dict "root" . "component" "operator") | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ include "fleet.fullname" . }}-operator
subjects:
  - kind: ServiceAccount
    name: {{ include "fleet.fullname" . }}-operator
    namespace: {{ .Release.Namespace }}
{{- if .Values.operator.leaderElection }}
---
# Read and renew the leader-election Lease (templates/lease.yaml), and no other.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "operator-leader-election" "component" "operator") | nindent 2 }}
rules:
${rulesYaml(OPERATOR_LEASE_RULES)}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "operator-leader-election" "component" "operator") | nindent 2 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ include "fleet.fullname" . }}-operator-leader-election
subjects:
  - kind: ServiceAccount
    name: {{ include "fleet.fullname" . }}-operator
    namespace: {{ .Release.Namespace }}
{{- end }}
{{- end }}
`;
}

// Created here, with no spec (the operator writes it, and an upgrade leaves it alone), so the
// operator needs no right to create Leases.
const LEASE = `{{- if and .Values.operator.enabled .Values.operator.leaderElection }}
# The leader-election Lease; the operator may read and renew this one Lease only.
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: ${OPERATOR_LEASE_NAME}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "fleet.componentLabels" (dict "root" . "component" "operator") | nindent 4 }}
{{- end }}
`;

// The checks refuse a control plane without NATS authentication or with tokens in clear, with
// a message naming the values to set; credentials only ever come from Secrets.
const NO_PLAIN_PASSWORD = goString(
  "nats.user and nats.password are not read, as a password does not belong in values: put them " +
    "in a Secret (kubectl create secret generic fleet-nats --from-literal=user=... " +
    "--from-literal=password=...) and set nats.credentialsSecret to its name",
);
const ONE_IDENTITY = goString(
  "Set one NATS identity for the operator, not both: nats.oidc.issuer (OIDC, production) or " +
    "nats.credentialsSecret (user and password, development)",
);
const OIDC_NEEDS_KEY = goString(
  "nats.oidc.issuer is set but nats.oidc.keySecret is empty: set nats.oidc.keySecret to the " +
    `name of a Secret in the release namespace that holds the operator's OIDC private key ` +
    `under the key "key"`,
);
const OIDC_NEEDS_ISSUER = goString(
  "nats.oidc.keySecret is set but nats.oidc.issuer is empty: set nats.oidc.issuer to the OIDC " +
    "issuer URL (e.g. https://auth.example.com)",
);
const OIDC_NEEDS_TLS = goString(
  "nats.oidc is set but the connection to NATS would not be TLS, and the operator's tokens must " +
    "not cross the network in clear: set nats.tls.caSecret to a Secret holding the CA of the " +
    'NATS server\'s certificate under the key "ca.crt" (or nats.tls.pin, or a tls:// nats.url)',
);
const NO_IDENTITY = goString(
  "The operator must not reach NATS without authentication: set nats.oidc.issuer and " +
    `nats.oidc.keySecret (a Secret with its OIDC private key under the key "key"), or for ` +
    `development nats.credentialsSecret (a Secret with the keys "user" and "password")`,
);
const NEEDS_NATS_URL = goString(
  "nats.enabled is false, so the operator and the callout need the NATS they connect to: set " +
    "nats.url (e.g. tls://nats.example.com:4222)",
);
const NATS_REPLICAS = goString(
  "nats.server.replicas must be 1, 3 or 5: a JetStream cluster needs an odd number of servers " +
    "to elect its leaders",
);
const NATS_NEEDS_TLS = goString(
  "nats.enabled needs a serving certificate, as tokens must not cross the network in clear: set " +
    "nats.server.tls.openshiftServingCert=true on OpenShift, or nats.server.tls.secret to a " +
    'Secret with "tls.crt", "tls.key" and "ca.crt"',
);
const NATS_ONE_TLS = goString(
  "Set one of nats.server.tls.secret and nats.server.tls.openshiftServingCert, not both",
);
const CALLOUT_NEEDS_KEYS = goString(
  "The auth callout needs its keys: run fleet callout keys, create a Secret with issuer.nk, " +
    "xkey.nk and password (kubectl create secret generic fleet-callout-keys --from-file=issuer.nk " +
    "--from-file=xkey.nk --from-literal=password=...), and set callout.keysSecret to its name and " +
    "callout.issuer and callout.xkey to the public keys fleet callout keys printed",
);
const CALLOUT_KEY_SHAPES = goString(
  "callout.issuer must be an account public key (A..., 56 characters) and callout.xkey a curve " +
    "public key (X..., 56 characters), as fleet callout keys prints them",
);
const CALLOUT_NEEDS_OIDC = goString(
  "The auth callout needs callout.oidc.issuer (https URL of the OIDC provider) and " +
    "callout.oidc.audience (with Zitadel, the Fleet project's id)",
);
const ROUTE_KIND = goString('route.kind must be "route", "ingress" or "none"');
const INGRESS_NEEDS_HOST = goString(
  "route.kind ingress needs route.host: the host name devices connect to (wss://<host>)",
);
const EDGE_POLICY = goString('route.insecureEdgeTerminationPolicy must be "Redirect" or "None"');

const CHECKS =
  `{{- /* Renders nothing: refuses values that would make an unsafe or broken control plane. */ -}}
{{- if or .Values.nats.user .Values.nats.password }}
{{- fail ${NO_PLAIN_PASSWORD} }}
{{- end }}
{{- if and (or .Values.operator.enabled .Values.callout.enabled) (not (include "fleet.natsUrl" .)) }}
{{- fail ${NEEDS_NATS_URL} }}
{{- end }}
{{- if .Values.operator.enabled }}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.leaderElection) }}
{{- fail "operator.replicas > 1 needs operator.leaderElection: true (two operators would both write desired state)" }}
{{- end }}
{{- if and .Values.nats.oidc.issuer .Values.nats.credentialsSecret }}
{{- fail ${ONE_IDENTITY} }}
{{- end }}
{{- if and .Values.nats.oidc.issuer (not .Values.nats.oidc.keySecret) }}
{{- fail ${OIDC_NEEDS_KEY} }}
{{- end }}
{{- if and .Values.nats.oidc.keySecret (not .Values.nats.oidc.issuer) }}
{{- fail ${OIDC_NEEDS_ISSUER} }}
{{- end }}
{{- if not (or .Values.nats.oidc.issuer .Values.nats.credentialsSecret) }}
{{- fail ${NO_IDENTITY} }}
{{- end }}
{{- $url := include "fleet.natsUrl" . }}
{{- if and .Values.nats.oidc.issuer (not (or (include "fleet.natsCaVolume" .) .Values.nats.tls.pin (hasPrefix "tls://" $url) (hasPrefix "wss://" $url))) }}
{{- fail ${OIDC_NEEDS_TLS} }}
{{- end }}
{{- end }}
{{- if .Values.nats.enabled }}
{{- if not (has (int .Values.nats.server.replicas) (list 1 3 5)) }}
{{- fail ${NATS_REPLICAS} }}
{{- end }}
{{- if and .Values.nats.server.tls.secret .Values.nats.server.tls.openshiftServingCert }}
{{- fail ${NATS_ONE_TLS} }}
{{- end }}
{{- if not (include "fleet.natsTlsSecret" .) }}
{{- fail ${NATS_NEEDS_TLS} }}
{{- end }}
{{- if not (has .Values.route.kind (list "route" "ingress" "none")) }}
{{- fail ${ROUTE_KIND} }}
{{- end }}
{{- if and (eq .Values.route.kind "ingress") (not .Values.route.host) }}
{{- fail ${INGRESS_NEEDS_HOST} }}
{{- end }}
{{- if and (eq .Values.route.kind "route") (not (has .Values.route.insecureEdgeTerminationPolicy (list "Redirect" "None"))) }}
{{- fail ${EDGE_POLICY} }}
{{- end }}
{{- end }}
{{- if or .Values.nats.enabled .Values.callout.enabled }}
{{- if not (and .Values.callout.keysSecret .Values.callout.issuer .Values.callout.xkey) }}
{{- fail ${CALLOUT_NEEDS_KEYS} }}
{{- end }}
{{- if not (and (regexMatch "^A[A-Z2-7]{55}$" .Values.callout.issuer) (regexMatch "^X[A-Z2-7]{55}$" .Values.callout.xkey)) }}
{{- fail ${CALLOUT_KEY_SHAPES} }}
{{- end }}
{{- end }}
{{- if and .Values.callout.enabled (not (and .Values.callout.oidc.issuer .Values.callout.oidc.audience)) }}
{{- fail ${CALLOUT_NEEDS_OIDC} }}
{{- end }}
`;

const DEPLOYMENT = `{{- if .Values.operator.enabled }}
apiVersion: apps/v1
kind: Deployment
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "operator" "component" "operator") | nindent 2 }}
spec:
  replicas: {{ .Values.operator.replicas }}
  selector:
    matchLabels:
      {{- include "fleet.componentSelector" (dict "root" . "component" "operator") | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "fleet.componentLabels" (dict "root" . "component" "operator") | nindent 8 }}
    spec:
      serviceAccountName: {{ include "fleet.fullname" . }}-operator
      automountServiceAccountToken: true
      securityContext:
        {{- include "fleet.podSecurityContext" . | nindent 8 }}
      # Leaves the Lease on SIGTERM; a standby takes over within the lease duration.
      terminationGracePeriodSeconds: 30
      containers:
        - name: operator
          image: {{ include "fleet.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            - operator
            - run
            - --source
            - kube
            {{- if .Values.operator.leaderElection }}
            - --leader-elect
            {{- end }}
            - --lease-namespace
            - $(POD_NAMESPACE)
            - --identity
            - $(POD_NAME)
            - --log-format
            - json
            - --log-level
            - {{ .Values.logLevel | quote }}
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: FLEET_NATS_URL
              value: {{ include "fleet.natsUrl" . | quote }}
            {{- if include "fleet.natsCaVolume" . }}
            - name: FLEET_NATS_CA
              value: ${NATS_CA_DIR}/ca.crt
            {{- end }}
            {{- with .Values.nats.tls.pin }}
            - name: FLEET_NATS_PIN
              value: {{ . | quote }}
            {{- end }}
            {{- if .Values.nats.oidc.issuer }}
            - name: FLEET_OIDC_ISSUER
              value: {{ .Values.nats.oidc.issuer | quote }}
            - name: FLEET_OIDC_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.nats.oidc.keySecret | quote }}
                  key: key
            {{- with .Values.nats.oidc.clientId }}
            - name: FLEET_OIDC_CLIENT_ID
              value: {{ . | quote }}
            {{- end }}
            {{- with .Values.nats.oidc.audience }}
            - name: FLEET_OIDC_AUDIENCE
              value: {{ . | quote }}
            {{- end }}
            - name: FLEET_OIDC_GRANT
              value: {{ .Values.nats.oidc.grant | quote }}
            {{- with .Values.nats.oidc.zitadelProjectId }}
            - name: FLEET_OIDC_PROVIDER
              value: zitadel
            - name: FLEET_OIDC_PROJECT_ID
              value: {{ . | quote }}
            {{- end }}
            {{- else }}
            - name: FLEET_NATS_USER
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.nats.credentialsSecret | quote }}
                  key: user
            - name: FLEET_NATS_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.nats.credentialsSecret | quote }}
                  key: password
            {{- end }}
            - name: FLEET_REPLICAS
              value: {{ include "fleet.bucketReplicas" . | quote }}
            - name: FLEET_REVISION_HISTORY
              value: {{ .Values.operator.revisionHistory | quote }}
            - name: FLEET_OPERATOR_HEALTH_PORT
              value: {{ .Values.operator.healthPort | quote }}
            {{- include "fleet.denoEnv" .Values.operator.v8Flags | nindent 12 }}
            {{- include "fleet.trustedCaEnv" . | nindent 12 }}
          {{- include "fleet.healthProbes" .Values.operator.healthPort | nindent 10 }}
          securityContext:
            {{- include "fleet.containerSecurityContext" . | nindent 12 }}
          resources:
            {{- toYaml .Values.operator.resources | nindent 12 }}
          volumeMounts:
            {{- include "fleet.denoMounts" . | nindent 12 }}
      volumes:
        {{- include "fleet.denoVolumes" . | nindent 8 }}
      {{- include "fleet.podPlacement" . | nindent 6 }}
{{- end }}
`;

const NOTES =
  `The Fleet control plane is installed as release {{ .Release.Name }} in namespace {{ .Release.Namespace }}:
{{- if .Values.nats.enabled }}
- NATS: {{ .Values.nats.server.replicas }} server(s), StatefulSet {{ include "fleet.fullname" . }}-nats, JetStream on
  persistent volumes, clients at {{ include "fleet.natsUrl" . }}
{{- end }}
{{- if .Values.callout.enabled }}
- the auth callout: {{ .Values.callout.replicas }} replica(s), Deployment {{ include "fleet.fullname" . }}-callout
{{- end }}
{{- if .Values.operator.enabled }}
- the operator: {{ .Values.operator.replicas }} replica(s){{ if .Values.operator.leaderElection }}, leader election through a Lease{{ end }},
  Deployment {{ include "fleet.fullname" . }}-operator, writing to NATS
  {{- if .Values.nats.oidc.issuer }} as the OIDC identity whose key is in the Secret {{ .Values.nats.oidc.keySecret }}
  {{- else }} as the user in the Secret {{ .Values.nats.credentialsSecret }} (development only)
  {{- end }}
{{- end }}
{{- if and .Values.nats.enabled (ne .Values.route.kind "none") }}

Devices connect to wss://<host> of the {{ .Values.route.kind }}:
  kubectl -n {{ .Release.Namespace }} get {{ .Values.route.kind }} {{ include "fleet.fullname" . }}-nats
  fleet device enroll ... --nats-url wss://<host>
{{- end }}

Check it:
  kubectl -n {{ .Release.Namespace }} get pods -l app.kubernetes.io/instance={{ .Release.Name }}
  kubectl get deployments.fleet.nationtech.io -A
  kubectl get devices.fleet.nationtech.io

The CRDs stay when the release is uninstalled (helm.sh/resource-policy: keep), and so do
the Deployment and Device objects and JetStream's volumes; delete them when you mean to.
`;
