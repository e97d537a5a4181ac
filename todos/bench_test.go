package todos_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tollgate-dev/tollgate/todos"
	"github.com/tollgate-dev/tollgate/todos/todostest"
	"gorm.io/gorm"
)

// Benchmarks run only with -bench, never in a plain go test. The one that
// fills a table with a million rows is skipped under -short too:
//
//	go test ./todos -run '^$' -bench . -benchtime 2s
//
// BenchmarkListLatency's ratio of ns/op between rows=1M and rows=1k is the
// figure to watch: near 1 means a page is an index range scan.

// BenchmarkCreate measures POST-like inserts, each a transaction that
// counts the owner's todos against the cap, on SQLite.
func BenchmarkCreate(b *testing.B) {
	s := mustOpenStore(b, mustOpenDB(b, todostest.SQLiteURL(b)), todos.StoreConfig{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// A new owner every 1000 todos, as the cap counts per owner.
		if _, err := s.Create(ctx, fmt.Sprint("user", i/1000), todos.NewTodo{Title: "benchmark"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateParallel is BenchmarkCreate with concurrent writers, each
// its own owner: they take turns for SQLite's write lock.
func BenchmarkCreateParallel(b *testing.B) {
	s := mustOpenStore(b, mustOpenDB(b, todostest.SQLiteURL(b)), todos.StoreConfig{MaxTodosPerOwner: 1 << 30})
	ctx := context.Background()
	var writer atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		owner := fmt.Sprint("writer", writer.Add(1))
		for pb.Next() {
			if _, err := s.Create(ctx, owner, todos.NewTodo{Title: "benchmark"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkList measures reading the first page (100) of a list of 1,000,
// from the store and through the HTTP handler (JSON included), on SQLite.
func BenchmarkList(b *testing.B) {
	db := mustOpenDB(b, todostest.SQLiteURL(b))
	s := mustOpenStore(b, db, todos.StoreConfig{})
	fillCaller(b, s, 1000)
	ctx := context.Background()
	b.Run("store", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			page, err := s.List(ctx, "caller", todos.ListOptions{Limit: 100})
			if err != nil || len(page.Todos) != 100 {
				b.Fatal(err)
			}
		}
	})
	b.Run("http", func(b *testing.B) {
		h, err := todos.NewHandlers(s, todos.Config{})
		if err != nil {
			b.Fatal(err)
		}
		gin.SetMode(gin.ReleaseMode)
		r := gin.New()
		h.Register(r, gin.HandlersChain{fakeAuth}, gin.HandlersChain{fakeAuth})
		req := httptest.NewRequest("GET", "/todos?limit=100", nil)
		req.Header.Set("Authorization", "Bearer caller")
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code, rec.Body)
			}
		}
	})
}

// BenchmarkListLatency lists a page of the caller's 1,000 todos while the
// table holds only those (rows=1k) or a million rows, the rest other users'
// (rows=1M): first is the first page, deep the page after 900 todos.
func BenchmarkListLatency(b *testing.B) {
	for _, d := range todostest.Databases {
		b.Run(d.Name, func(b *testing.B) {
			for _, rows := range []int{1_000, 1_000_000} {
				name := fmt.Sprintf("rows=%dk", rows/1000)
				if rows >= 1_000_000 {
					name = fmt.Sprintf("rows=%dM", rows/1_000_000)
				}
				b.Run(name, func(b *testing.B) {
					if rows > 1000 && testing.Short() {
						b.Skip("a million rows take a while to insert; not with -short")
					}
					db := mustOpenDB(b, d.URL(b))
					s := mustOpenStore(b, db, todos.StoreConfig{})
					start := time.Now()
					fillCaller(b, s, 1000)
					fillOthers(b, db, rows-1000)
					b.Logf("%s: filled %d rows in %v", d.Name, rows, time.Since(start).Round(time.Millisecond))
					ctx := context.Background()
					deep := todos.ListOptions{Limit: 100}
					for range 9 {
						page, err := s.List(ctx, "caller", deep)
						if err != nil {
							b.Fatal(err)
						}
						deep.After = page.Next
					}
					for _, tc := range []struct {
						name string
						opts todos.ListOptions
					}{{"first", todos.ListOptions{Limit: 100}}, {"deep", deep}} {
						b.Run(tc.name, func(b *testing.B) {
							b.ReportAllocs()
							for b.Loop() {
								page, err := s.List(ctx, "caller", tc.opts)
								if err != nil || len(page.Todos) != 100 {
									b.Fatalf("%d todos, %v", len(page.Todos), err)
								}
							}
						})
					}
				})
			}
		})
	}
}

// fillCaller gives the owner "caller" n todos through the store.
func fillCaller(b *testing.B, s *todos.Store, n int) {
	b.Helper()
	ctx := context.Background()
	for i := range n {
		if _, err := s.Create(ctx, "caller", todos.NewTodo{Title: fmt.Sprint("todo ", i), Order: i % 10, Completed: i%3 == 0}); err != nil {
			b.Fatal(err)
		}
	}
}

// fillOthers adds n todos of 1,000 other owners in one INSERT … SELECT, a
// recursive CTE on SQLite and generate_series on PostgreSQL. Their IDs
// start with Z and a digit, which rand.Text never makes.
func fillOthers(b *testing.B, db *gorm.DB, n int) {
	b.Helper()
	if n <= 0 {
		return
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	var err error
	if db.Name() == "postgres" {
		err = db.Exec(`INSERT INTO todos (id, owner, position, created_at, title, completed, updated_at, version)
			SELECT 'Z' || lpad(n::text, 25, '0'), 'other' || (n % 1000), n % 100, ?, 'todo ' || n, n % 2 = 0, ?, 1
			FROM generate_series(1, ?) AS n`, now, now, n).Error
		if err == nil {
			err = db.Exec("ANALYZE todos").Error
		}
	} else {
		err = db.Exec(`WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?)
			INSERT INTO todos (id, owner, position, created_at, title, completed, updated_at, version)
			SELECT printf('Z%025d', n), 'other' || (n % 1000), n % 100, ?, 'todo ' || n, n % 2, ?, 1 FROM seq`, n, now, now).Error
		if err == nil {
			err = db.Exec("ANALYZE").Error
		}
	}
	if err != nil {
		b.Fatal(err)
	}
}
