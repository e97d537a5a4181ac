package middleware_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// Tenants and the application of the Entra ID tests.
const (
	tenantA     = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	tenantB     = "9188040d-6c67-4c5b-b112-36a304b66dad"
	tenantC     = "f8cdef31-a31e-4b4a-93e4-5f571e91255a" // allowed by no one
	tenantD     = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" // allowed by Allow
	entraClient = "6e74172b-be56-4843-9ff4-e66a39bb12e3" // the API's client ID: aud of v2 tokens
	entraAppURI = "api://todo-api"                       // its Application ID URI: aud of v1 tokens
)

// entraV2 returns the claims of an Entra ID v2.0 access token of tenant
// tid for the API, as Microsoft's reference shows them.
func entraV2(tid string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"aud":                entraClient,
		"iss":                "https://login.microsoftonline.com/" + tid + "/v2.0",
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"exp":                now.Add(time.Hour).Unix(),
		"aio":                "AWQAm/8TAAAA",
		"azp":                "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
		"azpacr":             "0",
		"name":               "Abe Lincoln",
		"oid":                "690222be-ff1a-4d56-abd1-7e4f7d38e474",
		"preferred_username": "abeli@microsoft.com",
		"rh":                 "I",
		"scp":                "todos.read todos.write",
		"sub":                "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
		"tid":                tid,
		"uti":                "fqiBqXLPj0eQa82S-IYFAA",
		"ver":                "2.0",
	}
}

// entraV1 returns the claims of an Entra ID v1.0 access token of tenant
// tid for the API.
func entraV1(tid string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"aud":         entraAppURI,
		"iss":         "https://sts.windows.net/" + tid + "/",
		"iat":         now.Unix(),
		"nbf":         now.Unix(),
		"exp":         now.Add(time.Hour).Unix(),
		"acr":         "1",
		"aio":         "AVQAq/8TAAAA",
		"amr":         []string{"pwd"},
		"appid":       "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
		"appidacr":    "0",
		"family_name": "Lincoln",
		"given_name":  "Abe",
		"ipaddr":      "192.0.2.1",
		"name":        "Abe Lincoln",
		"oid":         "690222be-ff1a-4d56-abd1-7e4f7d38e474",
		"rh":          "I",
		"scp":         "user_impersonation",
		"sub":         "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA",
		"tid":         tid,
		"unique_name": "abeli@microsoft.com",
		"upn":         "abeli@microsoft.com",
		"uti":         "fqiBqXLPj0eQa82S-IYFAA",
		"ver":         "1.0",
	}
}

// entraSign signs claims as Entra ID does: RS256, typ JWT, the key named
// by kid and, in v1.0 tokens, x5t as well.
func entraSign(t *testing.T, key *authtest.Key, claims jwt.MapClaims) string {
	t.Helper()
	header := map[string]any{"typ": "JWT"}
	if claims["ver"] == "1.0" {
		header["x5t"] = key.KID
	}
	return authtest.SignWith(t, key, claims, header)
}

// TestEntraMultiTenant: an Entra ID multi-tenant API accepts the v2.0 and
// v1.0 tokens of its allowed tenants, checked against one key set, and
// refuses the token of a tenant it does not allow, and the token whose
// tid is not the tenant of its iss.
func TestEntraMultiTenant(t *testing.T) {
	microsoft := authtest.NewIssuer(t) // serves the common key set
	stranger := authtest.NewIssuer(t)  // the same kids, other keys
	key := microsoft.KeyFor("RS256")
	var allowAsked atomic.Int64
	resolver, err := middleware.Entra{
		Tenants: []string{tenantA, strings.ToUpper(tenantB)},
		Allow: func(ctx context.Context, tid string) (bool, error) {
			allowAsked.Add(1)
			return tid == tenantD, nil
		},
		JWKSURL: microsoft.URL + "/jwks",
	}.Resolver()
	if err != nil {
		t.Fatal(err)
	}
	auth := mustAuthenticator(t, microsoft, func(c *middleware.Config) {
		c.Issuer = ""
		c.Audiences = []string{entraClient, entraAppURI}
		c.IssuerResolver = resolver
	})
	with := func(c jwt.MapClaims, edit func(jwt.MapClaims)) jwt.MapClaims { edit(c); return c }
	const subV2, subV1 = "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ", "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA"
	tests := []struct {
		name   string
		token  string
		status int
		reason string
		sub    string
	}{
		{"v2, tenant A", entraSign(t, key, entraV2(tenantA)), 200, "", subV2},
		{"v1, tenant A", entraSign(t, key, entraV1(tenantA)), 200, "", subV1},
		{"v2, tenant B", entraSign(t, key, entraV2(tenantB)), 200, "", subV2},
		{"v1, tenant B", entraSign(t, key, entraV1(tenantB)), 200, "", subV1},
		{"v2, tenant D allowed by Allow", entraSign(t, key, entraV2(tenantD)), 200, "", subV2},

		// The tenant of iss must be the token's tid.
		{"v2, iss A, tid B", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) { c["tid"] = tenantB })), 401, middleware.ReasonIssuer, ""},
		{"v1, iss B, tid A", entraSign(t, key, with(entraV1(tenantB), func(c jwt.MapClaims) { c["tid"] = tenantA })), 401, middleware.ReasonIssuer, ""},
		{"v2, tid missing", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) { delete(c, "tid") })), 401, middleware.ReasonIssuer, ""},
		{"v2, tid upper case", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) { c["tid"] = strings.ToUpper(tenantA) })), 401, middleware.ReasonIssuer, ""},
		{"v2, iss C, tid A", entraSign(t, key, with(entraV2(tenantC), func(c jwt.MapClaims) { c["tid"] = tenantA })), 401, middleware.ReasonUnknownIssuer, ""},

		// Tenants and issuers not allowed.
		{"v2, tenant C", entraSign(t, key, entraV2(tenantC)), 401, middleware.ReasonUnknownIssuer, ""},
		{"v1, tenant C", entraSign(t, key, entraV1(tenantC)), 401, middleware.ReasonUnknownIssuer, ""},
		{"iss common", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) { c["iss"] = "https://login.microsoftonline.com/common/v2.0" })), 401, middleware.ReasonUnknownIssuer, ""},
		{"iss organizations", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) { c["iss"] = "https://login.microsoftonline.com/organizations/v2.0" })), 401, middleware.ReasonUnknownIssuer, ""},
		{"iss tenant upper case", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) {
			c["iss"] = "https://login.microsoftonline.com/" + strings.ToUpper(tenantA) + "/v2.0"
		})), 401, middleware.ReasonUnknownIssuer, ""},
		{"iss v2 with a trailing slash", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) { c["iss"] = "https://login.microsoftonline.com/" + tenantA + "/v2.0/" })), 401, middleware.ReasonUnknownIssuer, ""},
		{"iss v1 without its trailing slash", entraSign(t, key, with(entraV1(tenantA), func(c jwt.MapClaims) { c["iss"] = "https://sts.windows.net/" + tenantA })), 401, middleware.ReasonUnknownIssuer, ""},
		{"iss v1 host, v2 path", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) { c["iss"] = "https://sts.windows.net/" + tenantA + "/v2.0" })), 401, middleware.ReasonUnknownIssuer, ""},
		{"iss on another host", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) {
			c["iss"] = "https://login.microsoftonline.com.evil.example/" + tenantA + "/v2.0"
		})), 401, middleware.ReasonUnknownIssuer, ""},
		{"iss over http", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) { c["iss"] = "http://login.microsoftonline.com/" + tenantA + "/v2.0" })), 401, middleware.ReasonUnknownIssuer, ""},

		// The common keys, and the tenant's own rules.
		{"v2, tenant A, another key with the same kid", entraSign(t, stranger.KeyFor("RS256"), entraV2(tenantA)), 401, middleware.ReasonSignature, ""},
		{"v2, another API's client ID", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) { c["aud"] = "00000003-0000-0000-c000-000000000000" })), 401, middleware.ReasonAudience, ""},
		{"v2, expired", entraSign(t, key, with(entraV2(tenantA), func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), 401, middleware.ReasonExpired, ""},
	}
	fetches := microsoft.JWKSFetches()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hostileCase(t, auth, tt.token, tt.status, map[bool]string{true: "", false: "invalid_token"}[tt.status == 200], tt.reason, tt.sub)
		})
	}
	// Tenants A, B and D, through one key set: fetched once.
	if n := microsoft.JWKSFetches() - fetches; n != 1 {
		t.Errorf("%d fetches of the common key set, want 1", n)
	}
	// Allow was asked once per iss it had to judge, however many tokens:
	// C's v2.0 and v1.0 issuers, D's.
	if n := allowAsked.Load(); n != 3 {
		t.Errorf("Allow asked %d times, want 3", n)
	}
}

// TestEntraSettings: tenants must be tenant IDs, as they appear in iss.
func TestEntraSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    middleware.Entra
		want string
	}{
		{"tenants", middleware.Entra{Tenants: []string{tenantA, " " + strings.ToUpper(tenantB) + " "}}, ""},
		{"Allow only", middleware.Entra{Allow: func(context.Context, string) (bool, error) { return false, nil }}, ""},
		{"nothing", middleware.Entra{}, "needs Tenants or Allow"},
		{"a domain name", middleware.Entra{Tenants: []string{"contoso.onmicrosoft.com"}}, "is not a tenant ID"},
		{"common", middleware.Entra{Tenants: []string{"common"}}, "is not a tenant ID"},
		{"a GUID in braces", middleware.Entra{Tenants: []string{"{" + tenantA + "}"}}, "is not a tenant ID"},
		{"JWKSURL not http", middleware.Entra{Tenants: []string{tenantA}, JWKSURL: "file:///keys"}, "JWKSURL"},
		{"empty audience", middleware.Entra{Tenants: []string{tenantA}, Audiences: []string{""}}, "Audiences"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.e.Resolver()
			switch {
			case tc.want == "" && (err != nil || r == nil):
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := middleware.EntraTenants("contoso.com"); err == nil {
		t.Fatal("EntraTenants accepted a domain name")
	}
}
