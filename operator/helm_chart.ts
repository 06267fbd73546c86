/**
 * The Helm v3 chart `fleet-operator`, generated from code so that its version, CRDs and RBAC
 * rules never drift from the program: `fleet operator chart` writes these files out, and
 * `helm install fleet-operator <dir>` installs the operator with `--source kube`.
 *
 * The chart installs the CRDs from `crds/` (Helm installs those once and never upgrades or
 * deletes them), a ServiceAccount, a ClusterRole with exactly the verbs the operator uses,
 * the leader-election Lease with a Role that grants get and update on that one Lease, and the
 * operator Deployment with a restricted security context that runs unchanged on OpenShift (no
 * pinned UID/GID). It refuses to render an operator that would reach NATS without
 * authentication.
 *
 * @module
 */

import YAML from "yaml";
import { API_GROUP } from "../core/deployment.ts";
import { OPERATOR_LEASE_NAME } from "./kube_lease.ts";

/** Name of the chart, and the default name of everything it installs. */
export const HELM_CHART_NAME = "fleet-operator";

/** Default image repository in `values.yaml` (images are built locally; push and override). */
export const OPERATOR_IMAGE_REPOSITORY = "localhost/fleet-operator";

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
 * The files of the `fleet-operator` Helm chart. Pure: the same options always give the
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
  The Fleet operator: it targets Deployment CRs at matching devices through NATS and
  aggregates their status (fleet operator run --source kube).
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

function valuesYaml(version: string): string {
  return `# Values of the ${HELM_CHART_NAME} chart.

image:
  # Built locally (see deploy/README.md): push it to a registry the cluster can pull from
  # and set the repository here.
  repository: ${OPERATOR_IMAGE_REPOSITORY}
  # Defaults to the chart's appVersion when empty.
  tag: ${JSON.stringify(version)}
  pullPolicy: IfNotPresent

# Secrets for pulling the image from a private registry: [{ name: my-registry }]
imagePullSecrets: []

nats:
  # NATS server URL(s), comma-separated (FLEET_NATS_URL).
  url: nats://nats:4222
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
  # TLS to NATS. With nats.oidc it is required (a tls:// url, a caSecret or a pin): the
  # operator's tokens must not cross the network in clear.
  tls:
    # Name of a Secret in the release namespace holding the CA that signed the NATS server's
    # certificate under the key \`ca.crt\` (FLEET_NATS_CA); the connection is then TLS.
    caSecret: ""
    # The server's public-key pin, sha256//<base64> (FLEET_NATS_PIN): the SHA-256 of its
    # SubjectPublicKeyInfo.
    pin: ""

# debug, info, warn or error
logLevel: info

# Replicas beyond the first wait as hot standbys; only the holder of the Lease writes.
replicas: 2
# Leader election through the Lease "${OPERATOR_LEASE_NAME}" in the release namespace, which the
# chart creates; needed with replicas > 1.
leaderElection: true

# Port of /healthz (liveness), /readyz (readiness: connected to NATS and, on the leader, the
# fleet read; a standby is ready) and /metrics (Prometheus) (FLEET_OPERATOR_HEALTH_PORT).
healthPort: 8080

resources:
  requests:
    cpu: 50m
    memory: 128Mi
  limits:
    cpu: 500m
    memory: 256Mi

# V8 flags, comma-separated (DENO_V8_FLAGS). Deno sizes its heap from the node's memory unless
# it can read the container's cgroup limit (cgroup v2 only), so cap the old generation to about
# half of resources.limits.memory (V8 adds up to 96 MiB of young generation on top).
v8Flags: --max-old-space-size=128

nodeSelector: {}
tolerations: []

nameOverride: ""
fullnameOverride: ""
`;
}

const HELPERS = `{{/* Chart name, at most 63 characters (a DNS label). */}}
{{- define "fleet-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: the release name, plus the chart name unless it is in it. */}}
{{- define "fleet-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "fleet-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "fleet-operator.labels" -}}
helm.sh/chart: {{ include "fleet-operator.chart" . }}
{{ include "fleet-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: fleet
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pods (immutable once installed). */}}
{{- define "fleet-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleet-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
`;

const SERVICE_ACCOUNT = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "fleet-operator.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "fleet-operator.labels" . | nindent 4 }}
automountServiceAccountToken: true
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
  return `# What the operator calls on the API server, and nothing more.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ include "fleet-operator.fullname" . }}
  labels:
    {{- include "fleet-operator.labels" . | nindent 4 }}
rules:
${rulesYaml(OPERATOR_CLUSTER_RULES)}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ include "fleet-operator.fullname" . }}
  labels:
    {{- include "fleet-operator.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ include "fleet-operator.fullname" . }}
subjects:
  - kind: ServiceAccount
    name: {{ include "fleet-operator.fullname" . }}
    namespace: {{ .Release.Namespace }}
{{- if .Values.leaderElection }}
---
# Read and renew the leader-election Lease (templates/lease.yaml), and no other.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "fleet-operator.fullname" . }}-leader-election
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "fleet-operator.labels" . | nindent 4 }}
rules:
${rulesYaml(OPERATOR_LEASE_RULES)}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ include "fleet-operator.fullname" . }}-leader-election
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "fleet-operator.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ include "fleet-operator.fullname" . }}-leader-election
subjects:
  - kind: ServiceAccount
    name: {{ include "fleet-operator.fullname" . }}
    namespace: {{ .Release.Namespace }}
{{- end }}
`;
}

// Created here, with no spec (the operator writes it, and an upgrade leaves it alone), so the
// operator needs no right to create Leases.
const LEASE = `{{- if .Values.leaderElection }}
# The leader-election Lease; the operator may read and renew this one Lease only.
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: ${OPERATOR_LEASE_NAME}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "fleet-operator.labels" . | nindent 4 }}
{{- end }}
`;

// The checks at the top refuse a control plane without NATS authentication, with a message
// naming the values to set; credentials only ever come from Secrets.
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
// The security context satisfies the "restricted" Pod Security Standard and OpenShift's
// restricted-v2 SCC: no UID, GID or fsGroup is pinned, so OpenShift can assign one from the
// namespace's range; elsewhere the image's USER 65532 applies. The root filesystem is
// read-only; /tmp and DENO_DIR (Deno's code cache) are emptyDirs.
const DEPLOYMENT = `{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection) }}
{{- fail "replicas > 1 needs leaderElection: true (two operators would both write desired state)" }}
{{- end }}
{{- if or .Values.nats.user .Values.nats.password }}
{{- fail ${NO_PLAIN_PASSWORD} }}
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
{{- if and .Values.nats.oidc.issuer (not (or .Values.nats.tls.caSecret .Values.nats.tls.pin (hasPrefix "tls://" .Values.nats.url) (hasPrefix "wss://" .Values.nats.url))) }}
{{- fail ${OIDC_NEEDS_TLS} }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "fleet-operator.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "fleet-operator.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      {{- include "fleet-operator.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "fleet-operator.labels" . | nindent 8 }}
    spec:
      serviceAccountName: {{ include "fleet-operator.fullname" . }}
      automountServiceAccountToken: true
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      # Leaves the Lease on SIGTERM; a standby takes over within the lease duration.
      terminationGracePeriodSeconds: 30
      containers:
        - name: operator
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            - operator
            - run
            - --source
            - kube
            {{- if .Values.leaderElection }}
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
              value: {{ .Values.nats.url | quote }}
            {{- if .Values.nats.tls.caSecret }}
            - name: FLEET_NATS_CA
              value: /etc/fleet/nats-ca/ca.crt
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
            - name: FLEET_OPERATOR_HEALTH_PORT
              value: {{ .Values.healthPort | quote }}
            - name: DENO_DIR
              value: /tmp/deno
            {{- with .Values.v8Flags }}
            - name: DENO_V8_FLAGS
              value: {{ . | quote }}
            {{- end }}
          ports:
            - name: health
              containerPort: {{ .Values.healthPort }}
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
          securityContext:
            runAsNonRoot: true
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop:
                - ALL
            seccompProfile:
              type: RuntimeDefault
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: deno-dir
              mountPath: /tmp/deno
            {{- if .Values.nats.tls.caSecret }}
            - name: nats-ca
              mountPath: /etc/fleet/nats-ca
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        - name: deno-dir
          emptyDir:
            sizeLimit: 256Mi
        {{- if .Values.nats.tls.caSecret }}
        - name: nats-ca
          secret:
            secretName: {{ .Values.nats.tls.caSecret | quote }}
            items:
              - key: ca.crt
                path: ca.crt
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
`;

const NOTES =
  `The Fleet operator is installed as {{ include "fleet-operator.fullname" . }} in namespace {{ .Release.Namespace }}
({{ .Values.replicas }} replica(s){{ if .Values.leaderElection }}, leader election through a Lease{{ end }}).

It watches Deployment CRs (fleet.nationtech.io/v1alpha1) in every namespace and writes the
desired state of each matching device to NATS at {{ .Values.nats.url }},
{{- if .Values.nats.oidc.issuer }}
as the OIDC identity whose key is in the Secret {{ .Values.nats.oidc.keySecret }}.
{{- else }}
as the user in the Secret {{ .Values.nats.credentialsSecret }}: development only; production
uses an OIDC identity (nats.oidc).
{{- end }}

Check it:
  kubectl -n {{ .Release.Namespace }} get pods -l app.kubernetes.io/instance={{ .Release.Name }}
  kubectl -n {{ .Release.Namespace }} logs deploy/{{ include "fleet-operator.fullname" . }}
  kubectl get deployments.fleet.nationtech.io -A
  kubectl get devices.fleet.nationtech.io

The CRDs stay when the release is uninstalled (helm.sh/resource-policy: keep), and so do
the Deployment and Device objects; delete them with kubectl when you mean to.
`;
