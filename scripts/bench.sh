#!/usr/bin/env bash
# `make bench`: starts MariaDB and PostgreSQL, then prints the benchmark tables:
#   1. migration throughput per dialect vs bulk SQL, peak RSS (cmd/bench)
#   2. the event pipeline (internal/consumer benchmarks), when present
# Extra arguments go to cmd/bench (e.g. -sizes 1000,10000 -repeat 1).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/services.sh start >&2
eval "$(bash scripts/services.sh env)"
go run ./cmd/bench "$@"
if ls internal/consumer/*bench*_test.go >/dev/null 2>&1; then
	echo
	echo "Event pipeline (go test -bench, internal/consumer):"
	go test -run '^$' -bench . -benchtime 1x -count 1 ./internal/consumer/
fi
