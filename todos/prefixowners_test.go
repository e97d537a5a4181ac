package todos_test

import (
	"context"
	"sync"
	"testing"

	"github.com/tollgate-dev/tollgate/todos"
	"gorm.io/gorm"
)

// TestPrefixOwners: the first call prefixes every owner once, on SQLite and
// PostgreSQL, concurrent callers included; later calls, whatever their
// prefix, change nothing.
func TestPrefixOwners(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		s := mustOpenStore(t, db, todos.StoreConfig{})
		mustCreate(t, s, "alice", todos.NewTodo{Title: "a"})
		mustCreate(t, s, "https://b.example bob", todos.NewTodo{Title: "b"})

		var wg sync.WaitGroup
		var mu sync.Mutex
		var total int64
		for range 4 {
			wg.Go(func() {
				got, n, err := s.PrefixOwners(ctx, "https://a.example ")
				if err != nil || got != "https://a.example " {
					t.Errorf("PrefixOwners: %q, %v", got, err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
		wg.Wait()
		if total != 2 {
			t.Fatalf("%d todos changed, want 2, once", total)
		}
		if got, n, err := s.PrefixOwners(ctx, "https://other.example "); err != nil || n != 0 || got != "https://a.example " {
			t.Fatalf("a later call: %q, %d, %v", got, n, err)
		}
		for owner, want := range map[string]int{
			"alice":                   0,
			"https://a.example alice": 1,
			"https://b.example bob":   0,
			"https://a.example https://b.example bob": 1,
		} {
			if got := len(mustListAll(t, s, owner, todos.ListOptions{})); got != want {
				t.Errorf("%q owns %d todos, want %d", owner, got, want)
			}
		}
		if _, _, err := s.PrefixOwners(ctx, ""); err == nil {
			t.Error("an empty prefix was accepted")
		}
	})
}
