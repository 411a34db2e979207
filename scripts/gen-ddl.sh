#!/usr/bin/env bash
# Regenerate internal/store/ddl/{sqlite,mysql,postgres}.sql from databases built by the real
# Django migrations (the compat venv, see scripts/compat.sh), or, with `check`, regenerate into
# a temporary directory and fail when the committed files differ.
#
#   scripts/gen-ddl.sh          write the files
#   scripts/gen-ddl.sh check    compare only (used by the compatibility tier)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mode="${1:-write}"
bash scripts/compat.sh venv >&2
bash scripts/services.sh start >&2
eval "$(bash scripts/services.sh env)"
PY="$ROOT/.cache/compat/venv/bin/python"
"$PY" -c 'import psycopg' 2>/dev/null || "$PY" -m pip --disable-pip-version-check --cache-dir "$ROOT/.cache/pip" install --quiet 'psycopg[binary]==3.2.12' >&2
out="$ROOT/internal/store/ddl"
if [ "$mode" = check ]; then
	out="$(mktemp -d)"
	trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$ROOT/.cache/compat"
my="${AUTHZ_TEST_MYSQL_URL%/}"
pg="${AUTHZ_TEST_POSTGRES_URL%/*}"
"$PY" scripts/ddl/gen_ddl.py sqlite "sqlite:///$ROOT/.cache/compat/ddl.db" "$out/sqlite.sql"
"$PY" scripts/ddl/gen_ddl.py mysql "$my/authz_ddl" "$out/mysql.sql"
"$PY" scripts/ddl/gen_ddl.py postgres "$pg/authz_ddl" "$out/postgres.sql"
if [ "$mode" = check ]; then
	diff -u internal/store/ddl "$out" || { echo "gen-ddl: internal/store/ddl differs from what the migrations make (run scripts/gen-ddl.sh)" >&2; exit 1; }
	echo "gen-ddl: internal/store/ddl matches the real migrations (sqlite, mysql, postgres)"
fi
