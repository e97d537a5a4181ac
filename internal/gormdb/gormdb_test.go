package gormdb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/todos"
	"github.com/tollgate-dev/tollgate/todos/todostest"
	"gorm.io/gorm"
)

func mustOpen(tb testing.TB, databaseURL string, logger *slog.Logger) *gorm.DB {
	tb.Helper()
	db, err := Open(context.Background(), databaseURL, logger)
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

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, url, want string
	}{
		{"empty", "", "unsupported scheme"},
		{"bare_path", "todos.db", "unsupported scheme"},
		{"mysql", "mysql://user:pw@localhost/db", `unsupported scheme "mysql"`},
		{"sqlite_without_path", "sqlite:", "needs a file path"},
		{"sqlite_uri_filename", "sqlite:file:x.db", "not an SQLite URI filename"},
		{"sqlite_bad_parameters", "sqlite:x.db?%zz", "malformed parameters"},
		{"sqlite_missing_directory", "sqlite:" + filepath.Join(dir, "no", "such", "dir", "x.db"), "sqlite"},
		{"postgres_without_slashes", "postgres:localhost", "postgres://"},
		{"postgres_unreachable", "postgres://tollgate:hunter2@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "postgres"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, err := Open(context.Background(), tt.url, nil)
			if err == nil {
				sqlDB, _ := db.DB()
				_ = sqlDB.Close()
				t.Fatalf("Open(%q) succeeded", tt.url)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "DATABASE_URL: ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want it to start with DATABASE_URL and say %q", msg, tt.want)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q shows the password", msg)
			}
		})
	}
}

// TestSQLiteSettings checks that every pooled connection, not only the
// first, has the settings the server relies on.
func TestSQLiteSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query string
		want        string
	}{
		{"default", "", "wal 5000 1 1"},
		{"synchronous_full", "?_synchronous=FULL", "wal 5000 2 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpen(t, todostest.SQLiteURL(t)+tt.query, nil)
			sqlDB, _ := db.DB()
			ctx := context.Background()
			// Hold every connection of the pool at once.
			for i := range sqliteMaxConns {
				conn, err := sqlDB.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				var mode string
				var timeout, sync, fk int
				for q, dst := range map[string]any{
					"PRAGMA journal_mode": &mode, "PRAGMA busy_timeout": &timeout,
					"PRAGMA synchronous": &sync, "PRAGMA foreign_keys": &fk,
				} {
					if err := conn.QueryRowContext(ctx, q).Scan(dst); err != nil {
						t.Fatal(err)
					}
				}
				if got := fmt.Sprint(mode, " ", timeout, " ", sync, " ", fk); got != tt.want {
					t.Errorf("connection %d: journal_mode, busy_timeout, synchronous, foreign_keys = %s; want %s", i, got, tt.want)
				}
			}
		})
	}
}

func TestOpenMemory(t *testing.T) {
	t.Parallel()
	db := mustOpen(t, "sqlite::memory:", nil)
	store, err := todos.NewStore(db, todos.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Concurrent use must all land in the one database.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := store.Create(ctx, "alice", todos.NewTodo{Title: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, err := store.Count(ctx, "alice"); err != nil || n != 16 {
		t.Errorf("Count = %d, %v; want 16", n, err)
	}
}

// TestConcurrentWriters: 64 writers at once, each several times, see no
// "database is locked" and lose nothing, on both databases.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	for _, d := range todostest.Databases {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			store, err := todos.NewStore(mustOpen(t, d.URL(t), nil), todos.StoreConfig{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := store.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			const writers, each = 64, 5
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range writers {
				wg.Go(func() {
					<-start
					owner := fmt.Sprint("user", i)
					for j := range each {
						td, err := store.Create(ctx, owner, todos.NewTodo{Title: fmt.Sprint(j)})
						if err != nil {
							t.Errorf("writer %d: %v", i, err)
							return
						}
						if _, err := store.Update(ctx, owner, td.ID, todos.Patch{Completed: new(true)}, nil); err != nil {
							t.Errorf("writer %d: %v", i, err)
						}
					}
					if _, err := store.DeleteAll(ctx, owner, true); err != nil {
						t.Errorf("writer %d: %v", i, err)
					}
					if _, err := store.Create(ctx, owner, todos.NewTodo{Title: "last"}); err != nil {
						t.Errorf("writer %d: %v", i, err)
					}
				})
			}
			close(start)
			wg.Wait()
			for i := range writers {
				if n, err := store.Count(ctx, fmt.Sprint("user", i)); err != nil || n != 1 {
					t.Errorf("user%d has %d todos (%v), want 1", i, n, err)
				}
			}
		})
	}
}

// TestGormLogKeepsValuesOut: a failed query is logged with its SQL, never
// with the values bound to it, which are users' data.
func TestGormLogKeepsValuesOut(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	db := mustOpen(t, todostest.SQLiteURL(t), logger)
	var n int
	if err := db.Raw("SELECT count(*) FROM no_such_table WHERE secret = ?", "hunter2").Scan(&n).Error; err == nil {
		t.Fatal("the query succeeded")
	}
	// And through the store, whose table does not exist yet.
	store, err := todos.NewStore(db, todos.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(context.Background(), "hunter2", "AAAAAAAAAAAAAAAAAAAAAAAAAA"); err == nil {
		t.Fatal("Get succeeded without a table")
	}
	mu.Lock()
	defer mu.Unlock()
	out := buf.String()
	if !strings.Contains(out, "no_such_table") || !strings.Contains(out, "todos") || !strings.Contains(out, "database query failed") {
		t.Errorf("the failure was not logged: %s", out)
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("the log shows a bound value: %s", out)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestSQLiteSurvivesKill9 runs a writer in a child process, kills it with
// SIGKILL while it writes, and checks that every write it acknowledged is
// in the database: the claim made for synchronous=NORMAL at sqliteDefaults.
func TestSQLiteSurvivesKill9(t *testing.T) {
	if path := os.Getenv("TOLLGATE_KILL9_WRITER"); path != "" {
		runKill9Writer(path)
		return
	}
	t.Parallel()
	dbURL := todostest.SQLiteURL(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteSurvivesKill9$")
	cmd.Env = append(os.Environ(), "TOLLGATE_KILL9_WRITER="+dbURL)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		id, ok := strings.CutPrefix(lines.Text(), "acked ")
		if !ok {
			continue
		}
		acked = append(acked, id)
		if len(acked) == 200 {
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the writer was not killed: %v (%d acknowledged)", err, len(acked))
	}
	store, err := todos.NewStore(mustOpen(t, dbURL, nil), todos.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range acked {
		if _, err := store.Get(ctx, "alice", id); err != nil {
			t.Errorf("acknowledged todo %s: %v", id, err)
		}
	}
	n, _ := store.Count(ctx, "alice")
	t.Logf("%d writes acknowledged before the kill, %d in the database", len(acked), n)
}

// runKill9Writer is the child of TestSQLiteSurvivesKill9: it writes todos
// until killed, printing each ID once its commit has returned.
func runKill9Writer(databaseURL string) {
	ctx := context.Background()
	db, err := Open(ctx, databaseURL, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	store, err := todos.NewStore(db, todos.StoreConfig{MaxTodosPerOwner: 1_000_000})
	if err == nil {
		err = store.Migrate(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		td, err := store.Create(ctx, "alice", todos.NewTodo{Title: fmt.Sprint("write ", i)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("acked", td.ID)
	}
	os.Exit(3) // never killed
}
