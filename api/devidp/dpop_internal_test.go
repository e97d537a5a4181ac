package devidp

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

func TestNormalizeHTU(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://127.0.0.1:9000/token", "http://127.0.0.1:9000/token"},
		{"HTTP://LocalHost:9000/token", "http://localhost:9000/token"},
		{"http://localhost:80/token", "http://localhost/token"},
		{"https://idp.example:443/token", "https://idp.example/token"},
		{"https://idp.example:80/token", "https://idp.example:80/token"},
		{"http://idp.example", "http://idp.example/"},
		{"http://idp.example/tok%65n", "http://idp.example/token"},
		{"http://idp.example/a%3ab", "http://idp.example/a:b"},
		{"http://idp.example/token?x=1#y", "http://idp.example/token"},
		{"http://[::1]:9000/token", "http://[::1]:9000/token"},
	} {
		if got, err := normalizeHTU(tc.in); err != nil || got != tc.want {
			t.Errorf("normalizeHTU(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "/token", "ftp://idp.example/token", "http://u:p@idp.example/token", "http:///token",
		"http://idp.example/a%2Ftoken", "mailto:a@b", "http://idp.example/%zz"} {
		if got, err := normalizeHTU(bad); err == nil {
			t.Errorf("normalizeHTU(%q) = %q, want an error", bad, got)
		}
	}
}

// TestJTISetBounded: the replay set refuses a replay, refuses new ids
// when full of live ones rather than forget one, and takes new ids again
// once old ones have expired.
func TestJTISetBounded(t *testing.T) {
	s := newJTISet(3)
	now := time.Unix(1_000_000, 0)
	for i := range 3 {
		if err := s.add(fmt.Sprint(i), now.Add(time.Minute), now); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.add("1", now.Add(time.Minute), now); !errors.Is(err, errDPoPProof) {
		t.Fatalf("replay: %v", err)
	}
	if err := s.add("new", now.Add(time.Minute), now); !errors.Is(err, errDPoPReplayFull) {
		t.Fatalf("full: %v", err)
	}
	later := now.Add(2 * time.Minute)
	if err := s.add("new", later.Add(time.Minute), later); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if len(s.seen) != 1 {
		t.Fatalf("%d ids remembered, want 1", len(s.seen))
	}
	// An expired id may come again (its proof is refused for its iat).
	if err := s.add("1", later.Add(time.Minute), later); err != nil {
		t.Fatalf("expired id: %v", err)
	}
}

// TestJTISetConcurrent: of many concurrent uses of one proof, one wins.
func TestJTISetConcurrent(t *testing.T) {
	s := newJTISet(DPoPReplayLimit)
	now := time.Now()
	var wg sync.WaitGroup
	var accepted atomic.Int32
	for range 32 {
		wg.Go(func() {
			if s.add("jkt jti", now.Add(time.Minute), now) == nil {
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	if accepted.Load() != 1 {
		t.Fatalf("%d uses of one proof accepted, want 1", accepted.Load())
	}
}

// FuzzVerifyProof: whatever the DPoP header holds, verify answers with a
// proof or a proofError, never a panic or another error.
func FuzzVerifyProof(f *testing.F) {
	v, err := newDPoPVerifier("http://127.0.0.1:9000", time.Now)
	if err != nil {
		f.Fatal(err)
	}
	k := authtest.NewDPoPKey(f, "ES256")
	f.Add(k.Proof(f, "POST", "http://127.0.0.1:9000/token", ""), "")
	f.Add(k.Proof(f, "GET", "http://127.0.0.1:9000/userinfo", "tok"), "tok")
	f.Add("e30.e30.", "")
	f.Fuzz(func(t *testing.T, proof, token string) {
		htu := v.tokenHTU
		if token != "" {
			htu = v.userinfoHTU
		}
		p, err := v.verify(proof, "POST", htu, token)
		var pe *proofError
		if (p == nil) == (err == nil) || (err != nil && !errors.As(err, &pe)) {
			t.Fatalf("verify = %v, %v", p, err)
		}
	})
}
