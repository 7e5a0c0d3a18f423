{{- define "qarun-stack.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qarun
{{- end -}}

{{- define "qarun-stack.podSecurity" -}}
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "qarun-stack.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The PostgreSQL password: from values, else the one already installed, else new. */}}
{{- define "qarun-stack.postgresPassword" -}}
{{- if .Values.postgres.password -}}
{{- .Values.postgres.password -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace "qarun-postgres" -}}
{{- if and $existing (index $existing.data "password") -}}
{{- index $existing.data "password" | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
An image reference, [global.imageRegistry/]repository:tag with the tag defaulting to the
chart's appVersion: (dict "root" $ "image" .Values.workers.image).
*/}}
{{- define "qarun-stack.image" -}}
{{- $registry := trimSuffix "/" (.root.Values.global.imageRegistry | default "") -}}
{{- $ref := printf "%s:%s" .image.repository (toString .image.tag | default .root.Chart.AppVersion) -}}
{{- if $registry -}}{{ printf "%s/%s" $registry $ref }}{{- else -}}{{ $ref }}{{- end -}}
{{- end -}}

{{/* The Kafka runs and the API use: an external one's servers, else the bootstrap Service. */}}
{{- define "qarun-stack.bootstrap" -}}
{{- if eq .Values.global.kafka.provider "external" -}}
{{- required "global.kafka.bootstrapServers is required with global.kafka.provider=external" .Values.global.kafka.bootstrapServers -}}
{{- else -}}
{{- printf "%s-kafka-bootstrap:9092" .Values.kafka.name -}}
{{- end -}}
{{- end -}}
