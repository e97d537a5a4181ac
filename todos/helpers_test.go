package todos_test

import (
	"context"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/gormdb"
	"github.com/tollgate-dev/tollgate/todos"
	"github.com/tollgate-dev/tollgate/todos/todostest"
	"gorm.io/gorm"
)

// mustOpenDB opens databaseURL as the server does, closing it at the end of
// the test.
func mustOpenDB(tb testing.TB, databaseURL string) *gorm.DB {
	tb.Helper()
	db, err := gormdb.Open(context.Background(), databaseURL, nil)
	if err != nil {
		tb.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sqlDB.Close() })
	return db
}

// mustOpenStore returns a migrated Store over db.
func mustOpenStore(tb testing.TB, db *gorm.DB, cfg todos.StoreConfig) *todos.Store {
	tb.Helper()
	s, err := todos.NewStore(db, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return s
}

// forEachDatabase runs f as a subtest per database of todostest.Databases,
// each with a fresh database.
func forEachDatabase(t *testing.T, f func(t *testing.T, db *gorm.DB)) {
	t.Helper()
	for _, d := range todostest.Databases {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			f(t, mustOpenDB(t, d.URL(t)))
		})
	}
}

// mustCreate creates a todo or fails the test.
func mustCreate(tb testing.TB, s *todos.Store, owner string, n todos.NewTodo) todos.Todo {
	tb.Helper()
	td, err := s.Create(context.Background(), owner, n)
	if err != nil {
		tb.Fatalf("create %q for %s: %v", n.Title, owner, err)
	}
	return td
}

// mustListAll returns every todo of owner, following the pages.
func mustListAll(tb testing.TB, s *todos.Store, owner string, opts todos.ListOptions) []todos.Todo {
	tb.Helper()
	var all []todos.Todo
	for range 10_000 {
		page, err := s.List(context.Background(), owner, opts)
		if err != nil {
			tb.Fatal(err)
		}
		all = append(all, page.Todos...)
		if page.Next.IsZero() {
			return all
		}
		opts.After = page.Next
	}
	tb.Fatal("the list never ends")
	return nil
}

func ids(ts []todos.Todo) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func ptr[T any](v T) *T { return &v }
