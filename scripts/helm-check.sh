#!/usr/bin/env bash
# Lints the Helm chart and validates what it renders, offline:
#   1. scripts/tools.sh (helm, kubeconform, Kubernetes JSON schemas; cached)
#   2. helm lint --strict with each value set in charts/authz-consumer/ci/
#   3. helm template with each value set, validated by kubeconform -strict
#      against the Kubernetes schemas, and the ServiceMonitor and PrometheusRule
#      against the Prometheus Operator's own CRDs (the Go module
#      github.com/prometheus-operator/prometheus-operator ships them; converted
#      to JSON schemas by test/deploycheck/cmd/crdschema)
#   4. a few render checks kubeconform cannot make (required settings enforced,
#      secrets only in the Secret, the value sets' switches took effect), bad
#      values refused by values.schema.json
#   5. the PrometheusRule's expressions and the Grafana dashboard's queries
#      parsed by Prometheus's PromQL parser (go test in test/deploycheck)
# Exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/authz-consumer"
OUT="$ROOT/.cache/helm-check"

"$ROOT/scripts/tools.sh"
eval "$("$ROOT/scripts/tools.sh" env)"
K8S="$AUTHZ_K8S_VERSION"

# The Prometheus Operator's CRDs as kubeconform schemas (strict: unknown fields rejected).
PROM_OPERATOR_VERSION="v0.85.0"
CRD_SCHEMAS="$ROOT/.cache/crd-schemas/prometheus-operator-$PROM_OPERATOR_VERSION-strict"
if ! [ -f "$CRD_SCHEMAS/servicemonitor-monitoring-v1.json" ] || ! [ -f "$CRD_SCHEMAS/prometheusrule-monitoring-v1.json" ]; then
	echo "helm-check: converting the Prometheus Operator $PROM_OPERATOR_VERSION CRDs (Go module proxy, one time)" >&2
	crd_dir="$(cd / && go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/example/prometheus-operator-crd"
	[ -d "$crd_dir" ] || { echo "helm-check: no CRDs in $crd_dir" >&2; exit 1; }
	rm -rf "$CRD_SCHEMAS.tmp"
	(cd "$ROOT/test/deploycheck" && go run ./cmd/crdschema -strict -out "$CRD_SCHEMAS.tmp" \
		"$crd_dir/monitoring.coreos.com_servicemonitors.yaml" "$crd_dir/monitoring.coreos.com_prometheusrules.yaml" >&2)
	rm -rf "$CRD_SCHEMAS"
	mv "$CRD_SCHEMAS.tmp" "$CRD_SCHEMAS"
fi

fail=0
pass=0
ok() { pass=$((pass + 1)); printf 'ok    %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL  %s\n' "$*"; }

rm -rf "$OUT"
mkdir -p "$OUT"

value_sets=("$CHART"/ci/*-values.yaml)
[ -e "${value_sets[0]}" ] || { echo "no value sets in $CHART/ci" >&2; exit 1; }

for vs in "${value_sets[@]}"; do
	name="$(basename "$vs" -values.yaml)"
	if helm lint --strict --kube-version "$K8S" "$CHART" -f "$vs" >"$OUT/$name.lint.txt" 2>&1; then
		ok "helm lint [$name]"
	else
		bad "helm lint [$name]"
		sed 's/^/      /' "$OUT/$name.lint.txt"
	fi
	if ! helm template authz "$CHART" --namespace authz --kube-version "$K8S" -f "$vs" \
		>"$OUT/$name.yaml" 2>"$OUT/$name.template.txt"; then
		bad "helm template [$name]"
		sed 's/^/      /' "$OUT/$name.template.txt"
		continue
	fi
	if kubeconform -strict -summary -output text -kubernetes-version "$K8S" \
		-schema-location "$AUTHZ_KUBECONFORM_SCHEMA_LOCATION" \
		-schema-location "$CRD_SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
		"$OUT/$name.yaml" >"$OUT/$name.kubeconform.txt" 2>&1; then
		ok "kubeconform -strict [$name]: $(tail -n 1 "$OUT/$name.kubeconform.txt")"
	else
		bad "kubeconform -strict [$name]"
		sed 's/^/      /' "$OUT/$name.kubeconform.txt"
	fi
done

# expect NAME FILE PATTERN: the rendered FILE contains PATTERN (grep -E).
expect() {
	if grep -Eq -- "$3" "$OUT/$2.yaml"; then ok "$1"; else bad "$1 (no /$3/ in $2.yaml)"; fi
}
# expect_not NAME FILE PATTERN
expect_not() {
	if grep -Eq -- "$3" "$OUT/$2.yaml"; then bad "$1 (/$3/ found in $2.yaml)"; else ok "$1"; fi
}
# count_kind FILE KIND N
count_kind() {
	local n
	n="$(grep -Ec "^kind: $2\$" "$OUT/$1.yaml" || true)"
	if [ "$n" = "$3" ]; then ok "[$1] $3 x $2"; else bad "[$1] want $3 x $2, got $n"; fi
}

if [ -f "$OUT/default.yaml" ]; then
	count_kind default ServiceMonitor 0
	count_kind default PrometheusRule 0
	count_kind default ConfigMap 1
	count_kind default PodDisruptionBudget 0
	count_kind default Secret 1
	expect "[default] runs 'consumer run'" default '^            - run$'
	expect "[default] liveness /healthz" default 'path: /healthz'
	expect "[default] readiness /readyz" default 'path: /readyz'
	expect "[default] grace 120s" default 'terminationGracePeriodSeconds: 120$'
	expect "[default] read-only root fs" default 'readOnlyRootFilesystem: true'
	expect_not "[default] database URL not in the ConfigMap" default 'AUTHZ_CONSUMER_DATABASE_URL: "mysql'
	expect_not "[default] password not in clear anywhere" default 'secret@mysql'
fi
if [ -f "$OUT/monitoring-pdb.yaml" ]; then
	count_kind monitoring-pdb ServiceMonitor 1
	count_kind monitoring-pdb PodDisruptionBudget 1
	count_kind monitoring-pdb PrometheusRule 1
	count_kind monitoring-pdb ConfigMap 2
	expect "[monitoring-pdb] rules scoped to the release's Service" monitoring-pdb 'authz_consumer_parked_pending\{namespace="authz",service="authz-authz-consumer"\}'
	expect "[monitoring-pdb] dashboard for Grafana's sidecar" monitoring-pdb 'grafana_dashboard: "1"'
	expect "[monitoring-pdb] brokers comma list" monitoring-pdb 'AUTHZ_CONSUMER_BROKERS: "kafka-0.kafka:9092,kafka-1.kafka:9092"'
	expect "[monitoring-pdb] auto-migrate on" monitoring-pdb 'AUTHZ_CONSUMER_AUTO_MIGRATE: "true"'
fi
if [ -f "$OUT/sasl-tls-existing-secret.yaml" ]; then
	count_kind sasl-tls-existing-secret Secret 0
	expect "[sasl-tls] TLS files mounted" sasl-tls-existing-secret 'secretName: authz-consumer-kafka-tls'
	expect "[sasl-tls] CA path" sasl-tls-existing-secret 'AUTHZ_CONSUMER_TLS_CA_FILE: "/etc/authz-consumer/tls/ca.crt"'
	expect "[sasl-tls] client key path" sasl-tls-existing-secret 'AUTHZ_CONSUMER_TLS_KEY_FILE: "/etc/authz-consumer/tls/tls.key"'
	expect "[sasl-tls] existing secret used" sasl-tls-existing-secret 'name: authz-consumer-credentials'
	expect "[sasl-tls] SASL mechanism" sasl-tls-existing-secret 'AUTHZ_CONSUMER_SASL_MECHANISM: "SCRAM-SHA-512"'
fi
if [ -f "$OUT/replicas-3.yaml" ]; then
	expect "[replicas-3] 3 replicas" replicas-3 '^  replicas: 3$'
fi

# Settings the chart must refuse.
refuse() { # NAME PATTERN helm-args...
	local what=$1 pattern=$2
	shift 2
	local msg
	if msg="$(helm template authz "$CHART" --kube-version "$K8S" "$@" 2>&1)"; then
		bad "refuses $what (rendered anyway)"
	elif grep -q -- "$pattern" <<<"$msg"; then
		ok "refuses $what"
	else
		bad "refuses $what (wrong message: $msg)"
	fi
}
refuse "missing brokers" "consumer.brokers is required" --set secrets.databaseUrl=sqlite:///x.db
refuse "missing database URL" "secrets.databaseUrl" --set 'consumer.brokers={k:9092}'
refuse "unknown SASL mechanism" "/consumer/sasl/mechanism" --set 'consumer.brokers={k:9092}' \
	--set secrets.databaseUrl=sqlite:///x.db --set consumer.sasl.mechanism=GSSAPI
# values.schema.json
good=(--set 'consumer.brokers={k:9092}' --set secrets.databaseUrl=sqlite:///x.db)
refuse "an unknown value (typo)" "additional properties 'replicas' not allowed" "${good[@]}" --set replicas=2
refuse "an unknown consumer setting" "additional properties 'autoMigrat' not allowed" "${good[@]}" --set consumer.autoMigrat=true
refuse "a negative replica count" "/replicaCount" "${good[@]}" --set replicaCount=-1
refuse "an unknown log level" "/consumer/logLevel" "${good[@]}" --set consumer.logLevel=verbose
refuse "a string for autoMigrate" "/consumer/autoMigrate" "${good[@]}" --set-string consumer.autoMigrate=yes
refuse "a bad duration" "/consumer/sweepInterval" "${good[@]}" --set consumer.sweepInterval=1minute
refuse "a broker without port" "/consumer/brokers/0" --set 'consumer.brokers={kafka}' --set secrets.databaseUrl=sqlite:///x.db
refuse "an unknown database scheme" "/secrets/databaseUrl" --set 'consumer.brokers={k:9092}' --set secrets.databaseUrl=oracle://x
refuse "a port out of range" "/consumer/httpPort" "${good[@]}" --set consumer.httpPort=70000
lint_msg="$(helm lint --strict --kube-version "$K8S" "$CHART" "${good[@]}" --set consumer.logFormat=xml 2>&1 || true)"
if grep -q '/consumer/logFormat' <<<"$lint_msg"; then ok "helm lint refuses an unknown log format"; else bad "helm lint accepted consumer.logFormat=xml: $lint_msg"; fi

# PromQL: every rule expression and dashboard query parses and selects metrics the service exports.
if [ -f "$OUT/monitoring-pdb.yaml" ]; then
	if (cd "$ROOT/test/deploycheck" && AUTHZ_CHART_RENDERED="$OUT/monitoring-pdb.yaml" go test -count=1 -v . \
		>"$OUT/promql.txt" 2>&1); then
		ok "PromQL parser: PrometheusRule expressions and dashboard queries ($(grep -c '^--- PASS' "$OUT/promql.txt") tests)"
	else
		bad "PromQL parser"
		sed 's/^/      /' "$OUT/promql.txt"
	fi
fi

echo "rendered manifests: $OUT"
echo "helm-check: $pass passed, $fail failed"
[ "$fail" = 0 ]
