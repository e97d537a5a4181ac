package authtest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Introspection client credentials the issuer's /introspect endpoint
// accepts (HTTP Basic).
const (
	IntrospectionClientID     = "resource-server"
	IntrospectionClientSecret = "introspection-secret"
)

// Behaviour is how the /introspect endpoint answers.
type Behaviour int

// The behaviours of the introspection endpoint.
const (
	Normal  Behaviour = iota // the truth about the token
	Slow                     // the truth, after SetSlowDelay's delay (3s by default)
	Fail                     // 500
	Garbage                  // 200 with a body that is not JSON
	Huge                     // 200 with a 4 MiB JSON body
)

// defaultSlowDelay is how long a Slow answer takes unless SetSlowDelay
// says otherwise.
const defaultSlowDelay = 3 * time.Second

type introspectState struct {
	once      sync.Once
	mu        sync.Mutex
	opaque    map[string]jwt.MapClaims
	revoked   map[string]bool
	behaviour atomic.Int32
	calls     atomic.Int64
	slowDelay atomic.Int64 // nanoseconds; 0: defaultSlowDelay
}

func (is *Issuer) intro() *introspectState {
	is.introState.once.Do(func() {
		is.introState.opaque = map[string]jwt.MapClaims{}
		is.introState.revoked = map[string]bool{}
		is.mux.HandleFunc("POST /introspect", is.handleIntrospect)
	})
	return &is.introState
}

// EnableIntrospection serves RFC 7662 introspection at /introspect: opaque
// tokens made by OpaqueToken, and JWTs this issuer signed, are active until
// they expire or are revoked.
func (is *Issuer) EnableIntrospection() { is.intro() }

// SetIntrospection changes how /introspect answers.
func (is *Issuer) SetIntrospection(b Behaviour) { is.intro().behaviour.Store(int32(b)) }

// SetSlowDelay sets how long a Slow answer of this issuer takes; default
// 3s. Per issuer, so tests running in parallel do not change each other's.
func (is *Issuer) SetSlowDelay(d time.Duration) { is.intro().slowDelay.Store(int64(d)) }

// IntrospectionCalls counts the requests /introspect has received.
func (is *Issuer) IntrospectionCalls() int64 { return is.intro().calls.Load() }

// OpaqueToken makes a random opaque token standing for valid claims for
// sub, after edit (may be nil) has changed them.
func (is *Issuer) OpaqueToken(sub string, edit func(jwt.MapClaims)) string {
	c := is.Claims(sub)
	if edit != nil {
		edit(c)
	}
	tok := rand.Text() + rand.Text()
	st := is.intro()
	st.mu.Lock()
	st.opaque[tok] = c
	st.mu.Unlock()
	return tok
}

// Revoke makes the introspection endpoint answer inactive for token.
func (is *Issuer) Revoke(token string) {
	st := is.intro()
	st.mu.Lock()
	st.revoked[token] = true
	st.mu.Unlock()
}

func (is *Issuer) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	st := is.intro()
	st.calls.Add(1)
	id, secret, ok := r.BasicAuth()
	if !ok || id != IntrospectionClientID || secret != IntrospectionClientSecret {
		w.Header().Set("WWW-Authenticate", `Basic realm="introspect"`)
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	switch Behaviour(st.behaviour.Load()) {
	case Slow:
		delay := time.Duration(st.slowDelay.Load())
		if delay <= 0 {
			delay = defaultSlowDelay
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	case Fail:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case Garbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("<html>not json</html>"))
		return
	case Huge:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"sub":"alice","pad":"` + strings.Repeat("x", 4<<20) + `"}`))
		return
	}
	token := r.PostFormValue("token")
	w.Header().Set("Content-Type", "application/json")
	claims := is.lookup(token)
	if claims == nil {
		_, _ = w.Write([]byte(`{"active":false}`))
		return
	}
	out := map[string]any{"active": true, "token_type": "Bearer"}
	for k, v := range claims {
		out[k] = v
	}
	_ = json.NewEncoder(w).Encode(out)
}

// lookup returns the claims of an active token, or nil.
func (is *Issuer) lookup(token string) jwt.MapClaims {
	st := is.intro()
	st.mu.Lock()
	revoked := st.revoked[token]
	claims, opaque := st.opaque[token]
	st.mu.Unlock()
	if revoked || token == "" {
		return nil
	}
	if opaque {
		// Normalise numbers as a JWT's claims decode, but exactly
		// (json.Number), so that the answer carries them as given.
		b, _ := json.Marshal(claims)
		claims = jwt.MapClaims{}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		_ = dec.Decode(&claims)
	}
	if !opaque {
		claims = jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
			is.mu.Lock()
			defer is.mu.Unlock()
			for _, k := range is.keys {
				if k.KID == t.Header["kid"] {
					return k.Private.Public(), nil
				}
			}
			return nil, jwt.ErrTokenUnverifiable
		})
		if err != nil {
			return nil
		}
	}
	if exp, err := claims.GetExpirationTime(); err != nil || exp == nil || !time.Now().Before(exp.Time) {
		return nil
	}
	return claims
}
