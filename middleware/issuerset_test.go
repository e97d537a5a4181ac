package middleware

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// newTestSet builds the issuerSet of cfg, as New does, with its clock at
// *now when now is not nil.
func newTestSet(tb testing.TB, cfg Config, now *atomic.Int64) *issuerSet {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if now != nil {
		cfg.Now = func() time.Time { return time.Unix(0, now.Load()) }
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	s, err := newIssuerSet(ctx, &cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestResolverBounds: what an outsider choosing iss values can make the
// resolver and the tables of its answers do.
func TestResolverBounds(t *testing.T) {
	is := authtest.NewIssuer(t)
	const good = "https://good.example"
	type env struct {
		s     *issuerSet
		calls *atomic.Int64
		now   *atomic.Int64
	}
	// trustGood trusts good alone, with is's keys.
	trustGood := func(ctx context.Context, iss string) (IssuerConfig, error) {
		if iss == good {
			return IssuerConfig{JWKSURL: is.URL + "/jwks"}, nil
		}
		return IssuerConfig{}, ErrUnknownIssuer
	}
	setup := func(t *testing.T, resolve IssuerResolver) env {
		e := env{calls: new(atomic.Int64), now: new(atomic.Int64)}
		e.now.Store(time.Unix(1_900_000_000, 0).UnixNano())
		e.s = newTestSet(t, Config{Audiences: []string{"api"}, IssuerResolver: func(ctx context.Context, iss string) (IssuerConfig, error) {
			e.calls.Add(1)
			return resolve(ctx, iss)
		}}, e.now)
		return e
	}
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"one unknown iss, asked once", func(t *testing.T) {
			e := setup(t, trustGood)
			for range 100 {
				if _, err := e.s.lookup(ctx, "https://evil.example"); Reason(err) != ReasonUnknownIssuer || !errors.Is(err, ErrUnknownIssuer) {
					t.Fatal(err)
				}
			}
			if e.calls.Load() != 1 {
				t.Fatalf("%d calls", e.calls.Load())
			}
			// Asked again once the refusal is 5 minutes old.
			e.now.Add(int64(resolvedTTL + time.Second))
			_, _ = e.s.lookup(ctx, "https://evil.example")
			if e.calls.Load() != 2 {
				t.Fatalf("%d calls after the refusal expired", e.calls.Load())
			}
		}},
		{"a flood of refused iss never pushes out a trusted one", func(t *testing.T) {
			e := setup(t, trustGood)
			v, err := e.s.lookup(ctx, good)
			if err != nil || v == nil {
				t.Fatal(err)
			}
			for i := range 3 * maxResolvedIssuers {
				_, _ = e.s.lookup(ctx, fmt.Sprintf("https://evil.example/%d", i))
			}
			if n := len(e.s.refused); n > maxResolvedIssuers {
				t.Fatalf("%d refusals remembered", n)
			}
			calls := e.calls.Load()
			if v2, err := e.s.lookup(ctx, good); err != nil || v2 != v || e.calls.Load() != calls {
				t.Fatalf("the trusted issuer was forgotten: %v", err)
			}
		}},
		{"trusted issuers are bounded and share their key set", func(t *testing.T) {
			e := setup(t, func(ctx context.Context, iss string) (IssuerConfig, error) {
				return IssuerConfig{JWKSURL: is.URL + "/jwks"}, nil
			})
			for i := range maxResolvedIssuers + 500 {
				if _, err := e.s.lookup(ctx, fmt.Sprintf("https://tenant.example/%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			if n := len(e.s.trusted); n > maxResolvedIssuers {
				t.Fatalf("%d trusted issuers remembered", n)
			}
			if len(e.s.keys) != 1 || len(e.s.dynamic) != 1 {
				t.Fatalf("%d key sets for one JWKS URL", len(e.s.keys))
			}
		}},
		{"key sets opened for resolved issuers are bounded", func(t *testing.T) {
			e := env{calls: new(atomic.Int64)}
			e.s = newTestSet(t, Config{
				Audiences: []string{"api"},
				// No network: every fetch fails at once.
				HTTPClient: &http.Client{Transport: roundTrip(func(*http.Request) (*http.Response, error) { return nil, errors.New("offline") })},
				IssuerResolver: func(ctx context.Context, iss string) (IssuerConfig, error) {
					return IssuerConfig{JWKSURL: "https://keys.example/" + strings.TrimPrefix(iss, "https://")}, nil
				},
			}, nil)
			for i := range maxResolvedIssuers + 10 {
				if _, err := e.s.lookup(ctx, fmt.Sprintf("https://t%d.example", i)); err != nil {
					t.Fatal(err)
				}
			}
			if len(e.s.dynamic) > maxResolvedIssuers || len(e.s.keys) > maxResolvedIssuers {
				t.Fatalf("%d key sets opened", len(e.s.dynamic))
			}
		}},
		{"a failing resolver is asked again after RetryAfter", func(t *testing.T) {
			e := setup(t, func(ctx context.Context, iss string) (IssuerConfig, error) {
				return IssuerConfig{}, errors.New("registry down")
			})
			for range 10 {
				if _, err := e.s.lookup(ctx, good); !errors.Is(err, ErrUnavailable) || Reason(err) != ReasonUnavailable {
					t.Fatal(err)
				}
			}
			e.now.Add(int64(RetryAfter*time.Second + time.Millisecond))
			_, _ = e.s.lookup(ctx, good)
			if e.calls.Load() != 2 {
				t.Fatalf("%d calls", e.calls.Load())
			}
		}},
		{"concurrent tokens of one iss: one call", func(t *testing.T) {
			release := make(chan struct{})
			e := setup(t, func(ctx context.Context, iss string) (IssuerConfig, error) {
				<-release
				return trustGood(ctx, iss)
			})
			var wg sync.WaitGroup
			for range 50 {
				wg.Go(func() {
					if _, err := e.s.lookup(ctx, good); err != nil {
						t.Error(err)
					}
				})
			}
			time.Sleep(50 * time.Millisecond)
			close(release)
			wg.Wait()
			if e.calls.Load() != 1 {
				t.Fatalf("%d calls", e.calls.Load())
			}
		}},
		{"at most maxResolving calls at once", func(t *testing.T) {
			release := make(chan struct{})
			var inside atomic.Int64
			e := setup(t, func(ctx context.Context, iss string) (IssuerConfig, error) {
				inside.Add(1)
				<-release
				return IssuerConfig{}, ErrUnknownIssuer
			})
			var wg sync.WaitGroup
			for i := range maxResolving {
				wg.Go(func() { _, _ = e.s.lookup(ctx, fmt.Sprintf("https://slow.example/%d", i)) })
			}
			for inside.Load() < maxResolving {
				time.Sleep(time.Millisecond)
			}
			_, err := e.s.lookup(ctx, good)
			if !errors.Is(err, ErrUnavailable) || Reason(err) != ReasonOverloaded {
				t.Fatalf("with every slot taken: %v", err)
			}
			close(release)
			wg.Wait()
			// Not remembered: asked once a slot is free.
			if _, err := e.s.lookup(ctx, good); Reason(err) != ReasonUnknownIssuer {
				t.Fatalf("after: %v", err)
			}
		}},
		{"iss the resolver never sees", func(t *testing.T) {
			e := setup(t, trustGood)
			for _, iss := range []string{"", good + "/" + strings.Repeat("a", maxIssuerBytes), good + " ", good + "\n", "https://gööd.example", "\x00"} {
				if _, err := e.s.lookup(ctx, iss); Reason(err) != ReasonUnknownIssuer {
					t.Fatalf("%q: %v", iss, err)
				}
			}
			if e.calls.Load() != 0 {
				t.Fatalf("%d calls", e.calls.Load())
			}
		}},
		{"an answer that is not usable", func(t *testing.T) {
			for _, answer := range []IssuerConfig{
				{}, // no keys
				{Issuer: "https://other.example", JWKSURL: is.URL + "/jwks"}, // for another iss
				{JWKSURL: "ftp://keys.example"},
				{JWKSURL: is.URL + "/jwks", Algorithms: []string{"none"}},
				{HMACSecret: []byte("short")},
				{JWKSURL: is.URL + "/jwks", RequiredClaims: map[string]string{"": "x"}},
			} {
				e := setup(t, func(context.Context, string) (IssuerConfig, error) { return answer, nil })
				if _, err := e.s.lookup(ctx, good); !errors.Is(err, ErrUnavailable) {
					t.Fatalf("%+v: %v", answer, err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestVerifiedIssuerMustBeChosen: the verifier chosen by a token's iss
// checks iss again on the verified claims. (issuerOf and the decoding
// after the signature agree on every JSON object, FuzzIssuerOf shows; this
// is the check that makes a disagreement harmless.)
func TestVerifiedIssuerMustBeChosen(t *testing.T) {
	a := authtest.NewIssuer(t)
	b := authtest.NewIssuer(t)
	s := newTestSet(t, Config{Audiences: []string{authtest.Audience}, Issuers: []IssuerConfig{{Issuer: a.URL}, {Issuer: b.URL}}}, nil)
	tok := b.Token(t, "alice", func(c jwt.MapClaims) { c["iss"] = a.URL })
	_, err := s.static[b.URL].verify(context.Background(), tok, nil)
	if Reason(err) != ReasonIssuer {
		t.Fatalf("b's verifier, a token b signed with iss a: %v", err)
	}
}

// FuzzIssuerOf holds issuerOf to encoding/json: on every payload that
// decodes into a map, it finds the string the map holds under "iss" (when
// it is one, of at most maxIssuerBytes), and nothing otherwise. On other
// input it must not panic.
func FuzzIssuerOf(f *testing.F) {
	for _, s := range []string{
		`{"iss":"https://a.example"}`,
		`{"sub":"x","iss":"https://a.example","aud":["a","b"]}`,
		`{"iss":"a","iss":"b"}`,
		`{"iss":"a","iss":null}`,
		`{"iss":1}`,
		`{"\u0069ss":"https:\/\/a.example"}`,
		`{"ISS":"a"}`,
		`{"x":{"iss":"nested"},"y":[{"iss":"deep"}]}`,
		`{"x":"\"iss\":\"fake\"","iss":"real"}`,
		` { "iss" : "a" } `,
		`{"iss":"\ud83d\ude00"}`,
		`{"iss":"\ud800"}`,
		"{\"iss\":\"\xff\"}",
		`{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `,"iss":"a"}`,
		`{"iss":"a",}`, `{"iss"}`, `{`, `null`, `[]`, `"iss"`, `{}`, `{"x":1e5,"y":true,"z":false,"iss":"a"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		got, ok := issuerOf(p)
		if ok && len(got) > maxIssuerBytes {
			t.Fatalf("an iss of %d bytes", len(got))
		}
		var m map[string]any
		if json.Unmarshal(p, &m) != nil {
			return
		}
		want, isString := m["iss"].(string)
		wantOK := isString && len(want) <= maxIssuerBytes
		if ok != wantOK || (ok && got != want) {
			t.Fatalf("issuerOf(%q) = %q, %v; encoding/json: %q (%T)", p, got, ok, m["iss"], m["iss"])
		}
	})
}

// FuzzEntraTenant: entraTenant finds a tenant only in the two issuer
// forms, exactly, with a lower-case GUID, and then the iss is exactly
// that tenant's issuer.
func FuzzEntraTenant(f *testing.F) {
	for _, s := range []string{
		"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
		"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
		"https://login.microsoftonline.com/72F988BF-86F1-41AF-91AB-2D7CD011DB47/v2.0",
		"https://login.microsoftonline.com/common/v2.0",
		"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0/",
		"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
		"https://login.microsoftonline.com//v2.0", "https://sts.windows.net//", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, iss string) {
		tid, ok := entraTenant(iss)
		if !ok {
			return
		}
		if !isGUID(tid) || tid != strings.ToLower(tid) {
			t.Fatalf("%q: tenant %q", iss, tid)
		}
		if iss != entraV2Prefix+tid+entraV2Suffix && iss != entraV1Prefix+tid+entraV1Suffix {
			t.Fatalf("%q is not the issuer of tenant %q", iss, tid)
		}
		if r, _ := EntraTenants(tid); r == nil {
			t.Fatalf("the tenant %q found is not a tenant ID", tid)
		}
	})
}

// forgedNested is a token as long as MaxTokenBytes allows whose header and
// signature come from a valid token of is and whose payload names is as
// iss and then nests arrays as deep as fits: the signature fails, but a
// verifier that decoded the payload first would pay for the nesting.
func forgedNested(tb testing.TB, is *authtest.Issuer) (token string, payload []byte) {
	tb.Helper()
	parts := strings.Split(is.Mint(tb, "alice"), ".")
	room := DefaultMaxTokenBytes - len(parts[0]) - len(parts[2]) - 2
	head := `{"iss":"` + is.URL + `","x":`
	depth := (room*3/4 - len(head) - 1) / 2
	payload = []byte(head + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "}")
	token = parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	if len(token) > DefaultMaxTokenBytes {
		tb.Fatalf("forged token of %d bytes", len(token))
	}
	return token, payload
}

// TestForgedNestedPayload: the forged token of the benchmark below is
// refused for its signature, with one issuer and with two.
func TestForgedNestedPayload(t *testing.T) {
	a := authtest.NewIssuer(t)
	b := authtest.NewIssuer(t)
	forged, payload := forgedNested(t, a)
	if _, err := decodeObject(payload); err != nil {
		t.Fatalf("the forged payload is not valid JSON: %v", err)
	}
	for _, cfg := range []Config{
		{Issuer: a.URL, Audiences: []string{authtest.Audience}},
		{Audiences: []string{authtest.Audience}, Issuers: []IssuerConfig{{Issuer: a.URL}, {Issuer: b.URL}}},
	} {
		s := newTestSet(t, cfg, nil)
		if _, err := s.verify(context.Background(), forged); Reason(err) != ReasonSignature {
			t.Fatalf("%d issuers: %v", len(s.static), err)
		}
	}
}

// BenchmarkForgedPayload compares the cost of refusing the forged token
// of forgedNested (16 KiB, deeply nested) with that of verifying a valid
// RS256 token, in turn in one loop (as BenchmarkVerifyVsKeyfunc does, so
// that a loaded machine slows both alike): with one issuer (the payload
// is never decoded), with two (base64 and issuerOf before the signature),
// and, for scale, what decoding the payload before the signature would
// add (decodeObject, as golang-jwt's parser does).
func BenchmarkForgedPayload(b *testing.B) {
	a := authtest.NewIssuer(b)
	other := authtest.NewIssuer(b)
	forged, payload := forgedNested(b, a)
	pool := make([]string, 512)
	for i := range pool {
		pool[i] = a.Mint(b, "alice")
	}
	one := newTestSet(b, Config{Issuer: a.URL, Audiences: []string{authtest.Audience}}, nil)
	two := newTestSet(b, Config{Audiences: []string{authtest.Audience}, Issuers: []IssuerConfig{{Issuer: a.URL}, {Issuer: other.URL}}}, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		s      *issuerSet
		forged func()
	}{
		{"one issuer", one, func() { _, _ = one.verify(ctx, forged) }},
		{"two issuers", two, func() { _, _ = two.verify(ctx, forged) }},
		{"payload decoded first", one, func() { _, _ = decodeObject(payload); _, _ = one.verify(ctx, forged) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var valid, bad []time.Duration
			i := 0
			for b.Loop() {
				for k := range 2 {
					start := time.Now()
					if (i+k)%2 == 0 {
						if _, err := tc.s.verify(ctx, pool[i%len(pool)]); err != nil {
							b.Fatal(err)
						}
						valid = append(valid, time.Since(start))
					} else {
						tc.forged()
						bad = append(bad, time.Since(start))
					}
				}
				i++
			}
			slices.Sort(valid)
			slices.Sort(bad)
			v, f := float64(valid[len(valid)/2]), float64(bad[len(bad)/2])
			b.ReportMetric(v, "valid-ns")
			b.ReportMetric(f, "forged-ns")
			b.ReportMetric(f/v, "forged/valid")
		})
	}
}

// BenchmarkIssuerOf is the scan alone, on the forged payload and on a
// typical one.
func BenchmarkIssuerOf(b *testing.B) {
	is := authtest.NewIssuer(b)
	_, forged := forgedNested(b, is)
	typical, _ := json.Marshal(is.Claims("alice"))
	for name, p := range map[string][]byte{"forged 12 KiB": forged, "typical": typical} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := issuerOf(p); !ok {
					b.Fatal("no iss")
				}
			}
		})
	}
}
