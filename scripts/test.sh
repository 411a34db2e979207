#!/usr/bin/env bash
# The README's test command (`make test`): installs and starts every real part
# the tests need (MariaDB, PostgreSQL, an Apache Kafka 4 broker, the Python
# virtual environment, helm and kubeconform), then runs every tier:
#   go vet, the Go tests (SQLite, MariaDB, PostgreSQL, kfake, real Kafka),
#   the Python producer tests and its end-to-end test, the Helm chart checks.
# Servers this script started are stopped at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { printf '\n==> %s\n' "$*" >&2; }

step "servers: MariaDB and PostgreSQL on 127.0.0.1"
bash scripts/services.sh start
eval "$(bash scripts/services.sh env)"
step "server: Apache Kafka (KRaft) on 127.0.0.1"
bash scripts/kafka.sh start
eval "$(bash scripts/kafka.sh env)"
trap 'bash scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT

step "go vet"
go vet ./...
step "go test (all tiers)"
go test -count=1 -timeout 40m ./...

step "python: producer plugin tests"
bash scripts/python.sh test
if grep -q 'e2e)' scripts/python.sh; then
	step "python: end-to-end (plugin -> Kafka -> Go decoder)"
	bash scripts/python.sh e2e
fi

if [ -f scripts/helm-check.sh ]; then
	step "helm: lint, render, kubeconform"
	bash scripts/helm-check.sh
fi
step "all tests passed"
