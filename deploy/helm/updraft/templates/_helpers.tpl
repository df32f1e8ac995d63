{{- define "updraft.name" -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "updraft.labels" -}}
app.kubernetes.io/name: updraft
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "updraft.selector" -}}
app.kubernetes.io/name: updraft
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "updraft.serviceAccount" -}}{{ .Values.serviceAccount.name | default (include "updraft.name" .) }}{{- end -}}
