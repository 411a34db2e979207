{{/* Chart name, truncated to the DNS label limit. */}}
{{- define "authz-consumer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "authz-consumer.fullname" -}}
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

{{- define "authz-consumer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "authz-consumer.labels" -}}
helm.sh/chart: {{ include "authz-consumer.chart" . }}
{{ include "authz-consumer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "authz-consumer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "authz-consumer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "authz-consumer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "authz-consumer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the sensitive settings. */}}
{{- define "authz-consumer.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "authz-consumer.fullname" . }}
{{- end }}
{{- end }}

{{/* Where the TLS secret is mounted. */}}
{{- define "authz-consumer.tlsDir" -}}
/etc/authz-consumer/tls
{{- end }}

{{/* Fail early on settings that cannot work. */}}
{{- define "authz-consumer.validate" -}}
{{- if not .Values.consumer.brokers }}
{{- fail "consumer.brokers is required: the Kafka bootstrap brokers, e.g. --set consumer.brokers={kafka-0.kafka:9092}" }}
{{- end }}
{{- if and (not .Values.secrets.existingSecret) (not .Values.secrets.databaseUrl) }}
{{- fail "set secrets.databaseUrl (mysql://user:pass@host:3306/edxapp) or secrets.existingSecret" }}
{{- end }}
{{- with .Values.consumer.sasl.mechanism }}
{{- if not (has . (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) }}
{{- fail (printf "consumer.sasl.mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" .) }}
{{- end }}
{{- end }}
{{- if and .Values.consumer.tls.secretName (not .Values.consumer.tls.enabled) }}
{{- fail "consumer.tls.secretName is set but consumer.tls.enabled is false" }}
{{- end }}
{{- if and (or .Values.consumer.tls.certKey .Values.consumer.tls.keyKey) (not .Values.consumer.tls.secretName) }}
{{- fail "consumer.tls.certKey/keyKey need consumer.tls.secretName" }}
{{- end }}
{{- if ne (empty .Values.consumer.tls.certKey) (empty .Values.consumer.tls.keyKey) }}
{{- fail "consumer.tls.certKey and consumer.tls.keyKey go together (mutual TLS)" }}
{{- end }}
{{- end }}
