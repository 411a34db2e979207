#!/usr/bin/env bash
# The Open edX compatibility tier: the Open edX tables made by the real Django
# migrations (openedx-authz, casbin-django-orm-adapter, django-waffle, django-config-models and
# our own stand-ins for edx-platform's student / course_overviews / waffle_utils apps, compat/),
# the Go binary run on them unchanged, and openedx-authz's own API checked against what it wrote.
#
#   scripts/compat.sh venv              Python 3.12 venv at .cache/compat/venv from
#                                       compat/requirements.txt (reused while the requirements and
#                                       the interpreter are unchanged)
#   scripts/compat.sh migrate URL       drop/create that database, run `manage.py migrate` and
#                                       openedx-authz's `load_policies` (as a deployment does)
#   scripts/compat.sh schema URL        print its schema (SQLite: sqlite_master SQL; MariaDB:
#                                       SHOW CREATE TABLE of every table)
#   scripts/compat.sh dumps             migrate a fresh SQLite file and MariaDB database and write
#                                       .cache/compat/schema-{sqlite,mariadb}.sql
#   scripts/compat.sh manage URL ARGS   run compat/manage.py ARGS against URL
#   scripts/compat.sh test [ARGS]       venv + Go binary + MariaDB + Kafka, then pytest
#                                       (compat/tests) on SQLite and on MariaDB; ARGS go to pytest
#
# URL is sqlite:////abs/path.db or mysql://user:pass@host:port/dbname. MariaDB databases are
# created CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci (case-insensitive, as Open edX's
# MySQL compares; override with COMPAT_MYSQL_CHARSET / COMPAT_MYSQL_COLLATION).
#
# On a fresh Debian machine (as root) the script installs what it needs itself: the MariaDB
# client headers and pkg-config that mysqlclient builds against.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPAT="$ROOT/compat"
CACHE="$ROOT/.cache/compat"
VENV="$CACHE/venv"
STAMP="$VENV/.requirements-stamp"
PIP_CACHE="$ROOT/.cache/pip"
PY="$VENV/bin/python"

log() { printf 'compat: %s\n' "$*" >&2; }
die() { printf 'compat: ERROR: %s\n' "$*" >&2; exit 1; }

is_312() { "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' >/dev/null 2>&1; }

find_python() {
	local cand root
	for cand in "${COMPAT_PYTHON:-}" python3.12; do
		[ -n "$cand" ] || continue
		if command -v "$cand" >/dev/null 2>&1 && is_312 "$cand"; then
			command -v "$cand"
			return 0
		fi
	done
	root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
	for cand in $(ls -d "$root"/versions/3.12*/bin/python3.12 2>/dev/null | sort -V -r) /usr/bin/python3.12 /usr/local/bin/python3.12; do
		if [ -x "$cand" ] && is_312 "$cand"; then
			echo "$cand"
			return 0
		fi
	done
	die "no Python 3.12 found (set COMPAT_PYTHON=/path/to/python3.12)"
}

# Debian packages mysqlclient builds against; installed when missing and we are root.
ensure_build_deps() {
	local missing=()
	command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
	pkg-config --exists mariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null || missing+=(libmariadb-dev)
	command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
	[ "${#missing[@]}" -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		die "mysqlclient needs ${missing[*]} (Debian packages); install them and retry"
	fi
	log "installing ${missing[*]} (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
		apt-get update >/dev/null
		apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

stamp_of() {
	{
		"$1" -c 'import sys; print(sys.version, sys.executable)'
		cat "$COMPAT/requirements.txt"
	} | sha256sum | cut -d' ' -f1
}

cmd_venv() {
	local py want
	py="$(find_python)"
	want="$(stamp_of "$py")"
	if [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
		log "venv up to date ($VENV)"
		return 0
	fi
	ensure_build_deps
	log "creating $VENV with $py"
	rm -rf "$VENV"
	mkdir -p "$CACHE" "$PIP_CACHE"
	"$py" -m venv "$VENV"
	local pip=("$PY" -m pip --disable-pip-version-check --cache-dir "$PIP_CACHE")
	"${pip[@]}" install --quiet -r "$COMPAT/requirements.txt"
	"${pip[@]}" check
	echo "$want" >"$STAMP"
	log "venv ready: $("$PY" --version), openedx-authz $("$PY" -c 'import openedx_authz; print(openedx_authz.__version__)')"
}

manage() { # URL ARGS...
	local url="$1"
	shift
	(cd "$COMPAT" && COMPAT_DB_URL="$url" "$PY" manage.py "$@")
}

cmd_migrate() { # URL
	[ $# -eq 1 ] || die "usage: $0 migrate URL"
	cmd_venv
	(cd "$COMPAT" && "$PY" dbtool.py reset "$1")
	manage "$1" migrate --noinput -v 0
	# As an Open edX deployment does after migrating: openedx-authz's role definitions (p/g2 rules).
	manage "$1" load_policies -v 0
	log "migrated $1 (and loaded openedx-authz's policies)"
}

cmd_schema() { # URL
	[ $# -eq 1 ] || die "usage: $0 schema URL"
	cmd_venv >/dev/null 2>&1 || cmd_venv
	(cd "$COMPAT" && "$PY" dbtool.py schema "$1")
}

mysql_base_url() {
	if [ -z "${AUTHZ_TEST_MYSQL_URL:-}" ]; then
		bash "$ROOT/scripts/services.sh" start mysql >&2
		eval "$(bash "$ROOT/scripts/services.sh" env)"
	fi
	[ -n "${AUTHZ_TEST_MYSQL_URL:-}" ] || die "no MariaDB: run 'bash scripts/services.sh start' first"
	local u="${AUTHZ_TEST_MYSQL_URL%/}"
	# keep scheme://user:pass@host:port, drop any database name
	case "$u" in
	*://*/*) u="${u%/*}" ;;
	esac
	echo "$u"
}

cmd_dumps() {
	cmd_venv
	mkdir -p "$CACHE"
	local sq="sqlite:///$CACHE/schema-ref.db" my
	cmd_migrate "$sq"
	cmd_schema "$sq" >"$CACHE/schema-sqlite.sql.tmp"
	mv "$CACHE/schema-sqlite.sql.tmp" "$CACHE/schema-sqlite.sql"
	log "wrote $CACHE/schema-sqlite.sql"
	my="$(mysql_base_url)/compat_schema_ref"
	cmd_migrate "$my"
	cmd_schema "$my" >"$CACHE/schema-mariadb.sql.tmp"
	mv "$CACHE/schema-mariadb.sql.tmp" "$CACHE/schema-mariadb.sql"
	log "wrote $CACHE/schema-mariadb.sql"
}

run_pytest() { # label, env..., -- pytest args
	local rc=0
	(cd "$COMPAT" && "$PY" -m pytest "$@") || rc=$?
	if [ "$rc" -eq 5 ]; then
		log "pytest collected no tests: failing"
		return 1
	fi
	return "$rc"
}

cmd_test() {
	cmd_venv
	command -v go >/dev/null 2>&1 || die "go not on PATH"
	log "building bin/consumer"
	(cd "$ROOT" && go build -o bin/consumer ./cmd/consumer)
	export AUTHZ_CONSUMER_BIN="$ROOT/bin/consumer"

	bash "$ROOT/scripts/services.sh" start mysql >&2
	eval "$(bash "$ROOT/scripts/services.sh" env)"
	bash "$ROOT/scripts/kafka.sh" start >&2
	eval "$(bash "$ROOT/scripts/kafka.sh" env)"
	export AUTHZ_TEST_MYSQL_URL AUTHZ_TEST_KAFKA_BROKERS

	local rc_sqlite=0 rc_mysql=0
	log "pytest on SQLite"
	COMPAT_BACKEND=sqlite run_pytest tests -p no:cacheprovider "$@" || rc_sqlite=$?
	log "pytest on MariaDB"
	COMPAT_BACKEND=mysql run_pytest tests -p no:cacheprovider "$@" || rc_mysql=$?
	log "SQLite: exit $rc_sqlite; MariaDB: exit $rc_mysql"
	[ "$rc_sqlite" -eq 0 ] && [ "$rc_mysql" -eq 0 ]
}

case "${1:-}" in
venv) cmd_venv ;;
migrate) shift; cmd_migrate "$@" ;;
schema) shift; cmd_schema "$@" ;;
dumps) cmd_dumps ;;
manage) shift; url="${1:?usage: $0 manage URL ARGS}"; shift; cmd_venv >&2; manage "$url" "$@" ;;
test) shift; cmd_test "$@" ;;
*)
	sed -n '2,25p' "$0" >&2
	exit 2
	;;
esac
