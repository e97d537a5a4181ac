package middleware

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The examples of RFC 9449: the proof of the token request (§4.2, Figure
// 3, whose key's thumbprint is §6.1's) and of the protected resource
// request (§7.1, Figure 13), with the example access token. Copied from
// the RFC's text as two other projects' test suites carry it, byte for
// byte the same.
const (
	rfcJKT           = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	rfcTokenProof    = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
	rfcResourceProof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
	rfcAccessToken   = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	rfcATH           = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
)

func testDPoPVerifier() *dpopVerifier {
	cfg := Config{DPoP: DPoPAllowed}
	cfg.setDefaults()
	return newDPoPVerifier(&cfg)
}

func TestDPoPRFCExamples(t *testing.T) {
	v := testDPoPVerifier()
	sum := sha256.Sum256([]byte(rfcAccessToken))
	if got := base64.RawURLEncoding.EncodeToString(sum[:]); got != rfcATH {
		t.Fatalf("ath of the example token = %s, want %s", got, rfcATH)
	}
	for _, tc := range []struct {
		name, proof, method, htu, token, jti string
		iat                                  int64
	}{
		{"§4.2 token request", rfcTokenProof, "POST", "https://server.example.com/token", "", "-BwC3ESc6acc2lTc", 1562262616},
		{"§7.1 resource request", rfcResourceProof, "GET", "https://resource.example.org/protectedresource", rfcAccessToken, "e1j3V_bKic8-LAEB", 1562262618},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := time.Unix(tc.iat, 0).Add(2 * time.Second)
			jkt, c, err := v.verifyProof(tc.proof, tc.method, tc.htu, tc.token, at)
			if err != nil {
				t.Fatal(err)
			}
			if jkt != rfcJKT || c.jti != tc.jti || c.iat != float64(tc.iat) {
				t.Fatalf("jkt %s jti %s iat %v", jkt, c.jti, c.iat)
			}
			// The same proof, a window later, or for another request.
			if _, _, err := v.verifyProof(tc.proof, tc.method, tc.htu, tc.token, at.Add(time.Minute)); !errors.Is(err, ErrDPoPProof) {
				t.Errorf("a minute later: %v", err)
			}
			if _, _, err := v.verifyProof(tc.proof, "PUT", tc.htu, tc.token, at); !errors.Is(err, ErrDPoPProof) {
				t.Errorf("PUT: %v", err)
			}
			if _, _, err := v.verifyProof(tc.proof, tc.method, tc.htu+"x", tc.token, at); !errors.Is(err, ErrDPoPProof) {
				t.Errorf("other URL: %v", err)
			}
			// The same request written otherwise is the same URL.
			upper := strings.Replace(strings.ToUpper(tc.htu[:strings.Index(tc.htu[8:], "/")+8]), "HTTPS", "HTTPS", 1) + ":443" + tc.htu[strings.Index(tc.htu[8:], "/")+8:] + "?q=1"
			if _, _, err := v.verifyProof(tc.proof, tc.method, upper, tc.token, at); err != nil {
				t.Errorf("%s: %v", upper, err)
			}
		})
	}
	if _, _, err := v.verifyProof(rfcResourceProof, "GET", "https://resource.example.org/protectedresource", "another token", time.Unix(1562262618, 0)); !errors.Is(err, ErrDPoPProof) {
		t.Errorf("another token: %v", err)
	}
}

func TestNormalizeHTU(t *testing.T) {
	for in, want := range map[string]string{
		"https://example.com/a":               "https://example.com/a",
		"HTTPS://Example.COM/a":               "https://example.com/a",
		"https://example.com:443/a":           "https://example.com/a",
		"https://example.com:/a":              "https://example.com/a",
		"http://example.com:80/a":             "http://example.com/a",
		"http://example.com:0080/a":           "http://example.com/a",
		"https://example.com:80/a":            "https://example.com:80/a",
		"http://example.com:443/a":            "http://example.com:443/a",
		"https://example.com":                 "https://example.com/",
		"https://example.com/a?b=c#d":         "https://example.com/a",
		"https://example.com/a#d?e":           "https://example.com/a",
		"https://example.com/a/./b/../c":      "https://example.com/a/c",
		"https://example.com/a/b/c/./../../g": "https://example.com/a/g",
		"https://example.com/..":              "https://example.com/",
		"https://example.com/%7euser":         "https://example.com/~user",
		"https://example.com/%7bfoo%7d":       "https://example.com/%7Bfoo%7D",
		"https://example.com/%2e%2E/a":        "https://example.com/a",
		"https://example.com/a%2fb":           "https://example.com/a%2Fb",
		"https://[::1]:8443/x":                "https://[::1]:8443/x",
		"https://[::1]/x":                     "https://[::1]/x",
		"https://example.com/a/":              "https://example.com/a/",
		"http://example.com/a//b":             "http://example.com/a//b",
	} {
		got, err := normalizeHTU(in)
		if err != nil || got != want {
			t.Errorf("normalizeHTU(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/a", "example.com/a", "ftp://example.com/a", "https:///a", "https://u@example.com/a",
		"https://example.com:x/a", "https://example.com:99999/a", "https://example.com/%", "https://example.com/%4", "https://example.com/%zz", "https://ex%41mple.com/"} {
		if got, err := normalizeHTU(bad); err == nil {
			t.Errorf("normalizeHTU(%q) = %q, want an error", bad, got)
		}
	}
	// RFC 3986 §5.2.4's examples.
	for in, want := range map[string]string{"/a/b/c/./../../g": "/a/g", "mid/content=5/../6": "mid/6", "/./a": "/a", "/a/..": "/"} {
		if got := removeDotSegments(in); got != want {
			t.Errorf("removeDotSegments(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReplayCacheBound: the cache holds exactly its slots, refuses (never
// forgets) once they are all live, takes new entries again once old ones
// expire, and allocates nothing per proof.
func TestReplayCacheBound(t *testing.T) {
	const slots = 1 << 12
	c := newReplayCache(slots)
	if c.slots() != slots || len(c.buckets) != slots/replayBucketSlots {
		t.Fatalf("slots %d in %d buckets", c.slots(), len(c.buckets))
	}
	now := time.Unix(1_700_000_000, 0)
	exp := now.Add(time.Minute)
	fresh, firstFull := 0, -1
	for i := range 2 * slots {
		switch c.add("key", fmt.Sprint("jti-", i), exp, now) {
		case replayFresh:
			fresh++
		case replayFull:
			if firstFull < 0 {
				firstFull = i
			}
		case replaySeen:
			t.Fatalf("jti-%d taken for a replay", i)
		}
	}
	if fresh > slots {
		t.Fatalf("%d fresh entries in %d slots", fresh, slots)
	}
	// Two choices of bucket keep the table usable nearly to the last slot.
	if firstFull < slots*9/10 {
		t.Errorf("first refusal after %d of %d slots", firstFull, slots)
	}
	// Every recorded jti is still known: none was forgotten to make room.
	for i := range firstFull {
		if got := c.add("key", fmt.Sprint("jti-", i), exp, now); got != replaySeen {
			t.Fatalf("jti-%d: %v after the flood, want seen", i, got)
		}
	}
	// The same jti under another key is another proof.
	if got := c.add("other key", "jti-0", exp, now.Add(time.Second)); got == replaySeen {
		t.Error("jti-0 of another key taken for a replay")
	}
	// Once the entries expire, the cache takes proofs again.
	later := exp.Add(time.Second)
	if got := c.add("key", "new", later.Add(time.Minute), later); got != replayFresh {
		t.Errorf("after expiry: %v", got)
	}
	if allocs := testing.AllocsPerRun(100, func() { c.add("key", "jti-x", later.Add(time.Minute), later) }); allocs != 0 {
		t.Errorf("add allocates %v times", allocs)
	}
}

func FuzzDPoPProof(f *testing.F) {
	f.Add(rfcTokenProof, "POST", "https://server.example.com/token", "")
	f.Add(rfcResourceProof, "GET", "https://resource.example.org/protectedresource", rfcAccessToken)
	f.Add("e30.e30.", "GET", "https://a.example/", "t")
	v := testDPoPVerifier()
	f.Fuzz(func(t *testing.T, proof, method, htu, token string) {
		jkt, c, err := v.verifyProof(proof, method, htu, token, time.Unix(1562262617, 0))
		if err != nil {
			if !errors.Is(err, ErrDPoPProof) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		if len(jkt) != 43 || c.jti == "" {
			t.Fatalf("accepted with jkt %q jti %q", jkt, c.jti)
		}
	})
}

func FuzzNormalizeHTU(f *testing.F) {
	for _, s := range []string{"https://example.com/a/./b/../%7e?x#y", "http://[::1]:80", "HTTP://A:0/%2e%2E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := normalizeHTU(s)
		if err != nil {
			return
		}
		// Normal forms are fixed points.
		if n2, err := normalizeHTU(n); err != nil || n2 != n {
			t.Fatalf("normalizeHTU(%q) = %q, but again %q, %v", s, n, n2, err)
		}
	})
}

func TestNonceWindow(t *testing.T) {
	n := &nonceSource{keys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}, lifetime: 4 * time.Minute}
	now := time.Unix(1_699_999_920, 0) // the start of a two-minute slot
	nonce := n.current(now)
	if n.current(now.Add(time.Minute)) != nonce || n.current(now.Add(2*time.Minute)) == nonce {
		t.Error("a new nonce is not handed out every half lifetime")
	}
	for d, want := range map[time.Duration]bool{
		0: true, 4 * time.Minute: true, 4*time.Minute + time.Second: false,
		-2 * time.Minute: true, -2*time.Minute - time.Second: false, // a replica's clock behind
	} {
		if got := n.valid(nonce, now.Add(d)); got != want {
			t.Errorf("valid at %v: %v, want %v", d, got, want)
		}
	}
}
