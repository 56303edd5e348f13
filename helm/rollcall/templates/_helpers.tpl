{{/*
Helpers of the rollcall chart. Every template names things through these, so the names and
labels of one release agree everywhere.
*/}}

{{/* The chart's name, overridable with nameOverride. */}}
{{- define "rollcall.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name (at most 63 characters, as DNS labels require). */}}
{{- define "rollcall.fullname" -}}
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

{{/* Name of one component's resources: call with (dict "root" $ "component" "worker"). */}}
{{- define "rollcall.componentName" -}}
{{- printf "%s-%s" (include "rollcall.fullname" .root | trunc 52 | trimSuffix "-") .component }}
{{- end }}

{{/* chart label value: name-version. */}}
{{- define "rollcall.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every resource carries. */}}
{{- define "rollcall.labels" -}}
helm.sh/chart: {{ include "rollcall.chart" . }}
{{ include "rollcall.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's pods. */}}
{{- define "rollcall.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollcall.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: call with (dict "root" $ "component" "worker"). */}}
{{- define "rollcall.componentLabels" -}}
{{ include "rollcall.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one component: call with (dict "root" $ "component" "worker"). */}}
{{- define "rollcall.componentSelectorLabels" -}}
{{ include "rollcall.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The service account the pods run as. */}}
{{- define "rollcall.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rollcall.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference; the tag defaults to the chart's appVersion. */}}
{{- define "rollcall.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Secret holding the RabbitMQ URL. */}}
{{- define "rollcall.amqpSecretName" -}}
{{- default (include "rollcall.fullname" .) .Values.rabbitmq.existingSecret }}
{{- end }}

{{/* Secret holding the Redis URL. */}}
{{- define "rollcall.redisSecretName" -}}
{{- default (include "rollcall.fullname" .) .Values.redis.existingSecret }}
{{- end }}

{{/* Secret holding the API token. */}}
{{- define "rollcall.tokenSecretName" -}}
{{- default (include "rollcall.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{/*
The API token the chart's Secret holds (when auth.existingSecret is not set): auth.token, else
the token this release stored before (looked up, so an upgrade keeps it and clients keep
working), else a new random one. The coordinator listens beyond loopback, so it always has one.
*/}}
{{- define "rollcall.token" -}}
{{- $stored := "" }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "rollcall.fullname" .) }}
{{- if $secret }}
{{- $stored = get (get $secret "data" | default dict) .Values.auth.existingSecretKey | b64dec }}
{{- end }}
{{- .Values.auth.token | default $stored | default (randAlphaNum 40) }}
{{- end }}

{{/*
HOST:PORT for a listen flag; an IPv6 host is put in brackets.
Call with (dict "host" .Values.listenHost "port" .Values.metrics.port).
*/}}
{{- define "rollcall.listenAddress" -}}
{{- if contains ":" (toString .host) }}
{{- printf "[%s]:%v" .host .port }}
{{- else }}
{{- printf "%s:%v" .host .port }}
{{- end }}
{{- end }}

{{/* The autoscaler's ceiling: worker.autoscaling.maxReplicas capped at the shard count. */}}
{{- define "rollcall.workerMaxReplicas" -}}
{{- min (int .Values.worker.autoscaling.maxReplicas) (int .Values.fleet.shards) }}
{{- end }}

{{/* Stops rendering on settings that cannot work. */}}
{{- define "rollcall.validate" -}}
{{- if lt (int .Values.fleet.shards) 1 }}
{{- fail "fleet.shards must be at least 1" }}
{{- end }}
{{- if and .Values.worker.autoscaling.enabled (lt (int .Values.worker.autoscaling.minReplicas) 1) }}
{{- fail "worker.autoscaling.minReplicas must be at least 1: workers also move due greylist retries onto the queue" }}
{{- end }}
{{- if not (or .Values.rabbitmq.url .Values.rabbitmq.existingSecret) }}
{{- fail "set rabbitmq.url or rabbitmq.existingSecret" }}
{{- end }}
{{- if not (or .Values.redis.url .Values.redis.existingSecret) }}
{{- fail "set redis.url or redis.existingSecret" }}
{{- end }}
{{- if not (has .Values.worker.autoscaling.keda.trigger (list "rabbitmq" "prometheus")) }}
{{- fail "worker.autoscaling.keda.trigger must be rabbitmq or prometheus" }}
{{- end }}
{{- end }}

{{/* Environment shared by both components: broker, store, fleet settings, identity. */}}
{{- define "rollcall.commonEnv" -}}
- name: ROLLCALL_AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "rollcall.amqpSecretName" . }}
      key: {{ .Values.rabbitmq.existingSecretKey }}
- name: ROLLCALL_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "rollcall.redisSecretName" . }}
      key: {{ .Values.redis.existingSecretKey }}
- name: ROLLCALL_PREFIX
  value: {{ .Values.fleet.prefix | quote }}
- name: ROLLCALL_SHARDS
  value: {{ .Values.fleet.shards | quote }}
- name: ROLLCALL_LOG
  value: {{ .Values.logLevel | quote }}
{{- with .Values.identity.helo }}
- name: ROLLCALL_HELO
  value: {{ . | quote }}
{{- end }}
{{- with .Values.identity.mailFrom }}
- name: ROLLCALL_MAIL_FROM
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* The config volume (the ConfigMap) and a writable /tmp for the read-only root. */}}
{{- define "rollcall.volumes" -}}
- name: config
  configMap:
    name: {{ include "rollcall.fullname" . }}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 16Mi
{{- end }}

{{/* Mounts of the config volume and /tmp. */}}
{{- define "rollcall.volumeMounts" -}}
- name: config
  mountPath: /etc/rollcall
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Pod annotations that roll the pods when the config or the Secret changes. */}}
{{- define "rollcall.checksums" -}}
checksum/config: {{ .Values.config.rollcallToml | sha256sum }}
checksum/secret: {{ printf "%s|%s|%s" .Values.rabbitmq.url .Values.redis.url .Values.auth.token | sha256sum }}
{{- end }}

{{/* Egress both components need: DNS, RabbitMQ and Redis (NetworkPolicy egress rules). */}}
{{- define "rollcall.commonEgress" -}}
- ports:
    - port: {{ .Values.networkPolicy.dns.port }}
      protocol: UDP
    - port: {{ .Values.networkPolicy.dns.port }}
      protocol: TCP
  {{- with .Values.networkPolicy.dns.peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    - port: {{ .Values.networkPolicy.rabbitmq.port }}
      protocol: TCP
  {{- with .Values.networkPolicy.rabbitmq.peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    - port: {{ .Values.networkPolicy.redis.port }}
      protocol: TCP
  {{- with .Values.networkPolicy.redis.peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Ingress rule admitting the metrics scrapers to the metrics port. */}}
{{- define "rollcall.metricsIngress" -}}
- ports:
    - port: metrics
      protocol: TCP
  {{- with .Values.networkPolicy.metricsScrapers }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
