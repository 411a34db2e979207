#!/usr/bin/env bash
# The Tutor plugin (python/tutor/) and the wheels of both Python packages.
#
#   scripts/tutor.sh venv       python/tutor/.venv: Python 3.12, python/tutor/requirements-test.txt
#                               (tutor 22.0.3), the plugin installed from its wheel
#   scripts/tutor.sh venv-min   python/tutor/.venv-min: the same with requirements-min.txt (tutor 20.0.0)
#   scripts/tutor.sh wheels     build the producer (python/) and plugin (python/tutor/) wheels into
#                               .cache/wheels, install each into a clean venv with its dependencies
#                               from PyPI, check its metadata (version, classifiers, Project-URL,
#                               entry points) with importlib.metadata
#   scripts/tutor.sh test       pytest on .venv: `tutor config save` renders for local and k8s; then
#                               every rendered root (.cache/tutor-check/main/<case>) is checked:
#                               the compose files load with compose-go (as `docker compose config`),
#                               the k8s manifests pass kubeconform -strict
#   scripts/tutor.sh test-min   the same on .venv-min (tutor 20.0.0)
#   scripts/tutor.sh check      wheels, test and test-min (the step of scripts/test.sh)
#
# Interpreter: AUTHZ_PYTHON, else python3.12 on PATH, else $(pyenv root)/versions/3.12*/bin/python3.12.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TUTOR_DIR="$ROOT/python/tutor"
CACHE="$ROOT/.cache"
PIP_CACHE="$CACHE/pip"
WHEELS="$CACHE/wheels"
REPO_URL="https://github.com/openedx/authz-flag-consumer"

log() { printf 'tutor.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

find_python() {
	local cand
	local cands=(${AUTHZ_PYTHON:-} python3.12)
	local root
	root="$(pyenv root 2>/dev/null || true)"
	[ -n "$root" ] && cands+=($(ls -d "$root"/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV))
	for cand in "${cands[@]}"; do
		if "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
			"$cand" -c 'import sys; print(sys.executable)'
			return 0
		fi
	done
	die "no Python 3.12 found (tried ${cands[*]}); install it (pyenv install 3.12) or set AUTHZ_PYTHON"
}

pip_in() { "$1/bin/python" -m pip --disable-pip-version-check --cache-dir "$PIP_CACHE" "${@:2}"; }

# build_wheel SRC_DIR: the wheel of the project in SRC_DIR, built with the tools of the main venv
# (build, setuptools pinned in requirements-test.txt; no isolation, so no unpinned download).
build_wheel() {
	local src="$1" tools="$TUTOR_DIR/.venv"
	mkdir -p "$WHEELS"
	rm -rf "$src/build" "$src"/*.egg-info
	"$tools/bin/python" -m build --wheel --no-isolation --outdir "$WHEELS" "$src" >"$CACHE/wheel-build.log" 2>&1 ||
		{ cat "$CACHE/wheel-build.log" >&2; die "building the wheel of $src failed"; }
	rm -rf "$src/build" "$src"/*.egg-info
}

plugin_wheel() {
	local version
	version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$TUTOR_DIR/tutor_authz_consumer/__init__.py")"
	echo "$WHEELS/tutor_contrib_authz_consumer-$version-py3-none-any.whl"
}

# make_venv main|min: the test venv with the plugin installed from its wheel (what users install).
make_venv() {
	local flavour="$1" venv reqs stamp py want
	case "$flavour" in
	main) venv="$TUTOR_DIR/.venv" reqs="$TUTOR_DIR/requirements-test.txt" ;;
	min) venv="$TUTOR_DIR/.venv-min" reqs="$TUTOR_DIR/requirements-min.txt" ;;
	esac
	py="$(find_python)"
	want="$({ "$py" --version; cat "$reqs"; } | sha256sum | cut -d' ' -f1)"
	stamp="$venv/.requirements-stamp"
	if ! [ -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
		log "creating $venv with $py"
		rm -rf "$venv"
		"$py" -m venv "$venv"
		pip_in "$venv" install --quiet -r "$reqs"
		echo "$want" >"$stamp"
	fi
	# The plugin is rebuilt every time: it is small and the tests must see the current code.
	[ -x "$TUTOR_DIR/.venv/bin/python" ] || make_venv main
	build_wheel "$TUTOR_DIR"
	pip_in "$venv" install --quiet --no-deps --force-reinstall "$(plugin_wheel)"
	pip_in "$venv" check >/dev/null || { pip_in "$venv" check; die "$venv: broken requirements"; }
	log "venv ready: $venv ($("$venv/bin/tutor" --version 2>/dev/null))"
	VENV="$venv"
}

# The AUTHZ_CONSUMER_* variables of `consumer run`, one a line, from the binary's own help.
consumer_env_names() {
	local out="$CACHE/tutor-check/consumer-env.txt"
	mkdir -p "$(dirname "$out")"
	(cd "$ROOT" && go run ./cmd/consumer run --help) | grep -o 'env AUTHZ_CONSUMER_[A-Z_]*' | cut -d' ' -f2 | sort -u >"$out"
	[ -s "$out" ] || die "no AUTHZ_CONSUMER_* variables in 'consumer run --help'"
	echo "$out"
}

# Tools of the checks on the rendered output: compose-go's loader and kubeconform.
check_tools() {
	"$ROOT/scripts/tools.sh"
	eval "$("$ROOT/scripts/tools.sh" env)"
	mkdir -p "$CACHE/bin"
	(cd "$ROOT/test/deploycheck" && go build -o "$CACHE/bin/composeconfig" ./cmd/composeconfig)
}

run_tests() {
	local flavour="$1"
	make_venv "$flavour"
	local env_names out="$CACHE/tutor-check/$flavour"
	env_names="$(consumer_env_names)"
	rm -rf "$out"
	mkdir -p "$out"
	local rc=0
	(cd "$TUTOR_DIR" && AUTHZ_TUTOR_OUT="$out" AUTHZ_TUTOR_CONSUMER_ENV="$env_names" \
		"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests) || rc=$?
	[ "$rc" -eq 5 ] && die "pytest collected no tests"
	[ "$rc" -eq 0 ] || return "$rc"

	check_tools
	local root n=0 fail=0
	for root in "$out"/*/; do
		root="${root%/}"
		local name
		name="$(basename "$root")"
		# tutor local runs docker-compose.yml with docker-compose.prod.yml; jobs run from docker-compose.jobs.yml.
		if (cd "$root/env/local" && "$CACHE/bin/composeconfig" -project "tutor-$name" \
			-f docker-compose.yml -f docker-compose.prod.yml >"$root/compose-config.yml" &&
			"$CACHE/bin/composeconfig" -project "tutor-$name-jobs" -f docker-compose.yml -f docker-compose.prod.yml \
				-f docker-compose.jobs.yml >/dev/null); then
			log "ok    [$flavour/$name] compose files load (compose-go): $(grep -c '^  [a-z][a-z0-9-]*:$' "$root/compose-config.yml") services"
		else
			log "FAIL  [$flavour/$name] compose files do not load"
			fail=$((fail + 1))
		fi
		local kc
		if kc="$(kubeconform -strict -summary -output text -kubernetes-version "$AUTHZ_K8S_VERSION" \
			-schema-location "$AUTHZ_KUBECONFORM_SCHEMA_LOCATION" "$root"/env/k8s/*.yml 2>&1)"; then
			log "ok    [$flavour/$name] kubeconform -strict env/k8s: $(tail -n 1 <<<"$kc")"
		else
			log "FAIL  [$flavour/$name] kubeconform -strict env/k8s"
			printf '%s\n' "$kc" | sed 's/^/      /' >&2
			fail=$((fail + 1))
		fi
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || die "no rendered roots in $out"
	[ "$fail" -eq 0 ] || die "$fail check(s) of the rendered output failed"
	log "$flavour: $n rendered roots checked"
}

# check_wheel WHEEL DIST: install WHEEL with its dependencies into a clean venv and check its metadata.
check_wheel() {
	local whl="$1" dist="$2" venv="$CACHE/wheel-venvs/$2"
	rm -rf "$venv"
	"$(find_python)" -m venv "$venv"
	pip_in "$venv" install --quiet "$whl" || die "$whl does not install into a clean venv"
	pip_in "$venv" check >/dev/null || { pip_in "$venv" check; die "$dist: broken requirements"; }
	"$venv/bin/python" - "$dist" "$REPO_URL" <<'PY'
import importlib.metadata as md
import sys

dist, repo = sys.argv[1], sys.argv[2]
m = md.metadata(dist)
problems = []
version = m["Version"]
if not version or version.startswith("0.0"):
    problems.append(f"version {version!r}")
classifiers = m.get_all("Classifier") or []
for want in ("Programming Language :: Python :: 3.11", "Programming Language :: Python :: 3.12"):
    if want not in classifiers:
        problems.append(f"classifier {want!r} missing")
urls = dict(u.split(", ", 1) for u in (m.get_all("Project-URL") or []))
if "Homepage" not in urls or "Source" not in urls:
    problems.append(f"Homepage/Source URLs missing: {urls}")
for label, url in urls.items():
    if not url.startswith(repo) or "<" in url:
        problems.append(f"Project-URL {label} {url!r} is not this repository")
if not m["Requires-Python"]:
    problems.append("no Requires-Python")
if not (m["License"] or m.get_all("License-Expression")):
    problems.append("no license")
readme = m.get_payload() or ""
if "this repository's URL" in readme or "<this" in readme:
    problems.append("placeholder in the README")
eps = {(e.group, e.name): e.value for e in md.distribution(dist).entry_points}
print(f"wheel {dist} {version}: Requires-Python {m['Requires-Python']}; "
      f"{len(classifiers)} classifiers; Project-URL {', '.join(f'{k}={v}' for k, v in urls.items())}; "
      f"entry points {sorted(f'{g}:{n}' for g, n in eps)}")
if problems:
    sys.exit(f"{dist}: " + "; ".join(problems))
PY
}

cmd_wheels() {
	make_venv main >/dev/null
	rm -f "$WHEELS"/openedx_authz_flag_events-*.whl
	build_wheel "$ROOT/python"
	local producer
	producer="$(ls "$WHEELS"/openedx_authz_flag_events-*.whl)"
	check_wheel "$producer" openedx-authz-flag-events
	# The producer's entry points are what the LMS/CMS load it by.
	"$CACHE/wheel-venvs/openedx-authz-flag-events/bin/python" - <<'PY'
import importlib.metadata as md
eps = {(e.group, e.name, e.value) for e in md.distribution("openedx-authz-flag-events").entry_points}
want = {("lms.djangoapp", "authz_flag_events", "authz_flag_events.apps:AuthzFlagEventsConfig"),
        ("cms.djangoapp", "authz_flag_events", "authz_flag_events.apps:AuthzFlagEventsConfig")}
assert want <= eps, eps
PY
	check_wheel "$(plugin_wheel)" tutor-contrib-authz-consumer
	# Installed from its wheel, tutor finds the plugin.
	"$CACHE/wheel-venvs/tutor-contrib-authz-consumer/bin/tutor" plugins list 2>/dev/null | grep -E '^authz_consumer[[:space:]]' >&2 ||
		die "tutor does not list the plugin installed from its wheel"
	ls -l "$WHEELS"/*.whl >&2
}

case "${1:-}" in
venv) make_venv main ;;
venv-min) make_venv min ;;
wheels) cmd_wheels ;;
test) run_tests main ;;
test-min) run_tests min ;;
check)
	cmd_wheels
	run_tests main
	run_tests min
	;;
*)
	echo "usage: $0 venv|venv-min|wheels|test|test-min|check" >&2
	exit 2
	;;
esac
