// Package redistest starts a throwaway Redis (or Valkey) server for tests:
// its own process on a free loopback port, no persistence, stopped at the
// test's end, which a test can also stop and start again to play an
// outage.
package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process a test started.
type Server struct {
	// URL is redis://127.0.0.1:port/0, for store.Open (STORE_URL).
	URL  string
	Addr string

	t    testing.TB
	bin  string
	port int

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// Binary is the server found on PATH: redis-server, else valkey-server, or
// "".
func Binary() string {
	for _, name := range []string{"redis-server", "valkey-server"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Start starts a server and stops it when the test ends. Without a server
// binary it skips the test, or fails it when the CI environment variable is
// set, so that CI never passes by skipping.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "redis-server (or valkey-server) not found on PATH: Redis tests need it (apt-get install redis-server)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI is set, so this fails rather than skips")
		}
		t.Skip(msg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{t: t, bin: bin, port: port, Addr: "127.0.0.1:" + strconv.Itoa(port)}
	s.URL = "redis://" + s.Addr + "/0"
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts the server again on its port after Stop.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	out := &bytes.Buffer{}
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "yes")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting %s: %v", s.bin, err)
	}
	s.cmd, s.out = cmd, out
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			s.cmd = nil
			s.t.Fatalf("%s on %s did not answer: %v\n%s", s.bin, s.Addr, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (by its PID) and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Dump returns every key and its value (string values; other types as
// their TYPE), for tests that check what the server holds.
func (s *Server) Dump() map[string]string {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	ctx := context.Background()
	out := map[string]string{}
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := c.Get(ctx, k).Result()
		if err != nil {
			typ, _ := c.Type(ctx, k).Result()
			v = fmt.Sprintf("(%s)", typ)
		}
		out[k] = v
	}
	if err := iter.Err(); err != nil {
		s.t.Fatalf("scanning %s: %v", s.Addr, err)
	}
	return out
}

// Do runs one raw command (as someone who can write to Redis would), for
// tests that plant values of the wrong type or size; it fails the test on
// an error reply.
func (s *Server) Do(args ...any) any {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil && err != redis.Nil {
		s.t.Fatalf("redis %v: %v", args[0], err)
	}
	return v
}
