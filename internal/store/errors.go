package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	sqlite "github.com/glebarez/go-sqlite"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// Transient reports whether err, returned by a database call, may go away
// when the same work is tried again later: the database could not be
// reached or dropped the connection, is shutting down, refuses new
// connections or writes for now (too many connections, read-only during a
// failover, the account locked or its credentials being rotated), or rolled
// the work back because of
// another session (deadlock, lock wait timeout, serialization failure, SQLite
// busy or locked). Everything else, such as a syntax error, a constraint
// violation or a missing table or column, is permanent: the same statement
// fails the same way every time.
//
// It decides by the drivers' error types and codes (go-sql-driver/mysql,
// pgx, glebarez/go-sqlite), never by message text. A typed database error
// decides alone, whatever else the chain holds.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var (
		myErr  *mysql.MySQLError
		pgErr  *pgconn.PgError
		litErr *sqlite.Error
		netErr net.Error
	)
	switch {
	case errors.As(err, &myErr):
		return mysqlTransient[myErr.Number]
	case errors.As(err, &pgErr):
		return postgresTransient(pgErr.Code)
	case errors.As(err, &litErr):
		// Extended codes (SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED_SHAREDCACHE, ...)
		// carry the primary code in their low byte.
		code := litErr.Code() & 0xff
		return code == sqliteBusy || code == sqliteLocked
	}
	var connect *pgconn.ConnectError
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.As(err, &connect) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.As(err, &netErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

// SQLite primary result codes (sqlite3.h).
const (
	sqliteBusy   = 5 // another connection holds the write lock
	sqliteLocked = 6 // a table is locked by this connection or a shared cache
)

// mysqlTransient are the MySQL/MariaDB error numbers worth a retry.
var mysqlTransient = map[uint16]bool{
	// Refused at login: for a service that logged in at start, the account
	// being locked, its password rotated or its grants being redone is the
	// database unavailable for a while, not a property of the event.
	1044: true, // ER_DBACCESS_DENIED_ERROR
	1045: true, // ER_ACCESS_DENIED_ERROR
	1129: true, // ER_HOST_IS_BLOCKED (too many connection errors; FLUSH HOSTS)
	3118: true, // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
	4151: true, // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB)

	1040: true, // ER_CON_COUNT_ERROR: too many connections
	1053: true, // ER_SERVER_SHUTDOWN
	1203: true, // ER_TOO_MANY_USER_CONNECTIONS (max_user_connections)
	1205: true, // ER_LOCK_WAIT_TIMEOUT
	1213: true, // ER_LOCK_DEADLOCK
	1226: true, // ER_USER_LIMIT_REACHED (an account's MAX_USER_CONNECTIONS)
	1290: true, // ER_OPTION_PREVENTS_STATEMENT: --read-only (a replica during failover)
	1836: true, // ER_READ_ONLY_MODE
	1927: true, // ER_CONNECTION_KILLED (MariaDB: KILL CONNECTION during a statement)
	2006: true, // CR_SERVER_GONE_ERROR (reported by proxies)
	2013: true, // CR_SERVER_LOST (reported by proxies)
}

// postgresTransient reports whether a SQLSTATE is worth a retry.
func postgresTransient(code string) bool {
	switch code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"55P03", // lock_not_available (lock_timeout)
		"53300", // too_many_connections
		"57P01", // admin_shutdown (pg_terminate_backend, a restart)
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now (starting up, recovering)
		"25006": // read_only_sql_transaction (a standby during failover)
		return true
	}
	// 08: connection_exception. 28: invalid_authorization_specification,
	// refused at login (a role set NOLOGIN, a password rotated), which for a
	// service that logged in at start is the database unavailable for a while.
	return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "28")
}
