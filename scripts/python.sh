#!/usr/bin/env bash
# The Python producer plugin (python/): its virtual environment, tests and end-to-end test.
#
#   scripts/python.sh venv      create python/.venv from python/requirements-test.txt (reused while
#                               the requirements, pyproject.toml and interpreter are unchanged)
#   scripts/python.sh test      unit tests (pytest-django, SQLite); no tests collected = failure
#   scripts/python.sh e2e       end-to-end: plugin -> edx-event-bus-kafka -> real Kafka broker +
#                               schema registry -> captured message checked against the Go decoder
#   scripts/python.sh vectors   regenerate schemas/testdata/vectors.json with the real serializers
#
# Extra arguments after test/e2e go to pytest (e.g. scripts/python.sh test -k schema).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY_DIR="$ROOT/python"
VENV="$PY_DIR/.venv"
STAMP="$VENV/.requirements-stamp"
PIP_CACHE="$ROOT/.cache/pip"

log() { printf 'python.sh: %s\n' "$*" >&2; }

find_python() {
	local cand
	for cand in "${AUTHZ_PYTHON:-}" python3.11 python3; do
		[ -n "$cand" ] || continue
		if command -v "$cand" >/dev/null 2>&1 &&
			"$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
			command -v "$cand"
			return 0
		fi
	done
	log "no Python >= 3.11 found (set AUTHZ_PYTHON=/path/to/python3.11)"
	return 1
}

stamp_of() {
	local py="$1"
	{
		"$py" -c 'import sys; print(sys.version)'
		cat "$PY_DIR/requirements-test.txt" "$PY_DIR/pyproject.toml"
	} | sha256sum | cut -d' ' -f1
}

cmd_venv() {
	local py want
	py="$(find_python)"
	want="$(stamp_of "$py")"
	if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
		log "venv up to date ($VENV)"
		return 0
	fi
	log "creating $VENV with $py"
	rm -rf "$VENV"
	"$py" -m venv "$VENV"
	mkdir -p "$PIP_CACHE"
	local pip=("$VENV/bin/python" -m pip --disable-pip-version-check --cache-dir "$PIP_CACHE")
	"${pip[@]}" install --quiet -r "$PY_DIR/requirements-test.txt"
	# The plugin itself, editable; its dependencies are already pinned above.
	"${pip[@]}" install --quiet --no-deps --no-build-isolation -e "$PY_DIR"
	"${pip[@]}" check
	echo "$want" >"$STAMP"
	log "venv ready: $("$VENV/bin/python" --version)"
}

run_pytest() {
	# pytest exit codes: 0 passed, 1 failures, 2 interrupted, 3 internal error, 4 usage error,
	# 5 no tests collected. 5 is a failure here: a suite that runs nothing must not pass CI.
	local rc=0
	(cd "$PY_DIR" && "$VENV/bin/python" -m pytest "$@") || rc=$?
	if [ "$rc" -eq 5 ]; then
		log "pytest collected no tests: failing"
		return 1
	fi
	return "$rc"
}

cmd_test() {
	cmd_venv
	run_pytest tests "$@"
}

cmd_vectors() {
	cmd_venv
	(cd "$PY_DIR" && "$VENV/bin/python" tools/make_vectors.py "$ROOT/schemas/testdata/vectors.json")
}

# The end-to-end test needs a Kafka broker (scripts/kafka.sh start) and a schema registry: the
# Go dev-registry is started here unless AUTHZ_TEST_SCHEMA_REGISTRY_URL names one. The consumed
# messages land in AUTHZ_E2E_CAPTURED (default .cache/python-e2e/captured.json), in the test
# vector format, for the Go decoder.
cmd_e2e() {
	cmd_venv
	local e2e_dir="$ROOT/.cache/python-e2e"
	mkdir -p "$e2e_dir"
	if [ -z "${AUTHZ_TEST_KAFKA_BROKERS:-}" ]; then
		eval "$("$ROOT/scripts/kafka.sh" env)"
	fi
	export AUTHZ_TEST_KAFKA_BROKERS
	export AUTHZ_E2E_CAPTURED="${AUTHZ_E2E_CAPTURED:-$e2e_dir/captured.json}"
	rm -f "$AUTHZ_E2E_CAPTURED"
	REGISTRY_PID=""
	if [ -z "${AUTHZ_TEST_SCHEMA_REGISTRY_URL:-}" ]; then
		log "building the Go consumer for its dev-registry"
		(cd "$ROOT" && go build -o "$e2e_dir/consumer" ./cmd/consumer)
		: >"$e2e_dir/registry.url"
		"$e2e_dir/consumer" dev-registry --listen 127.0.0.1:0 >"$e2e_dir/registry.url" 2>"$e2e_dir/registry.log" &
		REGISTRY_PID=$!
		trap stop_registry EXIT
		local deadline=$((SECONDS + 30)) url=""
		while [ -z "$url" ]; do
			url="$(head -n1 "$e2e_dir/registry.url")"
			[ -n "$url" ] && break
			if ! kill -0 "$REGISTRY_PID" 2>/dev/null; then
				log "dev-registry exited: $(cat "$e2e_dir/registry.log")"
				return 1
			fi
			if [ "$SECONDS" -ge "$deadline" ]; then
				log "dev-registry printed no URL within 30s"
				return 1
			fi
			sleep 0.1
		done
		export AUTHZ_TEST_SCHEMA_REGISTRY_URL="$url"
		log "dev-registry at $url (pid $REGISTRY_PID)"
	fi
	run_pytest e2e_tests --ds=e2e_tests.settings "$@"
	log "captured messages: $AUTHZ_E2E_CAPTURED; decoding them with the Go decoder"
	(cd "$ROOT" && go test -count=1 -run '^TestCapturedFromProducer$' -v ./internal/events/ | grep -E '^(=== RUN|--- |ok|FAIL|PASS)')
}

stop_registry() {
	if [ -n "${REGISTRY_PID:-}" ]; then
		kill "$REGISTRY_PID" 2>/dev/null || true
		wait "$REGISTRY_PID" 2>/dev/null || true
	fi
}

case "${1:-}" in
venv) shift; cmd_venv "$@" ;;
test) shift; cmd_test "$@" ;;
e2e) shift; cmd_e2e "$@" ;;
vectors) shift; cmd_vectors "$@" ;;
*)
	echo "usage: $0 venv|test|e2e|vectors [pytest args]" >&2
	exit 2
	;;
esac
