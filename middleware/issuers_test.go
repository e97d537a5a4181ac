package middleware_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// countingClient is an HTTP client that counts the requests it sends.
func countingClient(n *atomic.Int64) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		n.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestManyIssuers: with Issuers, each token is checked with the keys,
// audiences and algorithms of the issuer its iss names, and only those.
func TestManyIssuers(t *testing.T) {
	a := authtest.NewIssuer(t)
	b := authtest.NewIssuer(t)
	c := authtest.NewIssuer(t) // trusted by no one
	if a.KeyFor("RS256").KID != b.KeyFor("RS256").KID {
		t.Fatal("the test needs issuers whose key sets share kids")
	}
	hs := authtest.NewIssuer(t, authtest.WithHS256(nil))
	var logs bytes.Buffer
	auth := mustAuthenticator(t, a, func(cfg *middleware.Config) {
		cfg.Issuer = ""
		cfg.Audiences = []string{authtest.Audience} // b's and hs's, by default
		cfg.Issuers = []middleware.IssuerConfig{
			{Issuer: a.URL, Audiences: []string{"api-a"}, Algorithms: []string{"RS256", "ES256"}},
			{Issuer: b.URL},
			{Issuer: hs.URL, HMACSecret: hs.HMACSecret()},
		}
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	forA := authtest.WithAudience("api-a")
	cToken := c.Mint(t, "alice")
	noKID := map[string]any{"kid": nil}
	issA := func(c jwt.MapClaims) { c["iss"] = a.URL; c["aud"] = "api-a" }
	issB := func(c jwt.MapClaims) { c["iss"] = b.URL }
	claims := func(is *authtest.Issuer, edit func(jwt.MapClaims)) jwt.MapClaims {
		c := is.Claims("alice")
		if edit != nil {
			edit(c)
		}
		return c
	}
	payload := func(is *authtest.Issuer, edit func(jwt.MapClaims)) string {
		return base64.RawURLEncoding.EncodeToString([]byte(rawJSON(claims(is, edit))))
	}
	tests := []struct {
		name   string
		token  string
		status int
		reason string
	}{
		{"a's token", a.Mint(t, "alice", forA), 200, ""},
		{"a's token ES256", a.Sign(t, "ES256", claims(a, issA), nil), 200, ""},
		{"b's token", b.Mint(t, "alice"), 200, ""},
		{"b's token EdDSA", b.Sign(t, "EdDSA", b.Claims("alice"), nil), 200, ""},
		{"hs's token HS256", hs.Mint(t, "alice"), 200, ""},
		{"a's token without kid", a.Sign(t, "RS256", claims(a, issA), noKID), 200, ""},

		// Keys bound to their issuer.
		{"iss a, b's key with the same kid", b.Sign(t, "RS256", claims(b, issA), nil), 401, middleware.ReasonSignature},
		{"iss b, a's key with the same kid", a.Sign(t, "RS256", claims(a, issB), nil), 401, middleware.ReasonSignature},
		{"iss a, b's key, no kid", b.Sign(t, "RS256", claims(b, issA), noKID), 401, middleware.ReasonSignature},
		{"iss b, hs's secret", hs.Sign(t, "HS256", claims(hs, issB), nil), 401, middleware.ReasonAlgorithm},
		{"iss hs, a's RSA key", a.Sign(t, "RS256", claims(a, func(c jwt.MapClaims) { c["iss"] = hs.URL }), nil), 401, middleware.ReasonAlgorithm},
		{"iss a, header of a's token, payload changed", strings.Split(a.Mint(t, "alice", forA), ".")[0] + "." + payload(a, func(c jwt.MapClaims) { issA(c); c["sub"] = "admin" }) + "." + strings.Split(a.Mint(t, "alice", forA), ".")[2], 401, middleware.ReasonSignature},

		// Each issuer's own rules.
		{"a's token for b's audience", a.Mint(t, "alice"), 401, middleware.ReasonAudience},
		{"b's token for a's audience", b.Mint(t, "alice", forA), 401, middleware.ReasonAudience},
		{"a's token PS256, not in a's algorithms", a.Sign(t, "PS256", claims(a, issA), nil), 401, middleware.ReasonAlgorithm},
		{"b's token PS256", b.Sign(t, "PS256", b.Claims("alice"), nil), 200, ""},

		// Issuers no one trusts.
		{"c's token", cToken, 401, middleware.ReasonUnknownIssuer},
		{"a's iss with a trailing slash", a.Sign(t, "RS256", claims(a, func(c jwt.MapClaims) { issA(c); c["iss"] = a.URL + "/" }), nil), 401, middleware.ReasonUnknownIssuer},
		{"no iss", a.Sign(t, "RS256", claims(a, func(c jwt.MapClaims) { issA(c); delete(c, "iss") }), nil), 401, middleware.ReasonUnknownIssuer},
		{"iss a number", a.Sign(t, "RS256", claims(a, func(c jwt.MapClaims) { issA(c); c["iss"] = 7 }), nil), 401, middleware.ReasonUnknownIssuer},
		{"iss an array", a.Sign(t, "RS256", claims(a, func(c jwt.MapClaims) { issA(c); c["iss"] = []string{a.URL} }), nil), 401, middleware.ReasonUnknownIssuer},
		{"payload not JSON", strings.Split(a.Mint(t, "alice", forA), ".")[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":`)) + ".AAAA", 401, middleware.ReasonUnknownIssuer},
		{"payload not base64url", strings.Split(a.Mint(t, "alice", forA), ".")[0] + ".e31.AAAA", 401, middleware.ReasonBadToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hostileCase(t, auth, tt.token, tt.status, map[bool]string{true: "", false: "invalid_token"}[tt.status == 200], tt.reason, "alice")
		})
	}
	if strings.Contains(logs.String(), "eyJ") {
		t.Errorf("a token in the logs:\n%s", logs.String())
	}
	if want := fmt.Sprintf(`reason=unknown_issuer source=header token_sha256=%s error="middleware: invalid token: token issuer not accepted: middleware: issuer not trusted: unverified iss \"%s\" is not one of the configured issuers"`, introspection.HashToken(cToken).Short(), c.URL); !strings.Contains(logs.String(), want) {
		t.Errorf("the log does not say %s:\n%s", want, logs.String())
	}
}

// TestIssuerDuplicateMembers: a payload that names iss twice is judged
// by the last, as encoding/json decodes it after the signature: the scan
// before the signature picks the same issuer.
func TestIssuerDuplicateMembers(t *testing.T) {
	a := authtest.NewIssuer(t)
	b := authtest.NewIssuer(t)
	auth := mustAuthenticator(t, a, func(cfg *middleware.Config) {
		cfg.Issuer = ""
		cfg.Issuers = []middleware.IssuerConfig{{Issuer: a.URL}, {Issuer: b.URL}}
	})
	claims := mustJSON(t, b.Claims("alice")) // iss b
	for _, tc := range []struct {
		name    string
		payload string
		signer  *authtest.Issuer
		status  int
	}{
		{"a then b, b signs", strings.Replace(claims, "{", `{"iss":"`+a.URL+`",`, 1), b, 200},
		{"a then b, a signs", strings.Replace(claims, "{", `{"iss":"`+a.URL+`",`, 1), a, 401},
		{"b then a, b signs", strings.Replace(claims, "}", `,"iss":"`+a.URL+`"}`, 1), b, 401},
		{"b, then ISS a, b signs", strings.Replace(claims, "}", `,"ISS":"`+a.URL+`"}`, 1), b, 200},
		{"b escaped, b signs", strings.Replace(claims, `"iss":"`+b.URL, `"\u0069ss":"`+strings.ReplaceAll(b.URL, "/", `\/`), 1), b, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := signRaw(t, tc.signer.KeyFor("RS256"), tc.payload)
			if w := do(auth, bearerRequest(tok)); w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
		})
	}
}

// TestUnknownIssuerNoFetch: a token of an issuer no one trusts, or of a
// trusted issuer's iss spelled otherwise, costs no request to anyone:
// neither to its own keys nor to any configured issuer's.
func TestUnknownIssuerNoFetch(t *testing.T) {
	a := authtest.NewIssuer(t)
	b := authtest.NewIssuer(t)
	c := authtest.NewIssuer(t)
	var requests atomic.Int64
	var asked atomic.Int64
	for _, tc := range []struct {
		name  string
		edit  func(*middleware.Config)
		asked int64
	}{
		{"Issuers", func(cfg *middleware.Config) {
			cfg.Issuer = ""
			cfg.Issuers = []middleware.IssuerConfig{{Issuer: a.URL}, {Issuer: b.URL}}
		}, 0},
		// 52 distinct iss values: each asked about once, however often sent.
		{"Issuer and a resolver that refuses", func(cfg *middleware.Config) {
			cfg.IssuerResolver = func(ctx context.Context, iss string) (middleware.IssuerConfig, error) {
				asked.Add(1)
				return middleware.IssuerConfig{}, middleware.ErrUnknownIssuer
			}
		}, 52},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := mustAuthenticator(t, a, func(cfg *middleware.Config) {
				cfg.HTTPClient = countingClient(&requests)
				cfg.JWKSMinRefreshInterval = 1 // every unknown kid may refetch
				tc.edit(cfg)
			})
			before, fetchA, fetchB := requests.Load(), a.JWKSFetches(), b.JWKSFetches()
			asked.Store(0)
			for i := range 50 {
				for _, tok := range []string{
					c.Mint(t, "alice"),
					c.Token(t, "alice", func(cl jwt.MapClaims) { cl["iss"] = fmt.Sprintf("https://evil.example/%d", i) }),
					c.Token(t, "alice", func(cl jwt.MapClaims) { cl["iss"] = a.URL + "/" }),
				} {
					if w := do(auth, bearerRequest(tok)); w.Code != 401 || problem(t, w)["reason"] != middleware.ReasonUnknownIssuer {
						t.Fatalf("status %d: %s", w.Code, w.Body)
					}
				}
			}
			if n := requests.Load() - before; n != 0 {
				t.Errorf("%d requests for tokens of unknown issuers", n)
			}
			if c.JWKSFetches() != 0 || a.JWKSFetches() != fetchA || b.JWKSFetches() != fetchB {
				t.Errorf("JWKS fetched: c %d, a %d more, b %d more", c.JWKSFetches(), a.JWKSFetches()-fetchA, b.JWKSFetches()-fetchB)
			}
			if n := asked.Load(); n != tc.asked {
				t.Errorf("resolver asked %d times, want %d", n, tc.asked)
			}
			// The unknown kid of a trusted issuer still refreshes.
			tok := a.Sign(t, "RS256", a.Claims("alice"), map[string]any{"kid": "new"})
			if w := do(auth, bearerRequest(tok)); w.Code != 401 || a.JWKSFetches() != fetchA+1 {
				t.Errorf("unknown kid of a: %d, %d fetches", w.Code, a.JWKSFetches()-fetchA)
			}
		})
	}
}

// TestOneIssuerNoPayloadBeforeSignature: with one issuer, whichever way
// it is configured, the payload of a forged token is never read: broken
// JSON is refused for the signature, not the payload.
func TestOneIssuerNoPayloadBeforeSignature(t *testing.T) {
	is := authtest.NewIssuer(t)
	k := is.KeyFor("RS256")
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"` + k.KID + `"}`))
	forged := header + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":`+strings.Repeat("[", 3000))) + ".AAAA"
	for _, tc := range []struct {
		name   string
		edit   func(*middleware.Config)
		reason string
	}{
		{"Issuer", nil, middleware.ReasonSignature},
		{"Issuers with one entry", func(c *middleware.Config) {
			c.Issuer = ""
			c.Issuers = []middleware.IssuerConfig{{Issuer: is.URL}}
		}, middleware.ReasonSignature},
		// The control: with a choice to make, iss is read first.
		{"Issuers with two entries", func(c *middleware.Config) {
			c.Issuer = ""
			c.Issuers = []middleware.IssuerConfig{{Issuer: is.URL}, {Issuer: "https://other.example", JWKSURL: is.URL + "/jwks"}}
		}, middleware.ReasonUnknownIssuer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := mustAuthenticator(t, is, tc.edit)
			w := do(auth, bearerRequest(forged))
			if got := problem(t, w)["reason"]; w.Code != 401 || got != tc.reason {
				t.Fatalf("%d %v, want 401 %s", w.Code, got, tc.reason)
			}
		})
	}
}

// TestRequiredClaims: an issuer's RequiredClaims are checked on the
// verified claims, and a token that fails them is not cached.
func TestRequiredClaims(t *testing.T) {
	is := authtest.NewIssuer(t)
	auth := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Issuer = ""
		c.Issuers = []middleware.IssuerConfig{{Issuer: is.URL, RequiredClaims: map[string]string{"tenant": "t1", "token_use": "access"}}}
	})
	for _, tc := range []struct {
		name   string
		claims map[string]any
		status int
	}{
		{"both", map[string]any{"tenant": "t1", "token_use": "access"}, 200},
		{"wrong tenant", map[string]any{"tenant": "t2", "token_use": "access"}, 401},
		{"tenant missing", map[string]any{"token_use": "access"}, 401},
		{"tenant not a string", map[string]any{"tenant": []string{"t1"}, "token_use": "access"}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := is.Token(t, "alice", func(c jwt.MapClaims) {
				for k, v := range tc.claims {
					c[k] = v
				}
			})
			for range 2 { // the second from the cache, if cached
				w := do(auth, bearerRequest(tok))
				if w.Code != tc.status {
					t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
				}
				if tc.status != 200 && problem(t, w)["reason"] != middleware.ReasonIssuer {
					t.Fatalf("reason %v", problem(t, w)["reason"])
				}
			}
		})
	}
}

// TestIssuersConfig: the settings of several issuers that New refuses,
// each with a line that names the entry.
func TestIssuersConfig(t *testing.T) {
	is := authtest.NewIssuer(t)
	refuse := func(ctx context.Context, iss string) (middleware.IssuerConfig, error) {
		return middleware.IssuerConfig{}, middleware.ErrUnknownIssuer
	}
	tests := []struct {
		name string
		cfg  middleware.Config
		want string // "" accepts
	}{
		{"Issuers", middleware.Config{Audiences: []string{"api"}, Issuers: []middleware.IssuerConfig{{Issuer: is.URL}, {Issuer: "https://b.example", JWKSURL: is.URL + "/jwks"}}}, ""},
		{"entry audiences only", middleware.Config{Issuers: []middleware.IssuerConfig{{Issuer: is.URL, Audiences: []string{"api"}}}}, ""},
		{"Issuer and a resolver", middleware.Config{Issuer: is.URL, Audiences: []string{"api"}, IssuerResolver: refuse}, ""},
		{"only a resolver", middleware.Config{Audiences: []string{"api"}, IssuerResolver: refuse}, ""},
		{"Issuer and Issuers", middleware.Config{Issuer: is.URL, Audiences: []string{"api"}, Issuers: []middleware.IssuerConfig{{Issuer: is.URL}}}, "set Issuer (with JWKSURL, Metadata) or Issuers, not both"},
		{"JWKSURL and Issuers", middleware.Config{JWKSURL: is.URL + "/jwks", Audiences: []string{"api"}, Issuers: []middleware.IssuerConfig{{Issuer: is.URL}}}, "not both"},
		{"HMACSecret and Issuers", middleware.Config{HMACSecret: make([]byte, 32), Audiences: []string{"api"}, Issuers: []middleware.IssuerConfig{{Issuer: is.URL}}}, "HMACSecret belongs to the entry"},
		{"entry without Issuer", middleware.Config{Audiences: []string{"api"}, Issuers: []middleware.IssuerConfig{{JWKSURL: is.URL + "/jwks"}}}, "Issuers[0]: Issuer is required"},
		{"entry twice", middleware.Config{Audiences: []string{"api"}, Issuers: []middleware.IssuerConfig{{Issuer: is.URL}, {Issuer: is.URL}}}, "listed twice"},
		{"entry without audiences", middleware.Config{Issuers: []middleware.IssuerConfig{{Issuer: is.URL}}}, "Issuers[0] (" + is.URL + "): Audiences is required"},
		{"entry with alg none", middleware.Config{Audiences: []string{"api"}, Issuers: []middleware.IssuerConfig{{Issuer: is.URL, Algorithms: []string{"none"}}}}, `Issuers[0] (` + is.URL + `): alg "none"`},
		{"entry with a short secret", middleware.Config{Audiences: []string{"api"}, Issuers: []middleware.IssuerConfig{{Issuer: is.URL, HMACSecret: []byte("short")}}}, "HMACSecret must be at least 32 bytes"},
		{"entry with metadata of another", middleware.Config{Audiences: []string{"api"}, Issuers: []middleware.IssuerConfig{{Issuer: is.URL, Metadata: &middleware.Metadata{Issuer: "https://x.example"}}}}, "Metadata names issuer"},
		{"entry with an empty required claim", middleware.Config{Audiences: []string{"api"}, Issuers: []middleware.IssuerConfig{{Issuer: is.URL, RequiredClaims: map[string]string{"tid": ""}}}}, "RequiredClaims may not have an empty"},
		{"resolver without audiences", middleware.Config{IssuerResolver: refuse}, "with IssuerResolver (Audiences and Algorithms are the defaults of its answers): Audiences is required"},
		{"resolver with alg none", middleware.Config{Audiences: []string{"api"}, Algorithms: []string{"none"}, IssuerResolver: refuse}, `with IssuerResolver (Audiences and Algorithms are the defaults of its answers): alg "none"`},
		{"Issuers and a resolver with alg none", middleware.Config{Audiences: []string{"api"}, Algorithms: []string{"none"}, Issuers: []middleware.IssuerConfig{{Issuer: is.URL, Algorithms: []string{"RS256"}}}, IssuerResolver: refuse}, `with IssuerResolver`},
		{"Issuers in introspection mode", middleware.Config{Mode: middleware.ModeIntrospection, Introspector: &introspection.Client{Endpoint: is.URL + "/introspect"}, Issuers: []middleware.IssuerConfig{{Issuer: is.URL}}}, "need Mode jwt"},
		{"resolver in hybrid mode", middleware.Config{Mode: middleware.ModeHybrid, Issuer: is.URL, Audiences: []string{"api"}, Introspector: &introspection.Client{Endpoint: is.URL + "/introspect"}, IssuerResolver: refuse}, "need Mode jwt"},
		{"nothing", middleware.Config{Audiences: []string{"api"}}, "Issuer is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := middleware.New(ctx, tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestIssuersInResourceMetadata: the RFC 9728 document names every
// configured issuer as an authorization server unless told otherwise.
func TestIssuersInResourceMetadata(t *testing.T) {
	a := authtest.NewIssuer(t)
	b := authtest.NewIssuer(t)
	auth := mustAuthenticator(t, a, func(c *middleware.Config) {
		c.Issuer = ""
		c.Issuers = []middleware.IssuerConfig{{Issuer: a.URL}, {Issuer: b.URL}}
		c.ResourceMetadata = &middleware.ResourceMetadata{Resource: "https://api.example.com"}
	})
	w := httptest.NewRecorder()
	auth.ResourceMetadataHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, auth.ResourceMetadataPath(), nil))
	var doc struct {
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if want := []string{a.URL, b.URL}; !slices.Equal(doc.AuthorizationServers, want) {
		t.Fatalf("authorization_servers %q, want %q", doc.AuthorizationServers, want)
	}
}
