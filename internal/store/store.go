// Package store opens the database and owns the table definitions: the Open
// edX tables (created only for the embedded default and tests, checked
// read-only in production) and the service's own authz_consumer_* tables.
package store

import (
	"context"
	"errors"

	"gorm.io/gorm"
)

// Dialect names the database family.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	MySQL    Dialect = "mysql"
	Postgres Dialect = "postgres"
)

// DB is an open database.
type DB struct {
	Gorm    *gorm.DB
	Dialect Dialect
	URL     string // with the password masked
}

// Open connects to url (sqlite:///path, mysql://..., postgres://...) and pings it.
func Open(ctx context.Context, url string) (*DB, error) { return nil, errors.New("not implemented yet") }
