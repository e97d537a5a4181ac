// Package todostest gives tests a fresh, empty database to run the todo
// store against: a SQLite file under the test's temporary directory, or a
// schema of its own in the test PostgreSQL server. It returns DATABASE_URL
// strings, so that tests open them the way the server does
// (gormdb.Open).
package todostest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is the test server tried when TOLLGATE_TEST_POSTGRES
// is unset: PostgreSQL on loopback with trust authentication, as on the
// development machines and in CI.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Database is one kind of database the store tests run against.
type Database struct {
	// Name names the subtest: "sqlite" or "postgres".
	Name string
	// URL returns the DATABASE_URL of a fresh, empty database, removed when
	// the test ends. It may skip the test (see PostgresURL).
	URL func(tb testing.TB) string
}

// Databases are the databases that every store test runs against.
var Databases = []Database{
	{Name: "sqlite", URL: SQLiteURL},
	{Name: "postgres", URL: PostgresURL},
}

// SQLiteURL returns the DATABASE_URL of a new SQLite file under
// tb.TempDir(). (":memory:" would not do: it is one connection only.)
func SQLiteURL(tb testing.TB) string {
	tb.Helper()
	return "sqlite:" + filepath.Join(tb.TempDir(), "todos.db")
}

// PostgresURL returns the DATABASE_URL of a new, empty schema in the test
// PostgreSQL server, first on the search_path of every connection opened
// with it, and drops the schema when the test ends. Each test gets its own
// schema, so tests and test packages running at once never see each
// other's rows.
//
// The server is TOLLGATE_TEST_POSTGRES, else DefaultPostgresURL. When it
// cannot be reached, the test fails if TOLLGATE_TEST_POSTGRES or CI is set
// (CI must not pass by skipping), and is skipped, loudly, otherwise.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	base, explicit := os.LookupEnv("TOLLGATE_TEST_POSTGRES")
	if base == "" {
		base, explicit = DefaultPostgresURL, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL at %s is unreachable: %v", redact(base), err)
		if explicit || os.Getenv("CI") != "" {
			tb.Fatal(msg)
		}
		tb.Skip("SKIPPING the PostgreSQL half of this test: " + msg +
			" (set TOLLGATE_TEST_POSTGRES to a server; with CI set this is a failure)")
	}
	defer conn.Close(context.Background())
	schema := "tollgate_test_" + strings.ToLower(rand.Text())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("TOLLGATE_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// redact hides the password of a database URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
