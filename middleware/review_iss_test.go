package middleware

// Review of issue 12 (many issuers, provider token shapes): proofs of the
// findings, each a test that failed before its fix. See
// /work/wt/review-iss-REPORT.md.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// unsignedToken is a compact JWS with the given payload and a signature
// of garbage: enough to reach the issuer lookup, never accepted.
func unsignedToken(payload map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "k"})
	p, _ := json.Marshal(payload)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(p) + "." + enc([]byte("not a signature"))
}

// TestReviewIssResolverPanics: an IssuerResolver (or Entra's Allow) that
// panics on an iss an outsider chose must cost that request a 503, not the
// process. The resolver runs inside singleflight.DoChan, which re-panics
// a panic of its function on a fresh goroutine on purpose, where neither
// net/http nor any recovery middleware can catch it: one token took the
// whole server down. The check runs in a child process so that the crash
// shows as this test's failure.
func TestReviewIssResolverPanics(t *testing.T) {
	if os.Getenv("TOLLGATE_REVIEW_ISS_CHILD") == "panic" {
		resolverPanicsChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReviewIssResolverPanics$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TOLLGATE_REVIEW_ISS_CHILD=panic")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > 2000 {
			out = out[:2000]
		}
		t.Fatalf("a token whose iss makes the IssuerResolver panic ended the process: %v\n%s", err, out)
	}
}

func resolverPanicsChild(t *testing.T) {
	for name, resolve := range map[string]func() IssuerResolver{
		"IssuerResolver": func() IssuerResolver {
			return func(ctx context.Context, iss string) (IssuerConfig, error) {
				// A resolver's bug: an iss with fewer parts than it expects.
				tenant := strings.Split(iss, "/")[5]
				return IssuerConfig{}, fmt.Errorf("%w: %s", ErrUnknownIssuer, tenant)
			}
		},
		"Entra Allow": func() IssuerResolver {
			r, err := Entra{Allow: func(ctx context.Context, tid string) (bool, error) {
				panic("customer table not initialised")
			}}.Resolver()
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a, err := New(ctx, Config{
				Audiences:      []string{"api"},
				IssuerResolver: resolve(),
				Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			h := a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			// More tokens than there are resolver slots: a panic must
			// give its slot back.
			for i := range 2 * maxResolving {
				tok := unsignedToken(map[string]any{"iss": fmt.Sprintf("https://login.microsoftonline.com/%08d-0000-0000-0000-000000000000/v2.0", i), "sub": "x", "exp": 4e9})
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				r.Header.Set("Authorization", "Bearer "+tok)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusServiceUnavailable {
					t.Fatalf("token %d: status %d, want 503", i, w.Code)
				}
			}
		})
	}
}

// TestReviewIssFloodExpiresTrust: a flood of invented issuers cannot push
// a trusted issuer out of its table, but its trust expires every 5
// minutes, and renewing it needs one of the 8 resolver slots the flood
// holds: with a resolver that takes a moment (a database lookup in
// Entra's Allow), every token of a trusted tenant was answered 503 from
// the moment its trust expired until it won a slot. Renewing a trust
// must not compete with invented issuers; a renewal the resolver refuses
// must still refuse.
func TestReviewIssFloodExpiresTrust(t *testing.T) {
	is := authtest.NewIssuer(t)
	const good, revoked = "https://good.example", "https://revoked.example"
	var revokedOK atomic.Bool
	revokedOK.Store(true)
	release := make(chan struct{})
	var inside atomic.Int64
	now := new(atomic.Int64)
	now.Store(time.Unix(1_900_000_000, 0).UnixNano())
	s := newTestSet(t, Config{Audiences: []string{"api"}, IssuerResolver: func(ctx context.Context, iss string) (IssuerConfig, error) {
		switch {
		case iss == good, iss == revoked && revokedOK.Load():
			return IssuerConfig{JWKSURL: is.URL + "/jwks"}, nil
		case iss == revoked:
			return IssuerConfig{}, ErrUnknownIssuer
		}
		inside.Add(1)
		<-release // a slow lookup of an invented issuer
		return IssuerConfig{}, ErrUnknownIssuer
	}}, now)
	ctx := context.Background()
	for _, iss := range []string{good, revoked} {
		if _, err := s.lookup(ctx, iss); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	var once sync.Once
	stop := func() { once.Do(func() { close(release) }) }
	defer stop()
	for i := range maxResolving {
		wg.Go(func() { _, _ = s.lookup(ctx, fmt.Sprintf("https://invented.example/%d", i)) })
	}
	for inside.Load() < maxResolving {
		time.Sleep(time.Millisecond)
	}
	// Every slot is taken by the flood; the trusted issuers' answers expire.
	now.Add(int64(resolvedTTL + time.Second))
	revokedOK.Store(false)

	if _, err := s.lookup(ctx, good); err != nil {
		t.Errorf("a trusted issuer, once its trust expired during a flood: %v", err)
	}
	if _, err := s.lookup(ctx, revoked); Reason(err) != ReasonUnknownIssuer {
		t.Errorf("an issuer the resolver no longer trusts, during a flood: %v", err)
	}
	// An invented issuer still waits for a free slot.
	if _, err := s.lookup(ctx, "https://invented.example/new"); Reason(err) != ReasonOverloaded {
		t.Errorf("an invented issuer during the flood: %v", err)
	}
}

// TestReviewIssResolverIgnoresContext: IssuerResolver promises that a
// resolver is called "within HTTPTimeout", but only its context said so:
// a resolver that does not watch its context (a blocking client without
// its own timeout) kept every request of that iss waiting for as long as
// it took, however long, unless the request's own context ended.
func TestReviewIssResolverIgnoresContext(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	s := newTestSet(t, Config{
		Audiences:   []string{"api"},
		HTTPTimeout: 100 * time.Millisecond,
		IssuerResolver: func(ctx context.Context, iss string) (IssuerConfig, error) {
			<-block // ignores ctx
			return IssuerConfig{}, ErrUnknownIssuer
		},
	}, nil)
	done := make(chan error, 1)
	go func() {
		_, err := s.lookup(context.Background(), "https://slow.example")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want 503", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the request still waits for the resolver 3s after HTTPTimeout (100ms)")
	}
}
