package main

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/todos/todostest"
)

// TestTwoInstancesShareOnePostgres: two todo-api processes on one database
// see the same todos, and concurrent writers through both lose nothing.
func TestTwoInstancesShareOnePostgres(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	env := jwtEnv(t, is)
	env["DATABASE_URL"] = todostest.PostgresURL(t)
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
