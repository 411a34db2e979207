package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrorKind is what a database error means for the work that got it.
type ErrorKind int

const (
	// ErrOther is every error below: a syntax error, a constraint other
	// than a unique key, a missing table or column, or no database error
	// at all. Permanent: the same statement fails the same way every time.
	ErrOther ErrorKind = iota
	// ErrDuplicate: a unique key already holds the value. Permanent.
	ErrDuplicate
	// ErrLockWait: a lock wait timed out (MySQL's innodb_lock_wait_timeout,
	// PostgreSQL's lock_timeout). Transient, as every kind below.
	ErrLockWait
	// ErrDeadlock: the server rolled the transaction back to break a
	// deadlock with another session.
	ErrDeadlock
	// ErrSerialization: a serializable or repeatable-read transaction
	// conflicted with a concurrent one (PostgreSQL).
	ErrSerialization
	// ErrBusy: SQLite's write lock or a table is held by another
	// connection (SQLITE_BUSY, SQLITE_LOCKED).
	ErrBusy
	// ErrConnection: the connection could not be made, was lost or killed,
	// or the server is shutting down.
	ErrConnection
	// ErrUnavailable: the server refuses work for now: too many
	// connections, read-only during a failover, the account locked or its
	// login refused (for a service that logged in at start, credentials
	// being rotated or grants redone).
	ErrUnavailable
	// ErrCanceled: the caller's context was cancelled or timed out.
	ErrCanceled
)

var kindNames = map[ErrorKind]string{
	ErrOther: "other", ErrDuplicate: "duplicate", ErrLockWait: "lock wait timeout", ErrDeadlock: "deadlock",
	ErrSerialization: "serialization failure", ErrBusy: "busy", ErrConnection: "connection",
	ErrUnavailable: "unavailable", ErrCanceled: "canceled",
}

func (k ErrorKind) String() string { return kindNames[k] }

// Transient reports whether work that failed with an error of this kind
// may succeed when tried again later.
func (k ErrorKind) Transient() bool { return k >= ErrLockWait }

// Transient reports whether err, returned by a database call, may go away
// when the same work is tried again later: the database could not be
// reached or dropped the connection, is shutting down, refuses new
// connections or writes for now (too many connections, read-only during a
// failover, the account locked or its credentials being rotated), or rolled
// the work back because of another session (deadlock, lock wait timeout,
// serialization failure, SQLite busy or locked). Everything else, such as
// a syntax error, a constraint violation or a missing table or column, is
// permanent: the same statement fails the same way every time.
func Transient(err error) bool { return Classify(err).Transient() }

// Classify says what err, returned by any of the service's database
// drivers, is; Driver.Classify is the same for one driver's errors.
//
// It decides by the drivers' error types and codes (go-sql-driver/mysql's
// MySQLError.Number, pgx's PgError SQLSTATE, glebarez/go-sqlite's result
// code), never by message text: every error worth telling apart carries a
// code or is a typed or sentinel error (lost connections), so no message
// is matched anywhere. A typed database error decides alone, whatever
// else the chain holds.
func Classify(err error) ErrorKind {
	for _, own := range []func(error) (ErrorKind, bool){classifyMySQL, classifyPostgres, classifySQLite} {
		if k, ok := own(err); ok {
			return k
		}
	}
	return classifyGeneric(err)
}

// classifyWith classifies err by the driver's own error codes, else as a
// connection or context error.
func classifyWith(own func(error) (ErrorKind, bool), err error) ErrorKind {
	if k, ok := own(err); ok {
		return k
	}
	return classifyGeneric(err)
}

// classifyGeneric classifies errors without a database error code: lost
// connections (typed and sentinel errors of database/sql, the drivers and
// the network) and the caller's context.
func classifyGeneric(err error) ErrorKind {
	if err == nil {
		return ErrOther
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return ErrCanceled
	}
	var (
		connect *pgconn.ConnectError
		netErr  net.Error
	)
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.As(err, &connect) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &netErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return ErrConnection
	}
	return ErrOther
}
