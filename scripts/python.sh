#!/usr/bin/env bash
# The Python producer plugin (python/): its virtual environments, tests and end-to-end test.
#
# Two pinned environments (python/README.md, "Supported versions"):
#   main  Python 3.12, python/requirements-test.txt (edx-platform master's pins)  -> python/.venv
#   min   Python 3.11, python/requirements-min.txt  (the tested lower bound)      -> python/.venv-min
#
#   scripts/python.sh venv      create python/.venv from python/requirements-test.txt (reused while
#                               the requirements, pyproject.toml and interpreter are unchanged)
#   scripts/python.sh venv-min  the same for python/.venv-min from python/requirements-min.txt
#   scripts/python.sh test      unit tests (pytest-django, SQLite) on main; no tests collected = failure
#   scripts/python.sh test-min  the same unit tests on min
#   scripts/python.sh e2e       end-to-end on main: plugin -> edx-event-bus-kafka -> real Kafka broker +
#                               schema registry -> captured message checked against the Go decoder
#   scripts/python.sh vectors   regenerate schemas/testdata/vectors.json with the real serializers (main)
#   scripts/python.sh coinstall pip's resolver (dry run, needs PyPI): the plugin with its kafka extra
#                               installs next to openedx-authz (AUTHZ_COINSTALL, default
#                               openedx-authz==1.35.0) under requirements-test.txt's pins
#
# Interpreters: main takes AUTHZ_PYTHON, else python3.12 on PATH, else
# $(pyenv root)/versions/3.12*/bin/python3.12; min takes AUTHZ_PYTHON_MIN, else python3.11, else
# $(pyenv root)/versions/3.11*/bin/python3.11. Each must be exactly that minor version.
#
# Extra arguments after test/test-min/e2e go to pytest (e.g. scripts/python.sh test -k schema).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY_DIR="$ROOT/python"
PIP_CACHE="$ROOT/.cache/pip"

log() { printf 'python.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The environment of a flavour: sets PY_WANT (minor version), PY_ENV_VAR, REQS, VENV.
flavour() {
	case "$1" in
	main) PY_WANT=3.12 PY_ENV_VAR=AUTHZ_PYTHON REQS="$PY_DIR/requirements-test.txt" VENV="$PY_DIR/.venv" ;;
	min) PY_WANT=3.11 PY_ENV_VAR=AUTHZ_PYTHON_MIN REQS="$PY_DIR/requirements-min.txt" VENV="$PY_DIR/.venv-min" ;;
	*) die "unknown environment $1" ;;
	esac
}

# The interpreter's own path if it runs and is Python $want exactly; nothing otherwise.
python_path() {
	local cand="$1" want="$2"
	"$cand" -c "import sys; v = '%d.%d' % sys.version_info[:2]; sys.exit(0 if v == '$want' else 1)" \
		2>/dev/null || return 1
	"$cand" -c 'import sys; print(sys.executable)'
}

# Prints the Python $PY_WANT interpreter to build the venv with, or fails saying where it looked.
find_python() {
	local want="$PY_WANT" explicit="${!PY_ENV_VAR:-}" cand root found
	if [ -n "$explicit" ]; then
		python_path "$explicit" "$want" && return 0
		die "$PY_ENV_VAR=$explicit is not a working Python $want"
	fi
	local cands=("python$want")
	root="$(pyenv root 2>/dev/null || true)"
	if [ -n "$root" ]; then
		# newest patch release first
		while IFS= read -r found; do
			cands+=("$found")
		done < <(ls -d "$root"/versions/"$want"*/bin/python"$want" 2>/dev/null | sort -rV)
	fi
	for cand in "${cands[@]}"; do
		python_path "$cand" "$want" && return 0
	done
	die "no Python $want found (tried ${cands[*]}); install it (e.g. pyenv install $want) or set $PY_ENV_VAR=/path/to/python$want"
}

stamp_of() {
	local py="$1"
	{
		"$py" -c 'import sys; print(sys.version)'
		cat "$REQS" "$PY_DIR/pyproject.toml"
	} | sha256sum | cut -d' ' -f1
}

# Creates (or reuses) the venv of flavour $1.
make_venv() {
	flavour "$1"
	local py want stamp="$VENV/.requirements-stamp"
	py="$(find_python)"
	want="$(stamp_of "$py")"
	if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		log "venv up to date ($VENV, $("$VENV/bin/python" --version))"
		return 0
	fi
	log "creating $VENV with $py"
	rm -rf "$VENV"
	"$py" -m venv "$VENV"
	mkdir -p "$PIP_CACHE"
	local pip=("$VENV/bin/python" -m pip --disable-pip-version-check --cache-dir "$PIP_CACHE")
	"${pip[@]}" install --quiet -r "$REQS"
	# The plugin itself, editable; its dependencies are already pinned above.
	"${pip[@]}" install --quiet --no-deps --no-build-isolation -e "$PY_DIR"
	"${pip[@]}" check
	echo "$want" >"$stamp"
	log "venv ready: $("$VENV/bin/python" --version) ($VENV)"
}

cmd_venv() { make_venv main; }
cmd_venv_min() { make_venv min; }

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
	make_venv main
	run_pytest tests "$@"
}

cmd_test_min() {
	make_venv min
	run_pytest tests "$@"
}

cmd_vectors() {
	make_venv main
	(cd "$PY_DIR" && "$VENV/bin/python" tools/make_vectors.py "$ROOT/schemas/testdata/vectors.json")
}

# A dry run of pip's resolver: can the plugin (with edx-event-bus-kafka and confluent-kafka) be
# installed into an LMS that has edx-platform master's pins and openedx-authz? Nothing is installed.
cmd_coinstall() {
	make_venv main
	local spec="${AUTHZ_COINSTALL:-openedx-authz==1.35.0}" tmp
	tmp="$(mktemp -d)"
	# pip constraints take no extras: drop them from the pins.
	sed 's/\[[^]]*\]//' "$REQS" >"$tmp/constraints.txt"
	log "resolving $PY_DIR[kafka] + $spec under $(basename "$REQS")'s pins (dry run)"
	local rc=0
	"$VENV/bin/python" -m pip --disable-pip-version-check --cache-dir "$PIP_CACHE" install --dry-run \
		--ignore-installed --quiet --report "$tmp/report.json" -c "$tmp/constraints.txt" "$PY_DIR[kafka]" $spec || rc=$?
	if [ "$rc" -ne 0 ]; then
		rm -rf "$tmp"
		log "the plugin cannot be installed next to $spec with these pins"
		return "$rc"
	fi
	"$VENV/bin/python" - "$tmp/report.json" <<'PY'
import json, sys
got = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
       for i in json.load(open(sys.argv[1]))["install"]}
keys = ["openedx-authz-flag-events", "openedx-authz", "openedx-events", "django", "edx-event-bus-kafka",
        "confluent-kafka", "edx-opaque-keys", "edx-django-utils", "fastavro", "attrs"]
print("coinstall: resolves (%d packages): %s" % (len(got), ", ".join(f"{k} {got[k]}" for k in keys if k in got)))
PY
	rm -rf "$tmp"
}

# The end-to-end test needs a Kafka broker (scripts/kafka.sh start) and a schema registry: the
# Go dev-registry is started here unless AUTHZ_TEST_SCHEMA_REGISTRY_URL names one. The consumed
# messages land in AUTHZ_E2E_CAPTURED (default .cache/python-e2e/captured.json), in the test
# vector format, for the Go decoder.
cmd_e2e() {
	make_venv main
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
venv-min) shift; cmd_venv_min "$@" ;;
test) shift; cmd_test "$@" ;;
test-min) shift; cmd_test_min "$@" ;;
e2e) shift; cmd_e2e "$@" ;;
vectors) shift; cmd_vectors "$@" ;;
coinstall) shift; cmd_coinstall "$@" ;;
*)
	echo "usage: $0 venv|venv-min|test|test-min|e2e|vectors|coinstall [pytest args]" >&2
	exit 2
	;;
esac
