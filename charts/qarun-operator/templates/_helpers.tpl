{{- define "qarun-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "qarun-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: qarun-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qarun
{{- end -}}

{{- define "qarun-operator.selectorLabels" -}}
app.kubernetes.io/name: qarun-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "qarun-operator.serviceAccountName" -}}
{{- default (include "qarun-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/*
The operator's permissions, and nothing more: its own resource (watch, annotate, status,
scale for autoscaling, finalizers for blockOwnerDeletion), the children it applies with
server-side apply (create + patch: applying a new object is a create), lists to observe and prune them, deletes to prune or replace them, and
events. No Secrets: workloads read them by reference, the operator never does.
*/}}
{{- define "qarun-operator.rules" -}}
- apiGroups: [qarun.io]
  resources: [qaruns]
  verbs: [get, list, watch, patch]
- apiGroups: [qarun.io]
  resources: [qaruns/status, qaruns/scale]
  verbs: [get, patch]
- apiGroups: [qarun.io]
  resources: [qaruns/finalizers]
  verbs: [update]
- apiGroups: [kafka.strimzi.io]
  resources: [kafkatopics]
  verbs: [get, list, create, patch, delete]
- apiGroups: [flink.apache.org]
  resources: [flinkdeployments, flinksessionjobs]
  verbs: [get, list, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, create, patch, delete]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, patch, delete]
- apiGroups: [""]
  resources: [configmaps, services, persistentvolumeclaims]   # standalone Flink sessions
  verbs: [get, list, create, patch, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/*
An image reference, [global.imageRegistry/]repository:tag with the tag defaulting to the
chart's appVersion: (dict "root" $ "image" .Values.image).
*/}}
{{- define "qarun-operator.image" -}}
{{- $registry := trimSuffix "/" (.root.Values.global.imageRegistry | default "") -}}
{{- $ref := printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion) -}}
{{- if $registry -}}{{ printf "%s/%s" $registry $ref }}{{- else -}}{{ $ref }}{{- end -}}
{{- end -}}
