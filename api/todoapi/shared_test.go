package todoapi

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/internal/testbuf"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/store/redistest"
)

// testStoreSecret is the STORE_SECRET of the instances of one test.
const testStoreSecret = "a store secret of thirty-two bytes or more, for tests"

// introspectionKeyPrefix is how the introspection client names its shared
// verdicts in the store.
const introspectionKeyPrefix = "tollgate:introspection:v1:"

// instance is one todo API of a fleet sharing a store, with its own
// database and log.
type instance struct {
	*Server
	log *testbuf.Buffer
}

// sharedConfig is a todo API in introspection mode at is (every verdict
// cached for a minute) sharing the store at storeURL, with DPoP allowed
// when dpop is set.
func sharedConfig(t *testing.T, is *authtest.Issuer, storeURL string, dpop bool) Config {
	t.Helper()
	is.EnableIntrospection()
	cfg := Config{
		DatabaseURL:               "sqlite:" + filepath.Join(t.TempDir(), "todos.db"),
		AuthMode:                  middleware.ModeIntrospection,
		Issuers:                   []string{is.URL},
		IntrospectionClientID:     authtest.IntrospectionClientID,
		IntrospectionClientSecret: authtest.IntrospectionClientSecret,
		IntrospectionCacheTTL:     time.Minute,
		ReadScopes:                []string{"todos:read"},
		WriteScopes:               []string{"todos:write"},
		StoreURL:                  storeURL,
		StoreSecret:               testStoreSecret,
	}
	if dpop {
		cfg.DPoP, cfg.BaseURL = middleware.DPoPAllowed, "http://example.com"
	}
	return cfg
}

// startInstance builds a todo API from cfg, logging into its own buffer.
func startInstance(t *testing.T, cfg Config) *instance {
	t.Helper()
	logs := &testbuf.Buffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &instance{Server: s, log: logs}
}

// count is how many lines of the log hold msg.
func (in *instance) count(msg string) int { return strings.Count(in.log.String(), msg) }

// get sends GET /todos with "Bearer token", or with "DPoP token" and proof
// when proof is set.
func (in *instance) get(token, proof string) *httptest.ResponseRecorder {
	if proof == "" {
		return serve(in, "GET", "/todos", "", "Authorization", "Bearer "+token)
	}
	return serve(in, "GET", "/todos", "", "Authorization", "DPoP "+token, "DPoP", proof)
}

// wantCalls fails unless the authorization server has answered want
// introspection requests.
func wantCalls(t *testing.T, is *authtest.Issuer, want int64, when string) {
	t.Helper()
	if got := is.IntrospectionCalls(); got != want {
		t.Fatalf("%s: %d introspection calls, want %d", when, got, want)
	}
}

// introspectionKeys lists the store's introspection verdict keys.
func introspectionKeys(srv *redistest.Server) []string {
	var keys []string
	for k := range srv.Dump() {
		if strings.HasPrefix(k, introspectionKeyPrefix) {
			keys = append(keys, k)
		}
	}
	return keys
}

// newKey is the one introspection key that is in after but not in before.
func newKey(t *testing.T, before, after []string) string {
	t.Helper()
	var found []string
	for _, k := range after {
		if !contains(before, k) {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d new introspection keys in the store, want 1: %v", len(found), found)
	}
	return found[0]
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestSharedIntrospectionAcrossInstances: two todo APIs on one Redis ask
// the authorization server once per token between them, for an active
// token and for an inactive one, and the store holds no token. A value
// tampered with in Redis (other bytes, a changed answer, or another
// token's genuine verdict moved onto this token's key) is not trusted:
// the instance asks the server instead and answers what the server says.
func TestSharedIntrospectionAcrossInstances(t *testing.T) {
	rs := redistest.Start(t)
	is := authtest.NewIssuer(t, todoScopes)
	a := startInstance(t, sharedConfig(t, is, rs.URL, false))
	b := startInstance(t, sharedConfig(t, is, rs.URL, false))
	for _, in := range []*instance{a, b} {
		if n := in.count(`"msg":"caches shared with the other instances","store":"` + rs.URL + `","shared":["introspection answers"]`); n != 1 {
			t.Fatalf("the start log does not name the store and what is shared (%d):\n%s", n, in.log)
		}
	}

	alice := is.OpaqueToken("alice", nil)
	if rec := a.get(alice, ""); rec.Code != http.StatusOK {
		t.Fatalf("alice at A: %d %s", rec.Code, rec.Body)
	}
	wantCalls(t, is, 1, "alice at A")
	if rec := b.get(alice, ""); rec.Code != http.StatusOK {
		t.Fatalf("alice at B: %d %s", rec.Code, rec.Body)
	}
	wantCalls(t, is, 1, "alice at B, answered from the shared cache")

	revoked := is.OpaqueToken("alice", nil)
	is.Revoke(revoked)
	if rec := a.get(revoked, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("revoked at A: %d", rec.Code)
	}
	wantCalls(t, is, 2, "revoked at A")
	if rec := b.get(revoked, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("revoked at B: %d", rec.Code)
	}
	wantCalls(t, is, 2, "revoked at B, answered from the shared negative cache")

	for k, v := range rs.Dump() {
		if strings.Contains(k+v, alice) || strings.Contains(k+v, revoked) {
			t.Fatalf("the store holds a token under %s", k)
		}
	}

	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	ctx := t.Context()
	overwrite := func(key string, edit func(old string) string) {
		t.Helper()
		old, err := rdb.Get(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, key, edit(old), time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		sub    string // the token's subject; "" for an inactive token
		edit   func(old, genuine string) string
		status int
	}{
		{"other bytes", "alice", func(string, string) string { return "not a verdict at all" }, http.StatusOK},
		{"the answer changed, its MAC kept", "alice", func(old, _ string) string { return strings.Replace(old, `"alice"`, `"admin"`, 1) }, http.StatusOK},
		{"another token's active verdict on an inactive token's key", "", func(_, genuine string) string { return genuine }, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A verdict A stores, a genuine active one to move, then B.
			genuineTok := is.OpaqueToken("mallory", nil)
			before := introspectionKeys(rs)
			expectStatus(t, a.get(genuineTok, ""), http.StatusOK)
			genuineKey := newKey(t, before, introspectionKeys(rs))
			genuine, err := rdb.Get(ctx, genuineKey).Result()
			if err != nil {
				t.Fatal(err)
			}

			tok := rand.Text() // never issued
			if tt.sub != "" {
				tok = is.OpaqueToken(tt.sub, nil)
			}
			before = introspectionKeys(rs)
			expectStatus(t, a.get(tok, ""), tt.status)
			key := newKey(t, before, introspectionKeys(rs))
			overwrite(key, func(old string) string { return tt.edit(old, genuine) })

			calls := is.IntrospectionCalls()
			expectStatus(t, b.get(tok, ""), tt.status)
			wantCalls(t, is, calls+1, "B after the value was tampered with")
		})
	}
	if b.count("introspection shared cache value ignored") == 0 {
		t.Errorf("B did not log the values it ignored:\n%s", b.log)
	}
}

// TestSharedDPoPReplayAcrossInstances: with DPoP on, a proof accepted by
// one instance is refused by the other (dpop_replay), while a fresh proof
// passes there; the bound token itself is introspected once for both.
func TestSharedDPoPReplayAcrossInstances(t *testing.T) {
	rs := redistest.Start(t)
	is := authtest.NewIssuer(t, todoScopes)
	a := startInstance(t, sharedConfig(t, is, rs.URL, true))
	b := startInstance(t, sharedConfig(t, is, rs.URL, true))
	if !strings.Contains(a.log.String(), `"shared":["introspection answers","DPoP proof ids"]`) {
		t.Fatalf("the start log does not say the DPoP proof ids are shared:\n%s", a.log)
	}
	key := authtest.NewDPoPKey(t, "ES256")
	tok := boundToken(is, key)
	proof := key.Proof(t, "GET", "http://example.com/todos", tok)
	expectStatus(t, a.get(tok, proof), http.StatusOK)
	rec := b.get(tok, proof)
	expectStatus(t, rec, http.StatusUnauthorized)
	if r := problemReason(t, rec); r != "dpop_replay" {
		t.Fatalf("the replayed proof at B: reason %q, want dpop_replay", r)
	}
	expectStatus(t, b.get(tok, key.Proof(t, "GET", "http://example.com/todos", tok)), http.StatusOK)
	wantCalls(t, is, 1, "one bound token at two instances")
}

// TestSharedStoreOutage: with Redis stopped, both instances go on
// answering from their own caches and the authorization server, each
// logging one warning per shared cache for the whole outage; when Redis
// is back they share again and log that they recovered. The store being
// down when an instance starts does not stop it from starting.
func TestSharedStoreOutage(t *testing.T) {
	rs := redistest.Start(t)
	is := authtest.NewIssuer(t, todoScopes)
	rs.Stop()
	a := startInstance(t, sharedConfig(t, is, rs.URL, true)) // Redis down at start
	rs.Start()
	b := startInstance(t, sharedConfig(t, is, rs.URL, true))
	key := authtest.NewDPoPKey(t, "ES256")
	request := func(in *instance, tok string) {
		t.Helper()
		expectStatus(t, in.get(tok, key.Proof(t, "GET", "http://example.com/todos", tok)), http.StatusOK)
	}
	const (
		cacheDown   = "introspection shared cache unavailable"
		replayDown  = "DPoP replay store unavailable"
		cacheBack   = "introspection shared cache recovered"
		replayBack  = "DPoP replay store recovered"
		recoverWait = 1200 * time.Millisecond // past the 1s the libraries leave a failed store alone
	)

	// Up: shared.
	tok := boundToken(is, key)
	request(a, tok)
	request(b, tok)
	wantCalls(t, is, 1, "before the outage")

	rs.Stop()
	calls := is.IntrospectionCalls()
	// Requests over more than the retry interval, so that each instance
	// tries the store again during the outage (and must not log again).
	for i := range 3 {
		if i > 0 {
			time.Sleep(recoverWait)
		}
		for _, in := range []*instance{a, b} {
			start := time.Now()
			request(in, boundToken(is, key))
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("a request took %v with Redis down", d)
			}
		}
	}
	wantCalls(t, is, calls+6, "during the outage, every new token asked at its instance")
	for name, in := range map[string]*instance{"A": a, "B": b} {
		for _, msg := range []string{cacheDown, replayDown} {
			if n := in.count(msg); n != 1 {
				t.Errorf("%s logged %q %d times during the outage, want once:\n%s", name, msg, n, in.log)
			}
		}
	}

	rs.Start()
	time.Sleep(recoverWait)
	for _, in := range []*instance{a, b} {
		request(in, boundToken(is, key))
	}
	for name, in := range map[string]*instance{"A": a, "B": b} {
		for _, msg := range []string{cacheBack, replayBack} {
			if n := in.count(msg); n != 1 {
				t.Errorf("%s logged %q %d times after the outage, want once:\n%s", name, msg, n, in.log)
			}
		}
	}
	// Shared again: one call for two instances, and a replay across them
	// is refused.
	tok = boundToken(is, key)
	calls = is.IntrospectionCalls()
	proof := key.Proof(t, "GET", "http://example.com/todos", tok)
	expectStatus(t, a.get(tok, proof), http.StatusOK)
	if rec := b.get(tok, proof); rec.Code != http.StatusUnauthorized || problemReason(t, rec) != "dpop_replay" {
		t.Fatalf("a replay across instances after the outage: %d %s", rec.Code, rec.Body)
	}
	request(b, tok)
	wantCalls(t, is, calls+1, "after the outage")
	for _, in := range []*instance{a, b} {
		if strings.Contains(in.log.String(), tok) || strings.Contains(in.log.String(), testStoreSecret) {
			t.Fatalf("the log holds a token or STORE_SECRET:\n%s", in.log)
		}
	}
}

// TestStoreSettings: STORE_URL and STORE_SECRET are checked at start with
// the other settings, naming them and showing neither the secret nor the
// URL's password; without STORE_URL nothing is opened or shared, and with
// it in jwt mode without DPoP, a warning says nothing is shared.
func TestStoreSettings(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	const password = "redis-password-sekrit"
	tests := []struct {
		name      string
		url, sec  string
		want      []string
		forbidden []string
	}{
		{"bad scheme", "memcached://user:" + password + "@127.0.0.1:11211", testStoreSecret, []string{`STORE_URL scheme "memcached" is not supported`}, []string{password}},
		{"not a URL", "redis://:" + password + "@[::1%zz]:6379/0", testStoreSecret, []string{"STORE_URL is not a URL"}, []string{password}},
		{"bad database", "redis://:" + password + "@127.0.0.1:6379/notanumber", testStoreSecret, []string{"STORE_URL"}, []string{password}},
		{"no secret", "redis://127.0.0.1:6379/0", "", []string{"STORE_SECRET is required with STORE_URL"}, nil},
		{"short secret", "redis://127.0.0.1:6379/0", "short-sekrit", []string{"STORE_SECRET: must be at least 32 bytes, got 12"}, []string{"short-sekrit"}},
		{"secret without a store", "", testStoreSecret, []string{"STORE_SECRET: only with STORE_URL"}, []string{testStoreSecret}},
		{"both wrong, both named", "http://:" + password + "@x", "short-sekrit", []string{"STORE_URL scheme", "STORE_SECRET: must be at least"}, []string{password, "short-sekrit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sharedConfig(t, is, tt.url, false)
			cfg.StoreSecret = tt.sec
			logs := &testbuf.Buffer{}
			cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
			s, err := New(t.Context(), cfg)
			if err == nil {
				s.Close()
				t.Fatal("New accepted the settings")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, f := range tt.forbidden {
				if strings.Contains(err.Error()+logs.String(), f) {
					t.Errorf("the error or log shows %q: %v\n%s", f, err, logs)
				}
			}
		})
	}

	t.Run("jwt mode without DPoP", func(t *testing.T) {
		cfg := testConfig(t, is)
		cfg.StoreURL, cfg.StoreSecret = "redis://:"+password+"@127.0.0.1:1/0", testStoreSecret
		in := startInstance(t, cfg)
		if in.shared != nil || in.count("STORE_URL is set but nothing is shared") != 1 || strings.Contains(in.log.String(), password) {
			t.Fatalf("store %v, log:\n%s", in.shared, in.log)
		}
		expectStatus(t, in.get(is.Token(t, "alice", nil), ""), http.StatusOK)
	})
	t.Run("unset", func(t *testing.T) {
		cfg := sharedConfig(t, is, "", false)
		cfg.StoreSecret = ""
		in := startInstance(t, cfg)
		if in.shared != nil || strings.Contains(in.log.String(), "caches shared") || strings.Contains(in.log.String(), "STORE_URL") {
			t.Fatalf("store %v, log:\n%s", in.shared, in.log)
		}
		calls := is.IntrospectionCalls()
		expectStatus(t, in.get(is.OpaqueToken("alice", nil), ""), http.StatusOK)
		wantCalls(t, is, calls+1, "without a store")
	})
}

// boundToken is a new opaque token of alice's bound to key (cnf.jkt and
// token_type DPoP in its introspection answer).
func boundToken(is *authtest.Issuer, key *authtest.DPoPKey) string {
	return is.OpaqueToken("alice", func(c jwt.MapClaims) {
		c["cnf"], c["token_type"] = map[string]any{"jkt": key.Thumbprint()}, "DPoP"
	})
}

func expectStatus(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status %d, want %d: %s", rec.Code, want, rec.Body)
	}
}
