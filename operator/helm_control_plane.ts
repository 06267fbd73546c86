/**
 * The templates of the `fleet` chart besides the operator's: NATS (a StatefulSet with
 * JetStream on persistent volumes, its configuration with the auth-callout block that
 * `fleet callout nats-config` prints, its Services), the auth callout (a Deployment and its
 * configuration) and the Route or Ingress that exposes NATS's WebSocket listener with edge TLS.
 *
 * Secrets never pass through values: the callout's keys and password come from a Secret the
 * user creates, and nats-server reads the password from its environment, so the NATS
 * configuration is a ConfigMap.
 *
 * @module
 */

import { calloutServerConfig } from "../callout/nats_config.ts";
import { ACCOUNT_JETSTREAM_DEFAULTS } from "../core/limits.ts";

/** The account devices and the operator are placed into (callout.toml `[account] name`). */
const CHART_ACCOUNT = "FLEET";
/** The callout's own NATS user, in both callout.toml and the NATS configuration. */
const CHART_CALLOUT_USER = "fleet-callout";
/** The environment variable nats-server reads the callout's password from. */
const CHART_CALLOUT_PASSWORD_ENV = "FLEET_CALLOUT_PASSWORD";
/** The default NATS image: the nats-server release the project builds and tests against. */
export const NATS_IMAGE = { repository: "docker.io/library/nats", tag: "2.10.27-alpine" };

/** Ports of the NATS pods. */
export const NATS_PORTS = { client: 4222, cluster: 6222, websocket: 8080, monitor: 8222 };

/** Where the NATS pod mounts its configuration and its serving certificate. */
const NATS_CONFIG_DIR = "/etc/nats/config";
const NATS_TLS_DIR = "/etc/nats/tls";
/** Where the callout pod mounts callout.toml and the user's Secret of keys. */
const CALLOUT_CONFIG_DIR = "/etc/fleet-callout/config";
const CALLOUT_KEYS_DIR = "/etc/fleet-callout/keys";
/** Where every Fleet pod mounts the CA of the NATS server's certificate. */
export const NATS_CA_DIR = "/etc/fleet/nats-ca";

/**
 * The auth-callout part of nats.conf, made by the same function as `fleet callout nats-config`
 * with Helm actions for what values hold: the issuer and xkey public keys. The password
 * stays in the pod's environment.
 */
export function chartCalloutBlock(): string {
  return calloutServerConfig({
    account: CHART_ACCOUNT,
    calloutUser: CHART_CALLOUT_USER,
    calloutPassword: { env: CHART_CALLOUT_PASSWORD_ENV },
    issuer: "{{ .Values.callout.issuer }}",
    xkey: "{{ .Values.callout.xkey }}",
    jetstream: ACCOUNT_JETSTREAM_DEFAULTS,
    tls: { certFile: `${NATS_TLS_DIR}/tls.crt`, keyFile: `${NATS_TLS_DIR}/tls.key` },
  });
}

/** `text` with every non-empty line indented by `spaces`. */
function indent(text: string, spaces: number): string {
  const pad = " ".repeat(spaces);
  return text.split("\n").map((line) => line === "" ? line : pad + line).join("\n");
}

const NATS_CONF = `# nats-server configuration of the Fleet chart (fleet operator chart).
server_name: $POD_NAME
listen: "0.0.0.0:${NATS_PORTS.client}"
# Monitoring: /healthz for the probes, /varz and the rest for people.
http: "0.0.0.0:${NATS_PORTS.monitor}"
jetstream {
  store_dir: "/data/jetstream"
}
{{- if gt (int .Values.nats.server.replicas) 1 }}
# Routes between the pods, in the pod network only: a NetworkPolicy admits the NATS pods alone
# to this port, and authorization requests crossing it are encrypted with the xkey.
cluster {
  name: {{ include "fleet.fullname" . | quote }}
  listen: "0.0.0.0:${NATS_PORTS.cluster}"
  # Clients are not told the pods' addresses, which devices cannot reach: they reconnect
  # through the route, the operator and the callout through the headless Service.
  no_advertise: true
  routes: [
  {{- range $i := until (int .Values.nats.server.replicas) }}
    "nats://{{ include "fleet.fullname" $ }}-nats-{{ $i }}.{{ include "fleet.fullname" $ }}-nats-headless.{{ $.Release.Namespace }}.svc:${NATS_PORTS.cluster}"
  {{- end }}
  ]
}
{{- end }}
# Plain WebSocket: the Route or Ingress terminates TLS (edge) and forwards to it.
websocket {
  listen: "0.0.0.0:${NATS_PORTS.websocket}"
  no_tls: true
}
`;

/** The ConfigMap with nats.conf (no secret in it), and on OpenShift the CA bundle ConfigMap. */
export const NATS_CONFIG = `{{- if .Values.nats.enabled }}
apiVersion: v1
kind: ConfigMap
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "nats-config" "component" "nats") | nindent 2 }}
data:
  nats.conf: |
${indent(NATS_CONF, 4)}
${indent(chartCalloutBlock(), 4)}
{{- if .Values.nats.server.tls.openshiftServingCert }}
---
# OpenShift's service CA writes its certificate here (service-ca.crt): the CA the operator and
# the callout check NATS's serving certificate against.
apiVersion: v1
kind: ConfigMap
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "nats-ca" "component" "nats") | nindent 2 }}
  annotations:
    service.beta.openshift.io/inject-cabundle: "true"
{{- end }}
{{- end }}
`;

export const NATS_SERVICES = `{{- if .Values.nats.enabled }}
# Clients (4222, TLS), the WebSocket listener behind the Route or Ingress, and monitoring.
apiVersion: v1
kind: Service
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "nats" "component" "nats") | nindent 2 }}
spec:
  selector:
    {{- include "fleet.componentSelector" (dict "root" . "component" "nats") | nindent 4 }}
  ports:
    - name: client
      port: ${NATS_PORTS.client}
      targetPort: client
    - name: websocket
      port: ${NATS_PORTS.websocket}
      targetPort: websocket
    - name: monitor
      port: ${NATS_PORTS.monitor}
      targetPort: monitor
---
# The StatefulSet's own names (<pod>.<this service>) for the cluster routes; the operator and
# the callout connect through it too, as OpenShift's serving certificate for a headless
# Service names both it and *.<it>.
apiVersion: v1
kind: Service
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "nats-headless" "component" "nats") | nindent 2 }}
  {{- if .Values.nats.server.tls.openshiftServingCert }}
  annotations:
    service.beta.openshift.io/serving-cert-secret-name: {{ include "fleet.fullname" . }}-nats-tls
  {{- end }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- include "fleet.componentSelector" (dict "root" . "component" "nats") | nindent 4 }}
  ports:
    - name: client
      port: ${NATS_PORTS.client}
      targetPort: client
    - name: cluster
      port: ${NATS_PORTS.cluster}
      targetPort: cluster
{{- if gt (int .Values.nats.server.replicas) 1 }}
---
# The cluster port admits the NATS pods only; clients, the router and monitoring reach the rest.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "nats" "component" "nats") | nindent 2 }}
spec:
  podSelector:
    matchLabels:
      {{- include "fleet.componentSelector" (dict "root" . "component" "nats") | nindent 6 }}
  policyTypes:
    - Ingress
  ingress:
    - ports:
        - port: ${NATS_PORTS.client}
        - port: ${NATS_PORTS.websocket}
        - port: ${NATS_PORTS.monitor}
    - from:
        - podSelector:
            matchLabels:
              {{- include "fleet.componentSelector" (dict "root" . "component" "nats") | nindent 14 }}
      ports:
        - port: ${NATS_PORTS.cluster}
{{- end }}
{{- end }}
`;

// JetStream's files live on a PersistentVolumeClaim per pod. No fsGroup is pinned: OpenShift's
// restricted-v2 SCC assigns one from the namespace's range, which makes the volume writable.
export const NATS_STATEFULSET = `{{- if .Values.nats.enabled }}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "nats" "component" "nats") | nindent 2 }}
spec:
  serviceName: {{ include "fleet.fullname" . }}-nats-headless
  replicas: {{ .Values.nats.server.replicas }}
  podManagementPolicy: Parallel
  selector:
    matchLabels:
      {{- include "fleet.componentSelector" (dict "root" . "component" "nats") | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "fleet.componentLabels" (dict "root" . "component" "nats") | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/nats-config.yaml") . | sha256sum }}
    spec:
      automountServiceAccountToken: false
      securityContext:
        {{- include "fleet.podSecurityContext" . | nindent 8 }}
        {{- with .Values.nats.server.podSecurityContext }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      # Time to flush JetStream's files on SIGTERM; clients reconnect to the other servers.
      terminationGracePeriodSeconds: 60
      containers:
        - name: nats
          image: "{{ .Values.nats.server.image.repository }}:{{ .Values.nats.server.image.tag }}"
          imagePullPolicy: {{ .Values.nats.server.image.pullPolicy }}
          command:
            - nats-server
            - --config
            - ${NATS_CONFIG_DIR}/nats.conf
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: ${CHART_CALLOUT_PASSWORD_ENV}_SECRET
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.callout.keysSecret | quote }}
                  key: password
            # Quoted, so that nats-server reads it as a string even when it looks like a number.
            - name: ${CHART_CALLOUT_PASSWORD_ENV}
              value: '"$(${CHART_CALLOUT_PASSWORD_ENV}_SECRET)"'
          ports:
            - name: client
              containerPort: ${NATS_PORTS.client}
            - name: cluster
              containerPort: ${NATS_PORTS.cluster}
            - name: websocket
              containerPort: ${NATS_PORTS.websocket}
            - name: monitor
              containerPort: ${NATS_PORTS.monitor}
          startupProbe:
            httpGet:
              path: /healthz
              port: monitor
            periodSeconds: 5
            failureThreshold: 60
          livenessProbe:
            httpGet:
              path: /healthz?js-enabled-only=true
              port: monitor
            periodSeconds: 10
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /healthz?js-server-only=true
              port: monitor
            periodSeconds: 10
          securityContext:
            {{- include "fleet.containerSecurityContext" . | nindent 12 }}
          resources:
            {{- toYaml .Values.nats.server.resources | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: ${NATS_CONFIG_DIR}
              readOnly: true
            - name: tls
              mountPath: ${NATS_TLS_DIR}
              readOnly: true
            - name: jetstream
              mountPath: /data
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: config
          configMap:
            name: {{ include "fleet.fullname" . }}-nats-config
        - name: tls
          secret:
            secretName: {{ include "fleet.natsTlsSecret" . | quote }}
            items:
              - key: tls.crt
                path: tls.crt
              - key: tls.key
                path: tls.key
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
      {{- include "fleet.podPlacement" . | nindent 6 }}
  volumeClaimTemplates:
    - metadata:
        name: jetstream
      spec:
        accessModes:
          - ReadWriteOnce
        {{- with .Values.nats.server.jetstream.storageClassName }}
        storageClassName: {{ . | quote }}
        {{- end }}
        resources:
          requests:
            storage: {{ .Values.nats.server.jetstream.size | quote }}
{{- end }}
`;

/**
 * callout.toml (callout/config.ts), rendered from values into a Secret: the OIDC settings
 * from values, the keys and the password as files of the user's Secret.
 */
export const CALLOUT_CONFIG = `{{- if .Values.callout.enabled }}
apiVersion: v1
kind: Secret
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "callout-config" "component" "callout") | nindent 2 }}
type: Opaque
stringData:
  callout.toml: |
    [nats]
    urls = {{ splitList "," (include "fleet.natsUrl" .) | toJson }}
    {{- if include "fleet.natsCaVolume" . }}
    ca_file = "${NATS_CA_DIR}/ca.crt"
    {{- end }}
    {{- with .Values.nats.tls.pin }}
    pin = {{ . | quote }}
    {{- end }}
    user = "${CHART_CALLOUT_USER}"
    password_file = "${CALLOUT_KEYS_DIR}/password"

    [account]
    name = "${CHART_ACCOUNT}"
    issuer_seed_file = "${CALLOUT_KEYS_DIR}/issuer.nk"
    xkey_seed_file = "${CALLOUT_KEYS_DIR}/xkey.nk"

    [oidc]
    issuer = {{ .Values.callout.oidc.issuer | quote }}
    audience = {{ .Values.callout.oidc.audience | quote }}
    access_token_clients = {{ .Values.callout.oidc.accessTokenClients | toJson }}
    device_id_claim = {{ .Values.callout.oidc.deviceIdClaim | quote }}
    role_claim = {{ .Values.callout.oidc.roleClaim | quote }}
    strip_prefix = {{ .Values.callout.oidc.stripPrefix | quote }}

    [oidc.roles]
    {{- range $role, $fleetRole := .Values.callout.oidc.roles }}
    {{ $role | quote }} = {{ $fleetRole | quote }}
    {{- end }}

    [jwt]
    max_ttl_seconds = {{ int .Values.callout.jwtMaxTtlSeconds }}
{{- end }}
`;

// Two or more replicas share the callout subject as a queue group (callout/service.ts
// CALLOUT_QUEUE): each authorization request is answered by one of them.
export const CALLOUT_DEPLOYMENT = `{{- if .Values.callout.enabled }}
apiVersion: apps/v1
kind: Deployment
metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "callout" "component" "callout") | nindent 2 }}
spec:
  replicas: {{ .Values.callout.replicas }}
  selector:
    matchLabels:
      {{- include "fleet.componentSelector" (dict "root" . "component" "callout") | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "fleet.componentLabels" (dict "root" . "component" "callout") | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/callout-config.yaml") . | sha256sum }}
    spec:
      automountServiceAccountToken: false
      securityContext:
        {{- include "fleet.podSecurityContext" . | nindent 8 }}
      containers:
        - name: callout
          image: {{ include "fleet.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            - callout
            - run
            - --log-format
            - json
            - --log-level
            - {{ .Values.logLevel | quote }}
          env:
            - name: FLEET_CALLOUT_CONFIG
              value: ${CALLOUT_CONFIG_DIR}/callout.toml
            - name: FLEET_CALLOUT_HEALTH_PORT
              value: {{ .Values.callout.healthPort | quote }}
            {{- include "fleet.denoEnv" .Values.callout.v8Flags | nindent 12 }}
            {{- include "fleet.trustedCaEnv" . | nindent 12 }}
          {{- include "fleet.healthProbes" .Values.callout.healthPort | nindent 10 }}
          securityContext:
            {{- include "fleet.containerSecurityContext" . | nindent 12 }}
          resources:
            {{- toYaml .Values.callout.resources | nindent 12 }}
          volumeMounts:
            {{- include "fleet.denoMounts" . | nindent 12 }}
            - name: config
              mountPath: ${CALLOUT_CONFIG_DIR}
              readOnly: true
            - name: keys
              mountPath: ${CALLOUT_KEYS_DIR}
              readOnly: true
      volumes:
        {{- include "fleet.denoVolumes" . | nindent 8 }}
        - name: config
          secret:
            secretName: {{ include "fleet.fullname" . }}-callout-config
        - name: keys
          secret:
            secretName: {{ .Values.callout.keysSecret | quote }}
            items:
              - key: issuer.nk
                path: issuer.nk
              - key: xkey.nk
                path: xkey.nk
              - key: password
                path: password
      {{- include "fleet.podPlacement" . | nindent 6 }}
{{- end }}
`;

const ROUTE_METADATA = `metadata:
  {{- include "fleet.metadata" (dict "root" . "name" "nats" "component" "nats") | nindent 2 }}
  {{- with .Values.route.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
`;

/** The Route (OpenShift) or Ingress in front of NATS's WebSocket listener: TLS ends there. */
export const ROUTE = `{{- if and .Values.nats.enabled (eq .Values.route.kind "route") }}
# wss://<host> for devices: the router terminates TLS and passes the WebSocket upgrade on.
apiVersion: route.openshift.io/v1
kind: Route
${ROUTE_METADATA}spec:
  {{- with .Values.route.host }}
  host: {{ . | quote }}
  {{- end }}
  to:
    kind: Service
    name: {{ include "fleet.fullname" . }}-nats
    weight: 100
  port:
    targetPort: websocket
  tls:
    termination: edge
    insecureEdgeTerminationPolicy: {{ .Values.route.insecureEdgeTerminationPolicy }}
  wildcardPolicy: None
{{- else if and .Values.nats.enabled (eq .Values.route.kind "ingress") }}
# wss://<host> for devices: the ingress controller terminates TLS and passes the WebSocket
# upgrade on.
apiVersion: networking.k8s.io/v1
kind: Ingress
${ROUTE_METADATA}spec:
  {{- with .Values.route.ingressClassName }}
  ingressClassName: {{ . | quote }}
  {{- end }}
  tls:
    - hosts:
        - {{ .Values.route.host | quote }}
      {{- with .Values.route.tlsSecret }}
      secretName: {{ . | quote }}
      {{- end }}
  rules:
    - host: {{ .Values.route.host | quote }}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: {{ include "fleet.fullname" . }}-nats
                port:
                  name: websocket
{{- end }}
`;
