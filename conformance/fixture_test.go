package conformance

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// The catalog's fixture names: the authorization server's issuer and the
// protected resource. The keys are served by a real httptest issuer
// (authtest), reached through JWKSURL, so that the identifiers can be the
// catalog's own.
const (
	fixtureIssuer   = "https://auth.example.com"
	fixtureResource = "https://api.example.com"
	// fixtureURL is the URL of the request the DPoP cases protect.
	fixtureURL = fixtureResource + "/resource"
)

// newIssuer starts a test authorization server.
func newIssuer(t *testing.T) *authtest.Issuer {
	t.Helper()
	return authtest.NewIssuer(t)
}

// baseConfig is the configuration the cases start from: the fixture's
// issuer and resource, the realm set (the catalog asks for one), keys from
// is, a quiet logger.
func baseConfig(is *authtest.Issuer) middleware.Config {
	return middleware.Config{
		Issuer:      fixtureIssuer,
		JWKSURL:     is.URL + "/jwks",
		Audiences:   []string{fixtureResource},
		Realm:       fixtureResource,
		DPoPBaseURL: fixtureResource,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// newAuthenticator builds an Authenticator from baseConfig changed by
// edit, and waits for its keys.
func newAuthenticator(t *testing.T, is *authtest.Issuer, edit func(*middleware.Config)) *middleware.Authenticator {
	t.Helper()
	cfg := baseConfig(is)
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, err := middleware.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("keys never loaded")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return a
}

// claims are complete RFC 9068 §2.2 access-token claims for the fixture,
// issued now, after edit (may be nil) has changed them.
func claims(is *authtest.Issuer, edit func(jwt.MapClaims)) jwt.MapClaims {
	c := is.Claims("user-123")
	c["iss"] = fixtureIssuer
	c["aud"] = fixtureResource
	if edit != nil {
		edit(c)
	}
	return c
}

// token signs claims(edit) with the issuer's ES256 key, header typ
// at+jwt and the key's kid, then the header entries of header (nil
// deletes).
func token(t *testing.T, is *authtest.Issuer, edit func(jwt.MapClaims), header map[string]any) string {
	t.Helper()
	return is.Sign(t, "ES256", claims(is, edit), header)
}

// boundTo makes a token's claims bound to k (cnf.jkt).
func boundTo(k *authtest.DPoPKey) func(jwt.MapClaims) {
	return func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": k.Thumbprint()} }
}

// answer is what the middleware said to one request.
type answer struct {
	status    int
	challenge string // WWW-Authenticate
	reason    string // the problem document's reason, "" on success
	principal principal.Principal
}

// send passes r through a.Require and reports the answer.
func send(t *testing.T, a *middleware.Authenticator, r *http.Request) answer {
	t.Helper()
	var got answer
	w := httptest.NewRecorder()
	a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.principal, _ = principal.From(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})).ServeHTTP(w, r)
	got.status = w.Code
	got.challenge = w.Header().Get("WWW-Authenticate")
	if w.Code >= 400 {
		var doc map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatalf("status %d with a body that is no problem document: %q", w.Code, w.Body)
		}
		got.reason, _ = doc["reason"].(string)
	}
	return got
}

// request is a GET of the fixture's resource path with the token under
// scheme and one DPoP header per proof.
func request(method, target, scheme, tok string, proofs ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	if tok != "" {
		r.Header.Set("Authorization", scheme+" "+tok)
	}
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

// bearer is a GET of /resource with tok as a Bearer token.
func bearer(tok string) *http.Request { return request("GET", "/resource", "Bearer", tok) }

// mustAccept fails unless the answer is the protected handler's.
func mustAccept(t *testing.T, got answer) {
	t.Helper()
	if got.status != http.StatusNoContent {
		t.Fatalf("refused: %d %s %q, want accepted", got.status, got.reason, got.challenge)
	}
}

// mustReject fails unless the answer is a 401 with reason and a challenge
// whose error is code under scheme.
func mustReject(t *testing.T, got answer, reason, scheme, code string) {
	t.Helper()
	if got.status != http.StatusUnauthorized {
		t.Fatalf("status %d (%s), want 401 %s", got.status, got.reason, reason)
	}
	if got.reason != reason {
		t.Errorf("reason %q, want %q", got.reason, reason)
	}
	if c := challengeError(got.challenge, scheme); c != code {
		t.Errorf("WWW-Authenticate %q: %s error %q, want %q", got.challenge, scheme, c, code)
	}
}

// challengeError is the error parameter of the challenge of scheme in a
// WWW-Authenticate value, "" when there is none. The middleware's
// challenges carry no commas inside quoted values other than in
// error_description, which follows error.
func challengeError(h, scheme string) string {
	i := strings.Index(h, scheme+" ")
	if i < 0 {
		return ""
	}
	rest := h[i+len(scheme)+1:]
	// The next challenge starts where a known scheme begins after a comma.
	for _, other := range []string{", Bearer ", ", DPoP "} {
		if j := strings.Index(rest, other); j >= 0 {
			rest = rest[:j]
		}
	}
	const key = `error="`
	j := strings.Index(rest, key)
	if j < 0 {
		return ""
	}
	v := rest[j+len(key):]
	if k := strings.IndexByte(v, '"'); k >= 0 {
		return v[:k]
	}
	return ""
}

// okHandler is a protected handler that answers 204.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
