#!/usr/bin/env bash
# Throwaway MariaDB and PostgreSQL servers on 127.0.0.1 for the service tier
# of the tests.
#
#   scripts/services.sh start [mysql|postgres]   install if missing, init, start, wait, create admin user
#   scripts/services.sh stop  [mysql|postgres]   stop (data kept, so the next start is fast)
#   scripts/services.sh reset [mysql|postgres]   stop and delete the data dirs
#   scripts/services.sh status                   say what runs
#   scripts/services.sh env                      print the export lines tests read
#
# Use:  scripts/services.sh start && eval "$(scripts/services.sh env)"
#
# Data lives in <repo>/.cache/services/{mariadb,postgres}. Ports default to
# 13306 (MariaDB) and 15432 (PostgreSQL); override with AUTHZ_SERVICES_MYSQL_PORT
# and AUTHZ_SERVICES_POSTGRES_PORT. The admin user on both is authz/authz and
# may create databases; tests create one database per test from it
# (internal/testenv).
#
# These servers are for tests only: durability is switched off (fsync=off,
# innodb_flush_log_at_trx_commit=2) to keep them fast.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/services"
MYSQL_PORT="${AUTHZ_SERVICES_MYSQL_PORT:-13306}"
PG_PORT="${AUTHZ_SERVICES_POSTGRES_PORT:-15432}"
ADMIN_USER=authz
ADMIN_PASS=authz
START_TIMEOUT="${AUTHZ_SERVICES_START_TIMEOUT:-90}" # seconds per server

MY_DIR="$CACHE/mariadb"
MY_DATA="$MY_DIR/data"
MY_PID="$MY_DIR/mariadbd.pid"
MY_LOG="$MY_DIR/mariadbd.log"

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# A unix socket path must stay under ~107 bytes; fall back to /tmp for deep checkouts.
sock_dir() { # name
	local d="$CACHE/$1/run"
	if [ "${#d}" -gt 80 ]; then
		d="/tmp/authz-services-$(id -u)-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)/$1"
	fi
	printf '%s' "$d"
}
MY_SOCK_DIR="$(sock_dir mariadb)"
MY_SOCK="$MY_SOCK_DIR/mysqld.sock"

# pid_alive PID: the process exists and is not a zombie (a killed server whose
# parent does not reap it still answers kill -0).
pid_alive() {
	[ -n "${1:-}" ] || return 1
	local st
	st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
	[ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

port_open() { # port
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---------------------------------------------------------------- apt helpers

APT_UPDATED=0
apt_install() { # packages...
	local sudo=""
	if ! is_root; then
		command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
		sudo="sudo"
	fi
	# Keep apt's postinst from starting a system server on the default port:
	# invoke-rc.d obeys policy-rc.d (exit 101 = do not start).
	local made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	local rc=0
	log "apt-get install $*"
	if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2; then
		if [ "$APT_UPDATED" = 0 ]; then
			log "install failed; apt-get update and retry"
			$sudo apt-get update -q >&2 || true
			APT_UPDATED=1
			$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 || rc=$?
		else
			rc=1
		fi
	fi
	if [ "$made_policy" = 1 ]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
	[ "$rc" = 0 ] || die "apt-get install $* failed"
}

# ------------------------------------------------------------------- MariaDB

my_bin() { # name candidates...
	local n
	for n in "$@"; do
		if command -v "$n" >/dev/null 2>&1; then command -v "$n"; return 0; fi
		if [ -x "/usr/sbin/$n" ]; then printf '/usr/sbin/%s' "$n"; return 0; fi
		if [ -x "/usr/bin/$n" ]; then printf '/usr/bin/%s' "$n"; return 0; fi
	done
	return 1
}

my_ensure_installed() {
	if my_bin mariadbd mysqld >/dev/null && my_bin mariadb mysql >/dev/null &&
		my_bin mariadb-install-db mysql_install_db >/dev/null; then
		return 0
	fi
	apt_install mariadb-server mariadb-client
	# Belt and braces: if a packaged server got started anyway, stop it.
	if [ -f /run/mysqld/mysqld.pid ] && kill -0 "$(cat /run/mysqld/mysqld.pid)" 2>/dev/null; then
		log "stopping the system MariaDB that apt started"
		kill "$(cat /run/mysqld/mysqld.pid)" || true
	fi
	my_bin mariadbd mysqld >/dev/null || die "mariadbd not found after install"
}

# The OS user the MariaDB socket-auth admin account maps to.
my_os_user() { id -un; }

my_client() { # args...
	"$(my_bin mariadb mysql)" --no-defaults --protocol=socket --socket="$MY_SOCK" -u"$(my_os_user)" "$@"
}

my_pid_alive() {
	[ -s "$MY_PID" ] && pid_alive "$(cat "$MY_PID")"
}

my_ping() {
	"$(my_bin mariadb-admin mysqladmin)" --no-defaults --protocol=socket --socket="$MY_SOCK" \
		-u"$(my_os_user)" --connect-timeout=2 ping >/dev/null 2>&1
}

my_start() {
	if my_pid_alive && my_ping; then
		local running_port
		running_port="$(cat "$MY_DIR/port" 2>/dev/null || true)"
		if [ -n "$running_port" ] && [ "$running_port" != "$MYSQL_PORT" ]; then
			die "MariaDB from $MY_DIR already runs on port $running_port, not $MYSQL_PORT; run scripts/services.sh stop first"
		fi
		log "MariaDB already running on 127.0.0.1:$MYSQL_PORT (pid $(cat "$MY_PID"))"
		return 0
	fi
	my_ensure_installed
	mkdir -p "$MY_DIR" "$MY_SOCK_DIR"
	if ! my_pid_alive; then
		# Stale pid file / socket from a crash or a machine that was reset.
		rm -f "$MY_PID" "$MY_SOCK" "$MY_SOCK.lock"
		if port_open "$MYSQL_PORT"; then
			die "127.0.0.1:$MYSQL_PORT is taken by another process (not our MariaDB); set AUTHZ_SERVICES_MYSQL_PORT"
		fi
	fi
	local userflag=()
	if is_root; then userflag=(--user=root); fi
	if [ ! -d "$MY_DATA/mysql" ]; then
		log "initialising MariaDB data dir $MY_DATA"
		rm -rf "$MY_DATA"
		mkdir -p "$MY_DATA"
		"$(my_bin mariadb-install-db mysql_install_db)" --no-defaults --datadir="$MY_DATA" "${userflag[@]}" \
			--auth-root-authentication-method=socket --auth-root-socket-user="$(my_os_user)" \
			--skip-test-db >"$MY_DIR/install-db.log" 2>&1 ||
			{ cat "$MY_DIR/install-db.log" >&2; rm -rf "$MY_DATA"; die "mariadb-install-db failed"; }
	fi
	local launched=""
	if ! my_pid_alive; then
		log "starting MariaDB on 127.0.0.1:$MYSQL_PORT"
		: >"$MY_LOG"
		setsid "$(my_bin mariadbd mysqld)" --no-defaults "${userflag[@]}" \
			--datadir="$MY_DATA" --pid-file="$MY_PID" --socket="$MY_SOCK" \
			--port="$MYSQL_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
			--log-error="$MY_LOG" --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
			--max-connections=300 --innodb-buffer-pool-size=256M \
			--innodb-flush-log-at-trx-commit=2 --sync-binlog=0 --skip-log-bin \
			</dev/null >>"$MY_LOG" 2>&1 &
		launched=$!
		echo "$MYSQL_PORT" >"$MY_DIR/port"
	fi
	local deadline=$((SECONDS + START_TIMEOUT))
	until my_ping; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			tail -n 30 "$MY_LOG" >&2 || true
			die "MariaDB did not accept connections within ${START_TIMEOUT}s (log: $MY_LOG)"
		fi
		if [ -n "$launched" ] && ! pid_alive "$launched"; then
			tail -n 30 "$MY_LOG" >&2 || true
			die "MariaDB exited during start (log: $MY_LOG)"
		fi
		sleep 0.2
	done
	my_client -e "
CREATE USER IF NOT EXISTS '$ADMIN_USER'@'%' IDENTIFIED BY '$ADMIN_PASS';
CREATE USER IF NOT EXISTS '$ADMIN_USER'@'localhost' IDENTIFIED BY '$ADMIN_PASS';
ALTER USER '$ADMIN_USER'@'%' IDENTIFIED BY '$ADMIN_PASS';
ALTER USER '$ADMIN_USER'@'localhost' IDENTIFIED BY '$ADMIN_PASS';
GRANT ALL PRIVILEGES ON *.* TO '$ADMIN_USER'@'%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$ADMIN_USER'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;" || die "could not create the MariaDB admin user"
	port_open "$MYSQL_PORT" || die "MariaDB answers on its socket but not on 127.0.0.1:$MYSQL_PORT"
	log "MariaDB ready on 127.0.0.1:$MYSQL_PORT (pid $(cat "$MY_PID"))"
}

my_stop() {
	if ! my_pid_alive; then
		rm -f "$MY_PID" "$MY_SOCK" "$MY_SOCK.lock"
		log "MariaDB not running"
		return 0
	fi
	local pid
	pid="$(cat "$MY_PID")"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 60))
	while pid_alive "$pid"; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "MariaDB did not stop in 60s; killing pid $pid"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	rm -f "$MY_PID" "$MY_SOCK" "$MY_SOCK.lock"
	log "MariaDB stopped"
}

my_status() {
	if my_pid_alive && my_ping; then echo "mariadb: running on 127.0.0.1:$MYSQL_PORT (pid $(cat "$MY_PID"))"; else echo "mariadb: stopped"; fi
}

# ---------------------------------------------------------------- PostgreSQL

pg_bindir() {
	local d
	if [ -n "${AUTHZ_SERVICES_PG_BIN:-}" ]; then printf '%s' "$AUTHZ_SERVICES_PG_BIN"; return 0; fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
			printf '%s' "$d"
			return 0
		fi
	done
	return 1
}

pg_ensure_installed() {
	pg_bindir >/dev/null && return 0
	apt_install postgresql
	pg_bindir >/dev/null || die "PostgreSQL server binaries not found after install"
}

# postgres refuses to run as root: as root we run it as the OS user "postgres"
# (created by the Debian package; created here when missing).
PG_OS_USER=""
pg_setup_user() {
	if ! is_root; then PG_OS_USER="$(id -un)"; return 0; fi
	PG_OS_USER="${AUTHZ_SERVICES_PG_OS_USER:-postgres}"
	if ! id "$PG_OS_USER" >/dev/null 2>&1; then
		log "creating system user $PG_OS_USER"
		useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
	fi
}

pg_run() { # cmd args... (as the postgres OS user)
	# From / so a checkout that user cannot enter does not produce warnings.
	if is_root; then (cd / && runuser -u "$PG_OS_USER" -- "$@"); else "$@"; fi
}

# The data dir must be reachable by the postgres OS user. A checkout under a
# directory that user cannot enter gets its PostgreSQL data under /tmp instead.
pg_dir() {
	local d="$CACHE/postgres"
	if is_root && id "${AUTHZ_SERVICES_PG_OS_USER:-postgres}" >/dev/null 2>&1; then
		mkdir -p "$CACHE"
		if ! runuser -u "${AUTHZ_SERVICES_PG_OS_USER:-postgres}" -- test -x "$CACHE"; then
			d="/tmp/authz-services-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)/postgres"
		fi
	fi
	printf '%s' "$d"
}

pg_paths() {
	PG_DIR="$(pg_dir)"
	PG_DATA="$PG_DIR/data"
	PG_LOG="$PG_DIR/postgres.log"
	PG_SOCK_DIR="$(sock_dir postgres)"
	case "$PG_DIR" in /tmp/*) PG_SOCK_DIR="$PG_DIR/run" ;; esac
}

pg_running() {
	local bindir
	bindir="$(pg_bindir)" || return 1
	[ -f "$PG_DATA/postmaster.pid" ] || return 1
	pid_alive "$(head -n 1 "$PG_DATA/postmaster.pid")" || return 1
	pg_run "$bindir/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

pg_ready() {
	"$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1
}

pg_psql() { # args... (superuser over the unix socket)
	pg_run "$(pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK_DIR" -p "$PG_PORT" -U postgres -d postgres "$@"
}

pg_start() {
	pg_paths
	pg_ensure_installed
	pg_setup_user
	local bindir
	bindir="$(pg_bindir)"
	if pg_running; then
		# Line 4 of postmaster.pid is the port the running server listens on.
		local running_port
		running_port="$(sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
		if [ -n "$running_port" ] && [ "$running_port" != "$PG_PORT" ]; then
			die "PostgreSQL from $PG_DATA already runs on port $running_port, not $PG_PORT; run scripts/services.sh stop first"
		fi
		if pg_ready; then
			log "PostgreSQL already running on 127.0.0.1:$PG_PORT"
			return 0
		fi
	fi
	mkdir -p "$PG_DIR" "$PG_SOCK_DIR"
	if is_root; then chown "$PG_OS_USER" "$PG_DIR" "$PG_SOCK_DIR"; fi
	if [ ! -f "$PG_DATA/PG_VERSION" ]; then
		log "initialising PostgreSQL data dir $PG_DATA ($bindir)"
		rm -rf "$PG_DATA"
		mkdir -p "$PG_DATA"
		if is_root; then chown "$PG_OS_USER" "$PG_DATA"; fi
		chmod 700 "$PG_DATA"
		pg_run "$bindir/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
			--encoding=UTF8 --locale=C.UTF-8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
			{ cat "$PG_DIR/initdb.log" >&2; rm -rf "$PG_DATA"; die "initdb failed"; }
	fi
	if ! pg_running; then
		# Stale lock files from a crash: postgres refuses to start on a live-looking pid.
		rm -f "$PG_DATA/postmaster.pid" "$PG_SOCK_DIR/.s.PGSQL.$PG_PORT" "$PG_SOCK_DIR/.s.PGSQL.$PG_PORT.lock"
		if port_open "$PG_PORT"; then
			die "127.0.0.1:$PG_PORT is taken by another process (not our PostgreSQL); set AUTHZ_SERVICES_POSTGRES_PORT"
		fi
		log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
		if is_root; then touch "$PG_LOG" && chown "$PG_OS_USER" "$PG_LOG"; fi
		pg_run "$bindir/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -s \
			-o "-p $PG_PORT -k $PG_SOCK_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
			start >/dev/null || { tail -n 30 "$PG_LOG" >&2 || true; die "pg_ctl start failed (log: $PG_LOG)"; }
	fi
	local deadline=$((SECONDS + START_TIMEOUT))
	until pg_ready && pg_psql -c 'select 1' >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			tail -n 30 "$PG_LOG" >&2 || true
			die "PostgreSQL did not accept connections within ${START_TIMEOUT}s (log: $PG_LOG)"
		fi
		sleep 0.2
	done
	pg_psql <<SQL || die "could not create the PostgreSQL admin user"
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ADMIN_USER') THEN
    CREATE ROLE $ADMIN_USER LOGIN SUPERUSER CREATEDB;
  END IF;
END
\$\$;
ALTER ROLE $ADMIN_USER WITH LOGIN SUPERUSER CREATEDB PASSWORD '$ADMIN_PASS';
SQL
	log "PostgreSQL ready on 127.0.0.1:$PG_PORT"
}

pg_stop() {
	pg_paths
	local bindir
	if ! bindir="$(pg_bindir)" || [ ! -f "$PG_DATA/PG_VERSION" ]; then
		log "PostgreSQL not running"
		return 0
	fi
	pg_setup_user
	if pg_running; then
		pg_run "$bindir/pg_ctl" -D "$PG_DATA" -s -m fast -t 60 stop || die "pg_ctl stop failed"
		log "PostgreSQL stopped"
	else
		rm -f "$PG_DATA/postmaster.pid"
		log "PostgreSQL not running"
	fi
}

pg_status() {
	pg_paths
	if [ -n "$(pg_bindir 2>/dev/null)" ] && [ -d "$PG_DATA" ]; then
		pg_setup_user
		if pg_running && pg_ready; then echo "postgres: running on 127.0.0.1:$PG_PORT"; return; fi
	fi
	echo "postgres: stopped"
}

# ---------------------------------------------------------------------- main

print_env() {
	echo "export AUTHZ_TEST_MYSQL_URL=mysql://$ADMIN_USER:$ADMIN_PASS@127.0.0.1:$MYSQL_PORT/"
	echo "export AUTHZ_TEST_POSTGRES_URL=postgres://$ADMIN_USER:$ADMIN_PASS@127.0.0.1:$PG_PORT/postgres"
}

which_ok() {
	case "${1:-all}" in all | mysql | postgres) ;; *) die "unknown service '$1' (mysql|postgres)" ;; esac
}

cmd="${1:-}"
svc="${2:-all}"
case "$cmd" in
start)
	which_ok "$svc"
	t0=$SECONDS
	if [ "$svc" != postgres ]; then my_start; fi
	if [ "$svc" != mysql ]; then pg_start; fi
	log "started in $((SECONDS - t0))s; use: eval \"\$(scripts/services.sh env)\""
	;;
stop)
	which_ok "$svc"
	if [ "$svc" != postgres ]; then my_stop; fi
	if [ "$svc" != mysql ]; then pg_stop; fi
	;;
reset)
	which_ok "$svc"
	if [ "$svc" != postgres ]; then my_stop; rm -rf "$MY_DIR" "$MY_SOCK_DIR"; fi
	if [ "$svc" != mysql ]; then pg_stop; pg_paths; rm -rf "$PG_DIR" "$PG_SOCK_DIR"; fi
	log "data removed"
	;;
status)
	my_status
	pg_status
	;;
env)
	print_env
	;;
*)
	echo "usage: $0 start|stop|reset|status|env [mysql|postgres]" >&2
	exit 2
	;;
esac
