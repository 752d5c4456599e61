{{/* The release's name, at most 63 characters (a DNS label). */}}
{{- define "slipway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "slipway.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component (serve or worker). */}}
{{- define "slipway.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "slipway.serviceAccountName" -}}
{{- default (include "slipway.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "slipway.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* The environment both components share: the database, the settings, JSON logs. */}}
{{- define "slipway.env" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret: name the Secret that holds the PostgreSQL URL" .Values.database.existingSecret }}
      key: {{ .Values.database.key }}
- name: SLIPWAY_LOG_FORMAT
  value: json
# The embedded PostgreSQL is never used here; the data directory only holds scratch files.
- name: SLIPWAY_DATA_DIR
  value: /tmp/slipway
{{- range $key, $value := .Values.settings }}
{{- if has $key (list "listen" "data_dir" "workers" "log_format" "database_url") }}
{{- fail (printf "settings.%s is set by the chart; leave it out" $key) }}
{{- end }}
{{- if ne (toString $value) "" }}
- name: {{ printf "SLIPWAY_%s" (upper $key) }}
  value: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod spec both components share, around their container. */}}
{{- define "slipway.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "slipway.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}
