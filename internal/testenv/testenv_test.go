package testenv_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/testenv"
)

func TestMySQLURLCreatesAndDropsDatabase(t *testing.T) {
	testenv.SkipShort(t, "the test servers, or their absence")
	var dbURL string
	ok := t.Run("use", func(t *testing.T) {
		dbURL = testenv.MySQLURL(t)
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		require.Equal(t, "mysql", u.Scheme)
		name := strings.TrimPrefix(u.Path, "/")
		require.True(t, strings.HasPrefix(name, testenv.DBPrefix), name)

		db := openMySQL(t, u)
		defer db.Close()
		ctx := context.Background()
		_, err = db.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, "INSERT INTO t VALUES (1, 'x')")
		require.NoError(t, err)
		var cur string
		require.NoError(t, db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&cur))
		require.Equal(t, name, cur)
	})
	if !ok {
		return
	}
	// The subtest's cleanup has run: the database is gone.
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/"
	db := openMySQL(t, u)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow(
		"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n))
	require.Zero(t, n, "database %s should have been dropped", name)
}

func TestPostgresURLCreatesAndDropsDatabase(t *testing.T) {
	testenv.SkipShort(t, "the test servers, or their absence")
	var dbURL string
	var leftOpen *sql.DB
	defer func() {
		if leftOpen != nil {
			leftOpen.Close()
		}
	}()
	ok := t.Run("use", func(t *testing.T) {
		dbURL = testenv.PostgresURL(t)
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		require.Equal(t, "postgres", u.Scheme)
		name := strings.TrimPrefix(u.Path, "/")
		require.True(t, strings.HasPrefix(name, testenv.DBPrefix), name)

		db, err := sql.Open("pgx", dbURL)
		require.NoError(t, err)
		// Left open past the drop on purpose: the drop must force out sessions a test forgot.
		leftOpen = db
		ctx := context.Background()
		_, err = db.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, "INSERT INTO t VALUES (1, 'x')")
		require.NoError(t, err)
		var cur string
		require.NoError(t, db.QueryRowContext(ctx, "SELECT current_database()").Scan(&cur))
		require.Equal(t, name, cur)
	})
	if !ok {
		return
	}
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	db, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM pg_database WHERE datname = $1", name).Scan(&n))
	require.Zero(t, n, "database %s should have been dropped", name)
}

func TestSQLiteURL(t *testing.T) {
	u := testenv.SQLiteURL(t)
	require.True(t, strings.HasPrefix(u, "sqlite:///"), u)
	require.True(t, strings.HasSuffix(u, "/test.db"), u)
}

func TestKafkaBrokersServeProduceAndConsume(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.KafkaTopic(t, "testenv")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}))

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	// Topic metadata may lag creation by a moment: retry until the deadline.
	for {
		err = w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("hello")})
		if err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	require.NoError(t, err)

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	require.NoError(t, err)
	require.Equal(t, "hello", string(m.Value))
}

// fakeTB records Fatalf and stops the goroutine like testing.T does.
type fakeTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func fatalMessage(t *testing.T, fn func(tb testing.TB)) string {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

func TestMissingServerFailsWithStartCommand(t *testing.T) {
	testenv.SkipShort(t, "the test servers, or their absence")
	t.Setenv(testenv.EnvMySQLURL, "")
	t.Setenv(testenv.EnvPostgresURL, "postgres://authz:authz@127.0.0.1:1/postgres?connect_timeout=2")
	t.Setenv(testenv.EnvKafkaBrokers, "")

	msg := fatalMessage(t, func(tb testing.TB) { testenv.MySQLURL(tb) })
	require.Contains(t, msg, "AUTHZ_TEST_MYSQL_URL is not set")
	require.Contains(t, msg, "scripts/services.sh start")

	msg = fatalMessage(t, func(tb testing.TB) { testenv.PostgresURL(tb) })
	require.Contains(t, msg, "not reachable")
	require.Contains(t, msg, "scripts/services.sh start")
	require.NotContains(t, msg, "authz:authz@", "password must be masked")

	msg = fatalMessage(t, func(tb testing.TB) { testenv.KafkaBrokers(tb) })
	require.Contains(t, msg, "scripts/kafka.sh start")
}

func openMySQL(t *testing.T, u *url.URL) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	conn, err := mysql.NewConnector(cfg)
	require.NoError(t, err)
	return sql.OpenDB(conn)
}
