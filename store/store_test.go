package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/redistest"
)

// implementations are the stores every conformance test runs against: the
// in-process one, and two Redis clients of one throwaway server (two
// instances of a service).
func implementations(t *testing.T) map[string]func(t *testing.T) (a, b store.Store) {
	return map[string]func(t *testing.T) (a, b store.Store){
		"memory": func(t *testing.T) (store.Store, store.Store) {
			m := store.NewMemory(store.MemoryOptions{})
			return m, m
		},
		"redis": func(t *testing.T) (store.Store, store.Store) {
			srv := redistest.Start(t)
			return openT(t, srv.URL), openT(t, srv.URL)
		},
	}
}

func openT(t *testing.T, url string) store.Store {
	t.Helper()
	s, err := store.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func forEach(t *testing.T, test func(t *testing.T, a, b store.Store)) {
	for name, open := range implementations(t) {
		t.Run(name, func(t *testing.T) {
			a, b := open(t)
			test(t, a, b)
		})
	}
}

func TestGetSetDelete(t *testing.T) {
	forEach(t, func(t *testing.T, a, b store.Store) {
		ctx := t.Context()
		if _, ok, err := a.Get(ctx, "k"); ok || err != nil {
			t.Fatalf("Get of an absent key: ok=%v err=%v", ok, err)
		}
		if err := a.Set(ctx, "k", []byte("v1"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if v, ok, err := b.Get(ctx, "k"); !ok || err != nil || string(v) != "v1" {
			t.Fatalf("Get from the other instance = %q %v %v, want v1", v, ok, err)
		}
		if err := b.Set(ctx, "k", []byte("v2"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if v, _, _ := a.Get(ctx, "k"); string(v) != "v2" {
			t.Fatalf("after a second Set: %q, want v2", v)
		}
		if err := a.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if err := a.Delete(ctx, "k"); err != nil {
			t.Fatalf("Delete of an absent key: %v", err)
		}
		if _, ok, _ := b.Get(ctx, "k"); ok {
			t.Fatal("Get after Delete found the key")
		}
		if err := a.Set(ctx, "k", []byte("v"), 0); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("Set with ttl 0: %v, want ErrInvalid", err)
		}
		if _, err := a.SetNX(ctx, "k", []byte("v"), -time.Second); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("SetNX with a negative ttl: %v, want ErrInvalid", err)
		}
	})
}

func TestTTLExpiry(t *testing.T) {
	forEach(t, func(t *testing.T, a, b store.Store) {
		ctx := t.Context()
		if err := a.Set(ctx, "short", []byte("v"), 150*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if won, err := b.SetNX(ctx, "lock", []byte("me"), 150*time.Millisecond); !won || err != nil {
			t.Fatalf("SetNX of an absent key: %v %v", won, err)
		}
		if _, ok, _ := b.Get(ctx, "short"); !ok {
			t.Fatal("gone before its TTL")
		}
		time.Sleep(400 * time.Millisecond)
		if _, ok, _ := b.Get(ctx, "short"); ok {
			t.Fatal("still there after its TTL")
		}
		if won, err := a.SetNX(ctx, "lock", []byte("you"), time.Minute); !won || err != nil {
			t.Fatalf("SetNX after the lock expired: %v %v, want a win", won, err)
		}
	})
}

func TestSetNXRaceOneWinner(t *testing.T) {
	forEach(t, func(t *testing.T, a, b store.Store) {
		ctx := t.Context()
		for round := range 5 {
			key := fmt.Sprintf("race-%d", round)
			var wins, fails atomic.Int32
			var wg sync.WaitGroup
			for i := range 40 {
				s := a
				if i%2 == 1 {
					s = b
				}
				wg.Go(func() {
					won, err := s.SetNX(ctx, key, []byte(fmt.Sprint(i)), time.Minute)
					if err != nil {
						fails.Add(1)
					}
					if won {
						wins.Add(1)
					}
				})
			}
			wg.Wait()
			if wins.Load() != 1 || fails.Load() != 0 {
				t.Fatalf("round %d: %d winners and %d errors of 40, want exactly one winner", round, wins.Load(), fails.Load())
			}
		}
	})
}

func TestCompareAndDelete(t *testing.T) {
	forEach(t, func(t *testing.T, a, b store.Store) {
		ctx := t.Context()
		if ok, err := a.CompareAndDelete(ctx, "lock", []byte("me")); ok || err != nil {
			t.Fatalf("on an absent key: %v %v", ok, err)
		}
		if won, _ := a.SetNX(ctx, "lock", []byte("me"), time.Minute); !won {
			t.Fatal("SetNX lost on an absent key")
		}
		if ok, err := b.CompareAndDelete(ctx, "lock", []byte("someone else")); ok || err != nil {
			t.Fatalf("with another value: %v %v, want no delete", ok, err)
		}
		if v, ok, _ := a.Get(ctx, "lock"); !ok || string(v) != "me" {
			t.Fatal("the lock went with another holder's value")
		}
		if ok, err := b.CompareAndDelete(ctx, "lock", []byte("me")); !ok || err != nil {
			t.Fatalf("with the holder's value: %v %v, want a delete", ok, err)
		}
		if _, ok, _ := a.Get(ctx, "lock"); ok {
			t.Fatal("still there after CompareAndDelete")
		}
	})
}

func TestSubscribeWakes(t *testing.T) {
	forEach(t, func(t *testing.T, a, b store.Store) {
		ctx := t.Context()
		sub, err := a.Subscribe(ctx, "topic")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		other, err := a.Subscribe(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		// Two subscribers of one topic share the server's subscription.
		twin, err := a.Subscribe(ctx, "topic")
		if err != nil {
			t.Fatal(err)
		}
		twin.Close()
		twin.Close()

		// Published by the other instance right after Subscribe returned:
		// delivered.
		if err := b.Publish(ctx, "topic"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-sub.C:
		case <-time.After(3 * time.Second):
			t.Fatal("Publish did not wake the subscriber")
		}
		select {
		case <-other.C:
			t.Fatal("a Publish of another topic woke a subscriber")
		case <-time.After(100 * time.Millisecond):
		}
		// Wake-ups coalesce rather than block the publisher.
		for range 3 {
			if err := b.Publish(ctx, "topic"); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-sub.C:
		case <-time.After(3 * time.Second):
			t.Fatal("no wake-up after three Publishes")
		}
		// A closed subscription gets nothing more.
		sub.Close()
		if err := b.Publish(ctx, "topic"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		select {
		case <-sub.C:
			// At most the one wake-up that may have been pending.
			select {
			case <-sub.C:
				t.Fatal("a closed subscription kept receiving")
			case <-time.After(100 * time.Millisecond):
			}
		default:
		}
	})
}

func TestMemoryBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m := store.NewMemory(store.MemoryOptions{MaxEntries: 3, Now: clock})
	ctx := context.Background()
	for i := range 3 {
		if err := m.Set(ctx, fmt.Sprint(i), []byte("v"), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Set(ctx, "3", []byte("v"), time.Second); !errors.Is(err, store.ErrFull) {
		t.Fatalf("a fourth live key: %v, want ErrFull", err)
	}
	if won, err := m.SetNX(ctx, "3", []byte("v"), time.Second); won || !errors.Is(err, store.ErrFull) {
		t.Fatalf("SetNX of a fourth live key: %v %v, want ErrFull", won, err)
	}
	if err := m.Set(ctx, "0", []byte("w"), time.Second); err != nil {
		t.Fatalf("replacing a key when full: %v", err)
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	if err := m.Set(ctx, "3", []byte("v"), time.Second); err != nil {
		t.Fatalf("after every entry expired: %v", err)
	}
	if n := m.Len(); n != 1 {
		t.Fatalf("%d entries held after the sweep, want 1", n)
	}
}

func TestOpen(t *testing.T) {
	s, err := store.Open("")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*store.Memory); !ok {
		t.Fatalf("Open(\"\") = %T, want the in-process store", s)
	}
	for _, bad := range []string{
		"http://127.0.0.1:6379",
		"memcached://127.0.0.1",
		"127.0.0.1:6379",
		"redis://:sekrit-password@127.0.0.1:6379/notanumber",
		"redis://:sekrit-password@[::1%zz]:6379/0",
		"rediss://user:sekrit-password@127.0.0.1:6379/0?dial_timeout=forever",
	} {
		s, err := store.Open(bad)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), "STORE_URL") {
			t.Errorf("Open(%q): %v, which does not name STORE_URL", bad, err)
		}
		if strings.Contains(err.Error(), "sekrit") {
			t.Errorf("Open(%q): the error shows the password: %v", bad, err)
		}
	}
	if r := store.Redacted("redis://user:sekrit-password@127.0.0.1:6379/0"); strings.Contains(r, "sekrit") {
		t.Errorf("Redacted: %q", r)
	}
	if r := store.Redacted(""); r != "in-process" {
		t.Errorf("Redacted(\"\") = %q", r)
	}
}

// TestRedisOutage: with the server down every call fails quickly with
// ErrUnavailable; once it is back the same store works again, pub/sub
// included, without being reopened.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	a, b := openT(t, srv.URL), openT(t, srv.URL)
	ctx := t.Context()
	if err := a.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	sub, err := a.Subscribe(ctx, "topic")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	srv.Stop()
	start := time.Now()
	if _, _, err := a.Get(ctx, "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get with the server down: %v, want ErrUnavailable", err)
	}
	if _, err := a.SetNX(ctx, "lock", []byte("me"), time.Minute); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("SetNX with the server down: %v, want ErrUnavailable", err)
	}
	if _, err := a.Subscribe(ctx, "other"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Subscribe with the server down: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("the failures took %v", d)
	}

	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		won, err := a.SetNX(ctx, "lock", []byte("me"), time.Minute)
		if err == nil {
			if !won {
				t.Fatal("SetNX lost on a fresh server")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing 10s after the server came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The subscription made before the outage is renewed by go-redis.
	for {
		if err := b.Publish(ctx, "topic"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-sub.C:
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the subscription did not come back after the outage")
		}
	}
}

// TestRedisTTLRoundsUp: Redis keeps values for whole milliseconds, so a
// TTL between two is rounded up (never down, never to 0, which would mean
// no expiry or an error): what the server receives is checked on its
// MONITOR feed, not inferred from PTTL, which shrinks while it is read.
func TestRedisTTLRoundsUp(t *testing.T) {
	srv := redistest.Start(t)
	s := openT(t, srv.URL)
	mon := monitor(t, srv.Addr)
	ctx := t.Context()
	for _, c := range []struct {
		ttl  time.Duration
		want string // the expiry arguments Redis sees
	}{
		{1500 * time.Microsecond, `"px" "2"`},
		{300 * time.Microsecond, `"px" "1"`},
		{time.Nanosecond, `"px" "1"`},
		{2 * time.Millisecond, `"px" "2"`},
		{1000*time.Millisecond + time.Nanosecond, `"px" "1001"`},
		{3 * time.Second, `"ex" "3"`},
	} {
		key := fmt.Sprintf("ttl-%d", c.ttl)
		if err := s.Set(ctx, key, []byte("v"), c.ttl); err != nil {
			t.Fatal(err)
		}
		if line := mon(); !strings.Contains(line, `"set" "`+key+`" "v" `+c.want) {
			t.Errorf("Set with ttl %v sent %s, want %s", c.ttl, line, c.want)
		}
		if _, err := s.SetNX(ctx, key+"-nx", []byte("v"), c.ttl); err != nil {
			t.Fatal(err)
		}
		if line := mon(); !strings.Contains(line, `"set" "`+key+`-nx" "v" `+c.want+` "nx"`) {
			t.Errorf("SetNX with ttl %v sent %s, want %s nx", c.ttl, line, c.want)
		}
	}
}

// monitor connects to the server's MONITOR feed and returns a function
// giving the next SET command (lowercased) it shows, skipping the
// connection handshakes (HELLO, CLIENT SETINFO).
func monitor(t *testing.T, addr string) func() string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rd := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("reading MONITOR: %v", err)
		}
		return strings.ToLower(strings.TrimSpace(line))
	}
	if ok := next(); ok != "+ok" {
		t.Fatalf("MONITOR answered %q", ok)
	}
	return func() string {
		t.Helper()
		for {
			if line := next(); strings.Contains(line, `] "set" `) {
				return line
			}
		}
	}
}

// TestRedisOutageLogsNothingPerCall: go-redis's own complaint about each
// connection it fails to make goes to slog at Debug (which its default
// logger, writing to stderr at every call, would not show): the store's
// callers log an outage once.
func TestRedisOutageLogsNothingPerCall(t *testing.T) {
	srv := redistest.Start(t)
	s := openT(t, srv.URL)
	srv.Stop()
	var buf syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	for range 3 {
		if _, _, err := s.Get(t.Context(), "k"); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Get with the server down: %v", err)
		}
	}
	if n := strings.Count(buf.String(), "level=DEBUG msg=\"go-redis: "); n == 0 {
		t.Errorf("go-redis's messages did not reach slog at Debug:\n%s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
