{{- define "aimm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aimm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "aimm.name" .) .Release.Name -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s-operator" .Release.Name (include "aimm.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aimm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aimm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "aimm.selectorLabels" -}}
app.kubernetes.io/name: aimm-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aimm.labels" -}}
{{ include "aimm.selectorLabels" . }}
app.kubernetes.io/part-of: ai-multimodel
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "aimm.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The chart's AIGateway spec: the values' spec, with the chart's image unless one is given. */}}
{{- define "aimm.gatewaySpec" -}}
{{- $spec := deepCopy .Values.gateway.spec -}}
{{- if not $spec.image -}}
{{- $_ := set $spec "image" (include "aimm.image" .) -}}
{{- end -}}
{{- toYaml $spec -}}
{{- end -}}
