package main

import (
	"bufio"

	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestShutdownDuringLoad: writers keep posting while the server is told to
// stop; every write it acknowledged is in the database afterwards.
func TestShutdownDuringLoad(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	env := jwtEnv(t, is)
	s := startServer(t, env)
	tok := is.Token(t, "alice", nil)
	var acked sync.Map
	var nAcked atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				title := fmt.Sprintf("w%d-%d", w, i)
				req, _ := http.NewRequest("POST", s.URL+"/todos", strings.NewReader(`{"title":"`+title+`"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the server has gone
				}
				resp.Body.Close()
				if resp.StatusCode == 201 {
					acked.Store(title, true)
					nAcked.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := s.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	close(stop)
	wg.Wait()
	if nAcked.Load() == 0 {
		t.Fatal("no write was acknowledged before shutdown")
	}
	// Same database, new server.
	s2 := startServer(t, env)
	stored := map[string]bool{}
	next := "/todos?limit=500"
	c := newCaller(t, s2.URL, tok)
	for next != "" {
		r := c.do("GET", next, nil)
		expect(t, r, 200)
		for _, td := range r.todos(t) {
			stored[td["title"].(string)] = true
		}
		next = nextLink(r.Header.Get("Link"))
	}
	acked.Range(func(k, _ any) bool {
		if !stored[k.(string)] {
			t.Errorf("acknowledged write %s was lost", k)
		}
		return true
	})
	t.Logf("%d acknowledged writes, %d stored", nAcked.Load(), len(stored))
}

// buildBinary compiles todo-api once per test run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "todo-api-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "todo-api")
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// startBinary runs the real todo-api binary and waits until it is ready.
func startBinary(t *testing.T, env map[string]string) (*exec.Cmd, string) {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range withDefault(env, "LISTEN_ADDR", "127.0.0.1:0") {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.Contains(line, `"msg":"listening"`) {
				_, after, _ := strings.Cut(line, `"addr":"`)
				a, _, _ := strings.Cut(after, `"`)
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("binary did not start")
	}
	return nil, ""
}

// TestKill9KeepsAcknowledgedWrites runs the real binary, kills it with
// SIGKILL right after a burst of acknowledged writes, and finds every one
// of them after a restart.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	is := authtest.NewIssuer(t, todoScopes)
	env := jwtEnv(t, is)
	cmd, url := startBinary(t, env)
	c := newCaller(t, url, is.Token(t, "alice", nil))
	for i := range 50 {
		expect(t, c.do("POST", "/todos", map[string]any{"title": fmt.Sprint("durable ", i)}), 201)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	_, url2 := startBinary(t, env)
	c2 := newCaller(t, url2, c.token)
	if got := c2.do("GET", "/todos?limit=100", nil).todos(t); len(got) != 50 {
		t.Fatalf("%d of 50 acknowledged writes survived kill -9", len(got))
	}

}
