package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// postgresURL returns a DATABASE_URL on a fresh schema of the test
// PostgreSQL server, dropped when the test ends. Without a server it skips,
// except in CI, where it fails.
func postgresURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TOLLGATE_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db, err := sql.Open("pgx", base)
	if err == nil {
		err = db.PingContext(context.Background())
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at %s: %v", base, err)
		}
		t.Skipf("no PostgreSQL (%v): set TOLLGATE_TEST_POSTGRES", err)
	}
	schema := "tollgate_e2e_" + strings.ToLower(rand.Text()[:10])
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
		db.Close()
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

// TestTwoInstancesShareOnePostgres: two todo-api processes on one database
// see the same todos, and concurrent writers through both lose nothing.
func TestTwoInstancesShareOnePostgres(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	env := jwtEnv(t, is)
	env["DATABASE_URL"] = postgresURL(t)
	a := startServer(t, env)
	b := startServer(t, env)
	tok := is.Token(t, "alice", nil)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := a.URL
			if i%2 == 1 {
				url = b.URL
			}
			if r := newCaller(t, url, tok).do("POST", "/todos", map[string]any{"title": fmt.Sprint("pg ", i)}); r.Status != 201 {
				errs <- fmt.Sprintf("%d: %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	for _, s := range []*server{a, b} {
		if got := newCaller(t, s.URL, tok).do("GET", "/todos?limit=100", nil).todos(t); len(got) != 64 {
			t.Fatalf("instance %s sees %d todos", s.URL, len(got))
		}
	}
	if got := newCaller(t, b.URL, is.Token(t, "bob", nil)).do("GET", "/todos", nil).todos(t); len(got) != 0 {
		t.Fatalf("bob sees %d todos", len(got))
	}
}
