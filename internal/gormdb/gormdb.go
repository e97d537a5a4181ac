// Package gormdb opens the todo store's database with GORM: it parses
// DATABASE_URL (sqlite:PATH or postgres://…), applies the SQLite settings
// that let concurrent writers succeed and acknowledged writes survive a
// crash, sizes the connection pool, and routes GORM's log through slog
// without the values bound to queries.
//
// It is its own package, one per dependency, so that the todos tests and the
// todo API's wiring open a database the same way without importing each
// other.
package gormdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"
)

// SQLite settings. Every pooled connection gets them, through the DSN
// parameters of github.com/mattn/go-sqlite3.
//
//   - _journal_mode=WAL: readers never block the writer nor each other.
//   - _busy_timeout=5000: a writer waits up to 5 s for the write lock
//     instead of failing at once with "database is locked".
//   - _txlock=immediate: every transaction starts with BEGIN IMMEDIATE,
//     taking the write lock first. A deferred transaction that reads and
//     then writes cannot wait for the lock (its snapshot may be stale), so
//     it fails with SQLITE_BUSY whatever the busy timeout: this setting is
//     what lets 64 concurrent writers all succeed, and it serializes the
//     count-then-insert of the per-user cap.
//   - _foreign_keys=1: enforce foreign keys, off by default in SQLite.
//   - _synchronous=NORMAL: in WAL mode SQLite then fsyncs the WAL only at
//     checkpoints, not at every commit. A commit has still been written to
//     the WAL file, in the operating system's page cache, before COMMIT
//     returns, and SQLite's documentation of PRAGMA synchronous says that
//     transactions are durable across application crashes whatever the
//     synchronous setting or journal mode: the kernel keeps and flushes
//     the pages of a killed process, and the next open replays the WAL. So
//     a write acknowledged before a kill -9 of the server is kept. What
//     NORMAL gives up is durability across a power loss or an operating
//     system crash, which may roll back the last commits (the database
//     stays consistent). Add ?_synchronous=FULL to DATABASE_URL to fsync
//     at every commit and survive those too, at the cost of write latency.
var sqliteDefaults = url.Values{
	"_journal_mode": {"WAL"},
	"_busy_timeout": {"5000"},
	"_txlock":       {"immediate"},
	"_foreign_keys": {"1"},
	"_synchronous":  {"NORMAL"},
}

// Connection pool sizes.
const (
	// sqliteMaxConns bounds the connections to a SQLite file. SQLite has
	// one writer at a time anyway; a few connections let reads go on beside
	// it, and more would only make writers spin in the busy handler, whose
	// sleeps grow with each retry, instead of queueing fairly in the pool.
	sqliteMaxConns = 4
	// postgresMaxConns bounds the connections of one instance, so several
	// instances stay under PostgreSQL's max_connections (100 by default).
	postgresMaxConns = 16
)

// Open opens the database named by databaseURL, the DATABASE_URL
// setting, and checks that it answers:
//
//   - sqlite:PATH (also sqlite://PATH) opens or creates the SQLite file at
//     PATH with the settings described at sqliteDefaults; query parameters
//     of github.com/mattn/go-sqlite3 after PATH override them (such as
//     sqlite:todos.db?_synchronous=FULL).
//   - sqlite::memory: is a private in-memory database that lives as long
//     as the returned DB: for demos and tests. It is served by a single
//     connection, since each SQLite connection to ":memory:" would be a
//     database of its own, and the shared-cache alternative reports table
//     locks that the busy timeout does not wait for.
//   - postgres://… or postgresql://… opens PostgreSQL through pgx with a
//     bounded pool; the URL's parameters are pgx's (sslmode, search_path,
//     …).
//
// GORM logs through logger (nil: nowhere): failed queries as errors and
// queries slower than 200 ms as warnings, with their SQL but never the
// values bound to it. It does not create the tables: see todos.Store's
// Migrate.
func Open(ctx context.Context, databaseURL string, logger *slog.Logger) (*gorm.DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	keepValuesOutOfScanLogs()
	cfg := &gorm.Config{
		Logger:               gormLog{log: logger, slow: 200 * time.Millisecond},
		DisableAutomaticPing: true, // pinged below, with ctx
		NowFunc:              func() time.Time { return time.Now().UTC() },
	}
	scheme, rest, _ := strings.Cut(databaseURL, ":")
	switch strings.ToLower(scheme) {
	case "sqlite":
		return openSQLite(ctx, rest, cfg)
	case "postgres", "postgresql":
		if !strings.HasPrefix(rest, "//") {
			return nil, errors.New("DATABASE_URL: a PostgreSQL URL starts with postgres://")
		}
		return openPostgres(ctx, databaseURL, cfg)
	}
	if !strings.Contains(databaseURL, ":") {
		scheme = ""
	}
	return nil, fmt.Errorf("DATABASE_URL: unsupported scheme %q: want sqlite:PATH or postgres://…", scheme)
}

func openSQLite(ctx context.Context, rest string, cfg *gorm.Config) (*gorm.DB, error) {
	rest = strings.TrimPrefix(rest, "//")
	path, rawQuery, _ := strings.Cut(rest, "?")
	if path == "" {
		return nil, errors.New("DATABASE_URL: sqlite: needs a file path, as in sqlite:todos.db")
	}
	if strings.HasPrefix(path, "file:") {
		return nil, errors.New("DATABASE_URL: write sqlite:PATH, not an SQLite URI filename (file:…)")
	}
	params, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: sqlite: malformed parameters: %w", err)
	}
	for k, v := range sqliteDefaults {
		if !params.Has(k) {
			params[k] = v
		}
	}
	memory := path == ":memory:"
	db, err := gorm.Open(sqlite.Open(path+"?"+params.Encode()), cfg)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: sqlite: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: sqlite: %w", err)
	}
	if memory {
		sqlDB.SetMaxOpenConns(1)
		sqlDB.SetMaxIdleConns(1)
		sqlDB.SetConnMaxLifetime(0) // closing the connection would drop the database
		sqlDB.SetConnMaxIdleTime(0)
	} else {
		sqlDB.SetMaxOpenConns(sqliteMaxConns)
		sqlDB.SetMaxIdleConns(sqliteMaxConns) // reopening reruns every pragma
	}
	if err := ping(ctx, sqlDB); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("DATABASE_URL: sqlite: %w", err)
	}
	if !memory {
		// WAL needs shared memory beside the file; some network file
		// systems cannot, and SQLite then keeps the old journal silently.
		var mode string
		if err := sqlDB.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			_ = sqlDB.Close()
			return nil, fmt.Errorf("DATABASE_URL: sqlite: %w", err)
		}
		if want := params.Get("_journal_mode"); !strings.EqualFold(mode, want) {
			_ = sqlDB.Close()
			return nil, fmt.Errorf("DATABASE_URL: sqlite: journal mode is %q, not %q (is %s on a local file system?)", mode, want, path)
		}
	}
	return db, nil
}

func openPostgres(ctx context.Context, databaseURL string, cfg *gorm.Config) (*gorm.DB, error) {
	db, err := gorm.Open(postgres.Open(databaseURL), cfg)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: postgres: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: postgres: %w", err)
	}
	sqlDB.SetMaxOpenConns(postgresMaxConns)
	sqlDB.SetMaxIdleConns(postgresMaxConns)
	// Recycle connections now and then, so that a fail-over or a load
	// balancer in front of PostgreSQL spreads them again.
	sqlDB.SetConnMaxLifetime(30 * time.Minute)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := ping(ctx, sqlDB); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("DATABASE_URL: postgres: %w", err)
	}
	return db, nil
}

// ping checks the database answers, within 10 s unless ctx says sooner.
func ping(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// gormLog sends GORM's logs to slog, quietly: nothing at info level, and
// SQL without the values bound to it, which are users' data.
type gormLog struct {
	log  *slog.Logger
	slow time.Duration
}

func (l gormLog) LogMode(gormlogger.LogLevel) gormlogger.Interface { return l }

func (l gormLog) Info(context.Context, string, ...any) {}

func (l gormLog) Warn(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

func (l gormLog) Error(ctx context.Context, msg string, args ...any) {
	l.log.ErrorContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

// Trace logs failed and slow queries. Not found is an answer, not a
// failure, and a canceled context is the client leaving.
func (l gormLog) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	switch {
	case err != nil && !errors.Is(err, gorm.ErrRecordNotFound) && !errors.Is(err, context.Canceled):
		query, rows := fc()
		l.log.ErrorContext(ctx, "database query failed", "sql", query, "rows", rows, "elapsed", elapsed, "err", err)
	case l.slow > 0 && elapsed > l.slow:
		query, rows := fc()
		l.log.WarnContext(ctx, "slow database query", "sql", query, "rows", rows, "elapsed", elapsed)
	}
}

var keepValuesOutOfScanLogs = sync.OnceFunc(func() {
	// DB.Scan (Raw(…).Scan) records its SQL through gormlogger.Recorder,
	// which asks this package variable, not the DB's logger, what to do
	// with bound values: GORM's default interpolates them. It is global to
	// the process, hence set once here, to what gormLog.ParamsFilter does.
	gormlogger.RecorderParamsFilter = func(_ context.Context, query string, _ ...any) (string, []any) {
		return query, nil
	}
})

// ParamsFilter keeps bound values out of the SQL that Trace logs: GORM
// calls it (gorm.ParamsFilter) before interpolating them.
func (l gormLog) ParamsFilter(_ context.Context, query string, _ ...any) (string, []any) {
	return query, nil
}
