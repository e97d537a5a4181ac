package todos_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/todos"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestStore runs every case against SQLite and PostgreSQL, each on a fresh
// database.
func TestStore(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, db *gorm.DB)
	}{
		{"crud", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			created := mustCreate(t, s, "alice", todos.NewTodo{Title: "Buy milk", Order: 3})
			if created.Version != 1 || created.Completed || created.Order != 3 || created.Owner != "alice" {
				t.Errorf("created %+v", created)
			}
			got, err := s.Get(ctx, "alice", created.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Title != "Buy milk" || !got.CreatedAt.Equal(created.CreatedAt) || got.Version != 1 {
				t.Errorf("got %+v, want %+v", got, created)
			}
			updated, err := s.Update(ctx, "alice", created.ID, todos.Patch{Completed: ptr(true)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !updated.Completed || updated.Title != "Buy milk" || updated.Version != 2 || updated.UpdatedAt.Before(created.UpdatedAt) {
				t.Errorf("updated %+v", updated)
			}
			if got, _ := s.Get(ctx, "alice", created.ID); !got.Completed || got.Version != 2 {
				t.Errorf("after update, get %+v", got)
			}
			if err := s.Delete(ctx, "alice", created.ID, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, "alice", created.ID); !errors.Is(err, todos.ErrNotFound) {
				t.Errorf("get after delete: %v, want ErrNotFound", err)
			}
			if err := s.Delete(ctx, "alice", created.ID, nil); !errors.Is(err, todos.ErrNotFound) {
				t.Errorf("second delete: %v, want ErrNotFound", err)
			}
		}},
		{"migrate_again_and_at_once", func(t *testing.T, db *gorm.DB) {
			s, err := todos.NewStore(db, todos.StoreConfig{})
			if err != nil {
				t.Fatal(err)
			}
			// Several instances starting together on an empty database
			// migrate together, then once more.
			migrate := func() {
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(func() {
						if err := s.Migrate(ctx); err != nil {
							t.Errorf("Migrate: %v", err)
						}
					})
				}
				wg.Wait()
			}
			migrate()
			td := mustCreate(t, s, "alice", todos.NewTodo{Title: "kept"})
			migrate()
			if _, err := s.Get(ctx, "alice", td.ID); err != nil {
				t.Errorf("after migrating again: %v", err)
			}
		}},
		{"list_only_own", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			var want []string
			for i := range 3 {
				want = append(want, mustCreate(t, s, "alice", todos.NewTodo{Title: fmt.Sprint("a", i)}).ID)
				mustCreate(t, s, "bob", todos.NewTodo{Title: fmt.Sprint("b", i)})
			}
			got := ids(mustListAll(t, s, "alice", todos.ListOptions{}))
			if !slices.Equal(got, want) {
				t.Errorf("alice lists %v, want %v", got, want)
			}
			if n, err := s.Count(ctx, "alice"); err != nil || n != 3 {
				t.Errorf("Count = %d, %v; want 3", n, err)
			}
			page, err := s.List(ctx, "carol", todos.ListOptions{})
			if err != nil || page.Todos == nil || len(page.Todos) != 0 || !page.Next.IsZero() {
				t.Errorf("empty list = %#v, %v; want a non-nil empty page", page, err)
			}
		}},
		{"another_users_todo_is_not_found", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			bobs := mustCreate(t, s, "bob", todos.NewTodo{Title: "bob's"})
			if _, err := s.Get(ctx, "alice", bobs.ID); !errors.Is(err, todos.ErrNotFound) {
				t.Errorf("get: %v", err)
			}
			if _, err := s.Update(ctx, "alice", bobs.ID, todos.Patch{Title: ptr("mine")}, nil); !errors.Is(err, todos.ErrNotFound) {
				t.Errorf("update: %v", err)
			}
			if _, err := s.Update(ctx, "alice", bobs.ID, todos.Patch{Title: ptr("mine")}, ptr(1)); !errors.Is(err, todos.ErrNotFound) {
				t.Errorf("update with If-Match: %v", err)
			}
			if err := s.Delete(ctx, "alice", bobs.ID, nil); !errors.Is(err, todos.ErrNotFound) {
				t.Errorf("delete: %v", err)
			}
			if err := s.Delete(ctx, "alice", bobs.ID, ptr(1)); !errors.Is(err, todos.ErrNotFound) {
				t.Errorf("delete with If-Match: %v", err)
			}
			if n, _ := s.DeleteAll(ctx, "alice", false); n != 0 {
				t.Errorf("alice's DeleteAll removed %d", n)
			}
			got, err := s.Get(ctx, "bob", bobs.ID)
			if err != nil || got.Title != "bob's" || got.Version != 1 {
				t.Errorf("bob's todo is now %+v, %v", got, err)
			}
		}},
		{"list_orders_by_order_then_creation", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			b := mustCreate(t, s, "alice", todos.NewTodo{Title: "b", Order: 2})
			c := mustCreate(t, s, "alice", todos.NewTodo{Title: "c", Order: 0})
			d := mustCreate(t, s, "alice", todos.NewTodo{Title: "d", Order: -5})
			e := mustCreate(t, s, "alice", todos.NewTodo{Title: "e", Order: 0})
			want := []string{d.ID, c.ID, e.ID, b.ID}
			if got := ids(mustListAll(t, s, "alice", todos.ListOptions{})); !slices.Equal(got, want) {
				t.Errorf("order %v, want %v", got, want)
			}
		}},
		{"pagination_across_pages", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			var want []string
			for i := range 25 {
				want = append(want, mustCreate(t, s, "alice", todos.NewTodo{Title: fmt.Sprint(i), Order: i / 4}).ID)
			}
			var got []string
			opts := todos.ListOptions{Limit: 10}
			for pages := 1; ; pages++ {
				page, err := s.List(ctx, "alice", opts)
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Todos) > 10 {
					t.Fatalf("page of %d", len(page.Todos))
				}
				got = append(got, ids(page.Todos)...)
				if page.Next.IsZero() {
					if pages != 3 {
						t.Errorf("%d pages, want 3", pages)
					}
					break
				}
				// The cursor survives its text form, as clients carry it.
				if opts.After, err = todos.ParseCursor(page.Next.String()); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged %v, want %v", got, want)
			}
		}},
		{"pagination_stable_while_inserting", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			var before []string
			for i := range 20 {
				before = append(before, mustCreate(t, s, "alice", todos.NewTodo{Title: fmt.Sprint(i), Order: i * 10}).ID)
			}
			page, err := s.List(ctx, "alice", todos.ListOptions{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			last := page.Todos[9] // order 90
			// Meanwhile: one todo lands before the cursor, one at its very
			// order (after it: created later), one at the end; one seen
			// todo and one unseen are deleted.
			early := mustCreate(t, s, "alice", todos.NewTodo{Title: "early", Order: 5})
			tie := mustCreate(t, s, "alice", todos.NewTodo{Title: "tie", Order: last.Order})
			late := mustCreate(t, s, "alice", todos.NewTodo{Title: "late", Order: 1000})
			for _, id := range []string{before[3], before[15]} {
				if err := s.Delete(ctx, "alice", id, nil); err != nil {
					t.Fatal(err)
				}
			}
			rest := ids(mustListAll(t, s, "alice", todos.ListOptions{Limit: 4, After: page.Next}))
			want := slices.Concat([]string{tie.ID}, slices.Delete(slices.Clone(before[10:]), 5, 6), []string{late.ID})
			if !slices.Equal(rest, want) {
				t.Errorf("after the cursor: %v, want %v (no repeat, no skip; %s landed before it)", rest, want, early.ID)
			}
		}},
		{"completed_filter", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			var done, open []string
			for i := range 7 {
				td := mustCreate(t, s, "alice", todos.NewTodo{Title: fmt.Sprint(i), Completed: i%3 == 0})
				if td.Completed {
					done = append(done, td.ID)
				} else {
					open = append(open, td.ID)
				}
			}
			mustCreate(t, s, "bob", todos.NewTodo{Title: "bob's", Completed: true})
			if got := ids(mustListAll(t, s, "alice", todos.ListOptions{Completed: ptr(true), Limit: 2})); !slices.Equal(got, done) {
				t.Errorf("completed: %v, want %v", got, done)
			}
			if got := ids(mustListAll(t, s, "alice", todos.ListOptions{Completed: ptr(false), Limit: 2})); !slices.Equal(got, open) {
				t.Errorf("not completed: %v, want %v", got, open)
			}
		}},
		{"delete_all_completed_only", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			var open []string
			for i := range 6 {
				td := mustCreate(t, s, "alice", todos.NewTodo{Title: fmt.Sprint(i), Completed: i%2 == 0})
				if !td.Completed {
					open = append(open, td.ID)
				}
			}
			bobs := mustCreate(t, s, "bob", todos.NewTodo{Title: "bob's", Completed: true})
			n, err := s.DeleteAll(ctx, "alice", true)
			if err != nil || n != 3 {
				t.Fatalf("DeleteAll(completed) = %d, %v; want 3", n, err)
			}
			if got := ids(mustListAll(t, s, "alice", todos.ListOptions{})); !slices.Equal(got, open) {
				t.Errorf("left %v, want %v", got, open)
			}
			if n, err := s.DeleteAll(ctx, "alice", false); err != nil || n != 3 {
				t.Errorf("DeleteAll = %d, %v; want 3", n, err)
			}
			if n, _ := s.Count(ctx, "alice"); n != 0 {
				t.Errorf("alice has %d left", n)
			}
			if _, err := s.Get(ctx, "bob", bobs.ID); err != nil {
				t.Errorf("bob's todo: %v", err)
			}
		}},
		{"if_match", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			td := mustCreate(t, s, "alice", todos.NewTodo{Title: "v1"})
			v2, err := s.Update(ctx, "alice", td.ID, todos.Patch{Title: ptr("v2")}, ptr(1))
			if err != nil || v2.Version != 2 || v2.ETag() == td.ETag() {
				t.Fatalf("update at the current version: %+v, %v", v2, err)
			}
			// The other tab still holds version 1.
			if _, err := s.Update(ctx, "alice", td.ID, todos.Patch{Title: ptr("stale")}, ptr(1)); !errors.Is(err, todos.ErrPreconditionFailed) {
				t.Errorf("stale update: %v, want ErrPreconditionFailed", err)
			}
			if err := s.Delete(ctx, "alice", td.ID, ptr(1)); !errors.Is(err, todos.ErrPreconditionFailed) {
				t.Errorf("stale delete: %v, want ErrPreconditionFailed", err)
			}
			if got, _ := s.Get(ctx, "alice", td.ID); got.Title != "v2" || got.Version != 2 {
				t.Errorf("after refused changes: %+v", got)
			}
			if err := s.Delete(ctx, "alice", td.ID, ptr(2)); err != nil {
				t.Errorf("delete at the current version: %v", err)
			}
			if err := s.Delete(ctx, "alice", td.ID, ptr(2)); !errors.Is(err, todos.ErrNotFound) {
				t.Errorf("delete of a deleted todo: %v, want ErrNotFound", err)
			}
		}},
		{"patch_changing_nothing_keeps_version", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			td := mustCreate(t, s, "alice", todos.NewTodo{Title: "same", Order: 4})
			for _, p := range []todos.Patch{{}, {Title: ptr("same"), Order: ptr(4), Completed: ptr(false)}} {
				got, err := s.Update(ctx, "alice", td.ID, p, ptr(1))
				if err != nil || got.Version != 1 || !got.UpdatedAt.Equal(td.UpdatedAt) {
					t.Errorf("Update(%+v) = %+v, %v; want version 1 unchanged", p, got, err)
				}
			}
		}},
		{"invalid_fields_store_nothing", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			td := mustCreate(t, s, "alice", todos.NewTodo{Title: "ok"})
			for _, title := range []string{"", "  \t", strings.Repeat("x", todos.MaxTitleLength+1), "a\nb", "\x00", "\ufffd", "\xff"} {
				var ve *todos.ValidationError
				if _, err := s.Create(ctx, "alice", todos.NewTodo{Title: title}); !errors.As(err, &ve) || ve.Fields["title"] == "" {
					t.Errorf("Create(%q): %v, want a ValidationError on title", title, err)
				}
				if _, err := s.Update(ctx, "alice", td.ID, todos.Patch{Title: &title}, nil); !errors.As(err, &ve) {
					t.Errorf("Update(%q): %v, want a ValidationError", title, err)
				}
			}
			var ve *todos.ValidationError
			if _, err := s.Create(ctx, "alice", todos.NewTodo{Title: "x", Order: todos.MaxOrder + 1}); !errors.As(err, &ve) || ve.Fields["order"] == "" {
				t.Errorf("order out of range: %v", err)
			}
			if n, _ := s.Count(ctx, "alice"); n != 1 {
				t.Errorf("%d todos, want 1", n)
			}
			if got, _ := s.Get(ctx, "alice", td.ID); got.Title != "ok" || got.Version != 1 {
				t.Errorf("todo changed: %+v", got)
			}
			if _, err := s.Create(ctx, "", todos.NewTodo{Title: "x"}); err == nil {
				t.Error("created a todo without an owner")
			}
		}},
		{"per_user_cap", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{MaxTodosPerOwner: 3})
			var first todos.Todo
			for i := range 3 {
				td := mustCreate(t, s, "alice", todos.NewTodo{Title: fmt.Sprint(i)})
				if i == 0 {
					first = td
				}
			}
			if _, err := s.Create(ctx, "alice", todos.NewTodo{Title: "one too many"}); !errors.Is(err, todos.ErrLimit) {
				t.Errorf("4th todo: %v, want ErrLimit", err)
			}
			mustCreate(t, s, "bob", todos.NewTodo{Title: "bob has room"})
			if err := s.Delete(ctx, "alice", first.ID, nil); err != nil {
				t.Fatal(err)
			}
			mustCreate(t, s, "alice", todos.NewTodo{Title: "room again"})
			if n, _ := s.Count(ctx, "alice"); n != 3 {
				t.Errorf("alice has %d, want 3", n)
			}
		}},
		{"64_concurrent_writers", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			const writers = 64
			errs := make(chan error, writers)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range writers {
				wg.Go(func() {
					<-start
					owner := fmt.Sprint("user", i%4)
					td, err := s.Create(ctx, owner, todos.NewTodo{Title: fmt.Sprint("todo ", i)})
					if err == nil {
						_, err = s.Update(ctx, owner, td.ID, todos.Patch{Completed: ptr(true)}, ptr(1))
					}
					errs <- err
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("writer: %v", err)
				}
			}
			var total int64
			for i := range 4 {
				n, err := s.Count(ctx, fmt.Sprint("user", i))
				if err != nil {
					t.Fatal(err)
				}
				total += n
				if got := mustListAll(t, s, fmt.Sprint("user", i), todos.ListOptions{Completed: ptr(true)}); int64(len(got)) != n {
					t.Errorf("user%d: %d completed of %d", i, len(got), n)
				}
			}
			if total != writers {
				t.Errorf("%d rows, want %d", total, writers)
			}
		}},
		{"cap_holds_under_concurrency", func(t *testing.T, db *gorm.DB) {
			const limit, writers = 10, 64
			s := mustOpenStore(t, db, todos.StoreConfig{MaxTodosPerOwner: limit})
			var (
				wg            sync.WaitGroup
				mu            sync.Mutex
				created, full int
				unexpected    []error
				start         = make(chan struct{})
			)
			for i := range writers {
				wg.Go(func() {
					<-start
					_, err := s.Create(ctx, "alice", todos.NewTodo{Title: fmt.Sprint(i)})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						created++
					case errors.Is(err, todos.ErrLimit):
						full++
					default:
						unexpected = append(unexpected, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if len(unexpected) > 0 {
				t.Errorf("unexpected errors: %v", errors.Join(unexpected...))
			}
			n, err := s.Count(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if created != limit || full != writers-limit || n != limit {
				t.Errorf("created %d, refused %d, stored %d; want %d, %d, %d", created, full, n, limit, writers-limit, limit)
			}
		}},
		{"ids_unique_and_random", func(t *testing.T, db *gorm.DB) {
			s := mustOpenStore(t, db, todos.StoreConfig{})
			seen := map[string]bool{}
			var prev string
			var distance, pairs int
			for i := range 200 {
				td := mustCreate(t, s, "alice", todos.NewTodo{Title: fmt.Sprint(i)})
				if seen[td.ID] {
					t.Fatalf("ID %s twice", td.ID)
				}
				seen[td.ID] = true
				if len(td.ID) != 26 || strings.Trim(td.ID, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
					t.Errorf("ID %q is not 26 base32 characters", td.ID)
				}
				if prev != "" {
					for j := range td.ID {
						if td.ID[j] != prev[j] {
							distance++
						}
					}
					pairs++
				}
				prev = td.ID
			}
			// Random IDs differ in 31/32 of their characters; sequential
			// or time-based ones share most of theirs with the previous.
			if avg := float64(distance) / float64(pairs); avg < 22 {
				t.Errorf("consecutive IDs differ in %.1f of 26 characters on average; they look guessable", avg)
			}
		}},
		{"list_uses_the_owner_index", func(t *testing.T, db *gorm.DB) {
			rec := &sqlRecorder{}
			s := mustOpenStore(t, db.Session(&gorm.Session{Logger: rec}), todos.StoreConfig{})
			mustCreate(t, s, "alice", todos.NewTodo{Title: "x"})
			mustCreate(t, s, "alice", todos.NewTodo{Title: "y"})
			first, err := s.List(ctx, "alice", todos.ListOptions{Limit: 1})
			if err != nil || first.Next.IsZero() {
				t.Fatalf("first page: %+v, %v", first, err)
			}
			rec.reset()
			if _, err := s.List(ctx, "alice", todos.ListOptions{Completed: ptr(false), After: first.Next}); err != nil {
				t.Fatal(err)
			}
			query := rec.last()
			var plan []string
			if db.Name() == "postgres" {
				// The planner rightly prefers a sequential scan of a tiny
				// table; forbid it to see whether the index can serve.
				err := db.Transaction(func(tx *gorm.DB) error {
					if err := tx.Exec("SET LOCAL enable_seqscan = off").Error; err != nil {
						return err
					}
					return tx.Raw("EXPLAIN " + query).Scan(&plan).Error
				})
				if err != nil {
					t.Fatal(err)
				}
			} else {
				var rows []struct{ Detail string }
				if err := db.Raw("EXPLAIN QUERY PLAN " + query).Scan(&rows).Error; err != nil {
					t.Fatal(err)
				}
				for _, r := range rows {
					plan = append(plan, r.Detail)
				}
			}
			joined := strings.Join(plan, "\n")
			if !strings.Contains(joined, "idx_todos_owner_list") || strings.Contains(strings.ToUpper(joined), "TEMP B-TREE") || strings.Contains(joined, "Sort") {
				t.Errorf("List does not read the owner index in order:\n%s\nplan:\n%s", query, joined)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			forEachDatabase(t, tt.run)
		})
	}
}

// sqlRecorder is a GORM logger that keeps the SQL of the queries, values
// included, so that a test can ask the database how it would run them.
type sqlRecorder struct {
	mu      sync.Mutex
	queries []string
}

func (r *sqlRecorder) LogMode(logger.LogLevel) logger.Interface { return r }
func (r *sqlRecorder) Info(context.Context, string, ...any)     {}
func (r *sqlRecorder) Warn(context.Context, string, ...any)     {}
func (r *sqlRecorder) Error(context.Context, string, ...any)    {}
func (r *sqlRecorder) reset()                                   { r.mu.Lock(); r.queries = nil; r.mu.Unlock() }
func (r *sqlRecorder) Trace(_ context.Context, _ time.Time, fc func() (string, int64), _ error) {
	q, _ := fc()
	r.mu.Lock()
	r.queries = append(r.queries, q)
	r.mu.Unlock()
}

func (r *sqlRecorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queries) == 0 {
		return ""
	}
	return r.queries[len(r.queries)-1]
}
