package introspection

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// Response is an active introspection answer (RFC 7662 §2.2). Introspect
// returns one only for active tokens; an inactive token is ErrInactive.
//
// A Response may be shared with the cache and with other callers: treat it,
// including Aud and Claims, as read-only.
type Response struct {
	// Active is always true in a Response that Introspect returns.
	Active bool
	// Scope is the space-delimited scope string; see Scopes.
	Scope     string
	ClientID  string
	Username  string
	TokenType string
	// Exp, Iat and Nbf are the token's expiry, issue and not-before times,
	// nil when the answer has none.
	Exp *time.Time
	Iat *time.Time
	Nbf *time.Time
	Sub string
	// Aud holds the audience, whether the answer gave a string or an array.
	Aud []string
	Iss string
	Jti string
	// CacheUntil is when the Client that returned this answer stops reusing
	// it (its CacheTTL, never past Exp); zero when it does not cache it. A
	// caller that keeps answers of its own (the middleware's verified-token
	// cache does) must not keep them longer, so that a revocation takes
	// effect when the Client's configuration says it does.
	CacheUntil time.Time
	// Claims holds every member of the answer as decoded JSON (numbers are
	// float64), including the ones above and any the server adds.
	Claims map[string]any
	// Raw is the answer's JSON object as the server sent it, for decoding
	// members into types of the caller's own with exact numbers (the
	// middleware's principal.DecodeClaims reads it).
	Raw json.RawMessage
}

// Scopes splits Scope into its scope tokens (RFC 6749 §3.3).
func (r *Response) Scopes() []string {
	if r == nil {
		return nil
	}
	return strings.Fields(r.Scope)
}

// maxUnix is the last second of year 9999; later timestamps are nonsense.
const maxUnix = 253402300799

// parseResponse reads a 200 answer's body. An inactive answer is a Response
// with Active false and nothing else read; a malformed one is an error
// wrapping ErrMalformedResponse.
func parseResponse(body []byte) (*Response, error) {
	// Decode into a map, not a struct: encoding/json matches struct fields
	// case-insensitively, and "ACTIVE": true must not count.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, malformed("answer is not a JSON object: %v", err)
	}
	if raw == nil {
		return nil, malformed("answer is null, not a JSON object")
	}
	// §2.2: active is a boolean; only true makes a token active, and
	// nothing else in an answer that is not active is trusted.
	if !bytes.Equal(bytes.TrimSpace(raw["active"]), []byte("true")) {
		return &Response{}, nil
	}

	r := &Response{Active: true}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"scope", &r.Scope},
		{"client_id", &r.ClientID},
		{"username", &r.Username},
		{"token_type", &r.TokenType},
		{"sub", &r.Sub},
		{"iss", &r.Iss},
		{"jti", &r.Jti},
	} {
		if err := parseString(raw, f.name, f.dst); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		dst  **time.Time
	}{
		{"exp", &r.Exp},
		{"iat", &r.Iat},
		{"nbf", &r.Nbf},
	} {
		if err := parseTime(raw, f.name, f.dst); err != nil {
			return nil, err
		}
	}
	if err := parseAudience(raw, &r.Aud); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &r.Claims); err != nil {
		return nil, malformed("answer is not a JSON object: %v", err)
	}
	r.Raw = body
	if err := r.CheckAccessToken(); err != nil {
		return nil, err
	}
	return r, nil
}

// accessTokenTypes are the token_type values of access tokens, lower case.
// RFC 7662 §2.2 defines token_type as an RFC 6749 §7.1 access token type;
// servers also put the kind of token there. Anything else is refused, an
// unknown value included: fail closed.
var accessTokenTypes = map[string]bool{
	"bearer":       true, // RFC 6750: Hydra ("bearer"), Keycloak, Okta, Zitadel, Spring
	"dpop":         true, // RFC 9449, bound to a key (a bearer-only caller must refuse it)
	"pop":          true, // RFC 9201, bound to a key, likewise
	"access_token": true, // Duende IdentityServer
	"urn:ietf:params:oauth:token-type:access_token": true, // RFC 8693 §3
}

// nonAccessTyps are typ values, lower case, that name a token other than
// an access token. typ is not an RFC 7662 member: Keycloak copies its
// token's typ claim into the answer ("Bearer", "DPoP"; "Refresh", "Offline",
// "ID", "Serialized-ID", "Logout" for the others), and older Keycloak has no
// token_type to say so. Other servers may use typ for anything, so only
// these values refuse.
var nonAccessTyps = map[string]bool{
	"refresh": true, "offline": true, "id": true, "serialized-id": true, "logout": true,
	"refresh_token": true, "id_token": true, "logout+jwt": true, "n_a": true,
	"urn:ietf:params:oauth:token-type:refresh_token": true,
	"urn:ietf:params:oauth:token-type:id_token":      true,
}

// CheckAccessToken returns nil unless the answer says the token is not an
// access token, and otherwise an error matching ErrNotAccessToken (and
// ErrInactive). Introspect calls it on every active answer; it is exported
// for callers with answers of their own making.
//
// An answer that names no kind of token passes: RFC 7662 makes every member
// but active optional, and many servers (fosite's default answer,
// authentik, doorkeeper for refresh tokens) name none. Otherwise, compared
// case-insensitively:
//   - token_use (Ory Hydra's extension) must be "access_token": Hydra
//     answers "token_type": "bearer" for its refresh tokens too;
//   - token_type must be an access token type: Bearer, DPoP, PoP,
//     access_token or urn:ietf:params:oauth:token-type:access_token; so
//     refresh_token, N_A (RFC 8693: not an access token), the RFC 8693
//     URNs of other kinds, Keycloak's Refresh, Offline and ID, and unknown
//     values are refused;
//   - typ (Keycloak's token typ) must not name a refresh, offline, ID or
//     logout token.
//
// JSON null and the empty string name nothing and count as absent.
func (r *Response) CheckAccessToken() error {
	if r == nil {
		return nil
	}
	if v, ok := r.Claims["token_use"]; ok && v != nil && v != "" {
		if s, isString := v.(string); !isString || !strings.EqualFold(s, "access_token") {
			return &notAccessToken{member: "token_use", value: describe(v)}
		}
	}
	if r.TokenType != "" && !accessTokenTypes[strings.ToLower(r.TokenType)] {
		return &notAccessToken{member: "token_type", value: describe(r.TokenType)}
	}
	if s, ok := r.Claims["typ"].(string); ok && nonAccessTyps[strings.ToLower(s)] {
		return &notAccessToken{member: "typ", value: describe(s)}
	}
	return nil
}

// describe quotes a server's token kind for an error message, bounded.
func describe(v any) string {
	s, ok := v.(string)
	if !ok {
		return "not a string"
	}
	return strconv.Quote(clean(s, ""))
}

// member returns the raw value of a member, or nil when it is absent or
// JSON null: optional members that some servers send as null count as absent.
func member(raw map[string]json.RawMessage, name string) []byte {
	v := bytes.TrimSpace(raw[name])
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	return v
}

func parseString(raw map[string]json.RawMessage, name string, dst *string) error {
	v := member(raw, name)
	if v == nil {
		return nil
	}
	if v[0] != '"' || json.Unmarshal(v, dst) != nil {
		return malformed("member %q is not a string", name)
	}
	return nil
}

// parseTime reads an RFC 7662 timestamp: a JSON number of whole seconds
// since 1970. Strings, fractions, negative and absurd values are malformed.
func parseTime(raw map[string]json.RawMessage, name string, dst **time.Time) error {
	v := member(raw, name)
	if v == nil {
		return nil
	}
	// A JSON number starts with '-' or a digit. Check it ourselves:
	// json.Number would also accept a quoted number.
	if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return malformed("member %q is not a number", name)
	}
	sec, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		// 1.7e9 or 1700000000.0: accept whole values only.
		f, ferr := strconv.ParseFloat(string(v), 64)
		if ferr != nil || f != math.Trunc(f) || f < 0 || f > maxUnix {
			return malformed("member %q is not a whole number of seconds", name)
		}
		sec = int64(f)
	}
	if sec < 0 || sec > maxUnix {
		return malformed("member %q is out of range", name)
	}
	t := time.Unix(sec, 0).UTC()
	*dst = &t
	return nil
}

// parseAudience reads aud, which RFC 7662 allows as a string or an array of
// strings.
func parseAudience(raw map[string]json.RawMessage, dst *[]string) error {
	v := member(raw, "aud")
	if v == nil {
		return nil
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return malformed(`member "aud" is not a string`)
		}
		*dst = []string{s}
		return nil
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil {
			return malformed(`member "aud" is not an array`)
		}
		aud := make([]string, 0, len(items))
		for _, it := range items {
			it = bytes.TrimSpace(it)
			var s string
			if len(it) == 0 || it[0] != '"' || json.Unmarshal(it, &s) != nil {
				return malformed(`member "aud" holds a value that is not a string`)
			}
			aud = append(aud, s)
		}
		*dst = aud
		return nil
	}
	return malformed(`member "aud" is neither a string nor an array of strings`)
}
