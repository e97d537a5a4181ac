package middleware_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// providerCase is one authorization server's access token, shaped as its
// documentation shows it (header and claims), with the settings the README's
// provider guide gives for it, and tokens of another tenant, client or
// audience that those settings must refuse.
type providerCase struct {
	name string
	doc  string // where the shape comes from
	// header is the JOSE header as the server sends it, but for kid, which
	// is the key's (see kid) and alg.
	header map[string]any
	kid    string // the key id the server's JWKS uses; "" for authtest's
	jwk    func(map[string]any)
	hs256  bool
	claims map[string]any // exp, iat and nbf are added
	config func(c *middleware.Config)

	wantSub    string
	wantScopes []string
	wantRoles  []string
	refused    []providerRefusal
}

type providerRefusal struct {
	name   string
	edit   func(claims map[string]any)
	reason string
}

// Tenant and client identifiers used by the rows, in the forms the
// servers use.
const (
	entraTenant      = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
	entraOtherTenant = "bbbbcccc-1111-dddd-2222-eeee3333ffff"
	entraAPIClientID = "00001111-aaaa-2222-bbbb-3333cccc4444"
	entraWebClientID = "11112222-bbbb-3333-cccc-4444dddd5555"
	zitadelProject   = "344374183645413380"
	fusionAppID      = "85a03867-dccf-4882-adde-1a79aeec50df"
)

func providerCases() []providerCase {
	return []providerCase{
		{
			// https://auth0.com/docs/secure/tokens/access-tokens/access-token-profiles
			// (the Auth0 token profile: typ JWT, aud with the userinfo URL,
			// azp); permissions: https://auth0.com/docs/get-started/apis/enable-role-based-access-control-for-apis;
			// a namespaced roles claim set by an Action:
			// https://auth0.com/docs/secure/tokens/json-web-tokens/create-custom-claims
			name:   "Auth0",
			doc:    "https://auth0.com/docs/secure/tokens/access-tokens/access-token-profiles",
			header: map[string]any{"typ": "JWT"},
			kid:    "QzE4N0ZBM0VDQzE2RUU0NjE4QjYzQjc1MTM4NjE4RDc2RUZGNTBBNg",
			claims: map[string]any{
				"iss":                            "https://my-tenant.us.auth0.com/",
				"sub":                            "auth0|6553da60a54af58e29493993",
				"aud":                            []any{"https://todo.example.com/api", "https://my-tenant.us.auth0.com/userinfo"},
				"azp":                            "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja",
				"scope":                          "openid profile todos:read todos:write",
				"permissions":                    []any{"todos:read", "todos:write", "todos:delete-all"},
				"https://todo.example.com/roles": []any{"editor"},
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://my-tenant.us.auth0.com/"
				c.Audiences = []string{"https://todo.example.com/api"}
				c.RoleClaims = []string{"permissions", `https://todo\.example\.com/roles`}
			},
			wantSub:    "auth0|6553da60a54af58e29493993",
			wantScopes: []string{"openid", "profile", "todos:read", "todos:write"},
			wantRoles:  []string{"todos:read", "todos:write", "todos:delete-all", "editor"},
			refused: []providerRefusal{
				{"another API of the tenant", func(c map[string]any) {
					c["aud"] = []any{"https://payments.example.com/api", "https://my-tenant.us.auth0.com/userinfo"}
				}, middleware.ReasonAudience},
				{"a token for userinfo only", func(c map[string]any) { c["aud"] = "https://my-tenant.us.auth0.com/userinfo" }, middleware.ReasonAudience},
				{"another tenant", func(c map[string]any) { c["iss"] = "https://other-tenant.us.auth0.com/" }, middleware.ReasonIssuer},
			},
		},
		{
			// The same tenant with the RFC 9068 profile: typ at+jwt,
			// client_id instead of azp, jti.
			name:   "Auth0 RFC 9068 profile",
			doc:    "https://auth0.com/docs/secure/tokens/access-tokens/access-token-profiles",
			header: map[string]any{"typ": "at+jwt"},
			claims: map[string]any{
				"iss":       "https://my-tenant.us.auth0.com/",
				"sub":       "auth0|6553da60a54af58e29493993",
				"aud":       []any{"https://todo.example.com/api", "https://my-tenant.us.auth0.com/userinfo"},
				"client_id": "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja",
				"jti":       "73WakrfVbNJBaAmhQtEeDv",
				"scope":     "openid profile todos:read",
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://my-tenant.us.auth0.com/"
				c.Audiences = []string{"https://todo.example.com/api"}
				c.RequireATJWT = true
			},
			wantSub:    "auth0|6553da60a54af58e29493993",
			wantScopes: []string{"openid", "profile", "todos:read"},
		},
		{
			// https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference
			// v1.0: iss https://sts.windows.net/{tid}/, aud as the client
			// asked for it (here the App ID URI), appid, scp a
			// space-separated string, roles an array, ver "1.0"; header
			// typ JWT with x5t and kid; the JWKS keys carry no alg.
			name:   "Entra ID v1",
			doc:    "https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference",
			header: map[string]any{"typ": "JWT", "x5t": "JDNa_4i4r7FgigL3sHIlI3xV-IU"},
			kid:    "JDNa_4i4r7FgigL3sHIlI3xV-IU",
			jwk:    entraJWK,
			claims: map[string]any{
				"aud":         "api://todo-api",
				"iss":         "https://sts.windows.net/" + entraTenant + "/",
				"acr":         "1",
				"aio":         "AVQAq/8TAAAA",
				"amr":         []any{"pwd"},
				"appid":       entraWebClientID,
				"appidacr":    "1",
				"name":        "Alice",
				"oid":         "00000000-0000-0000-66f3-3332eca7ea81",
				"rh":          "0.AAAA",
				"scp":         "Todos.Read Todos.Write",
				"roles":       []any{"Todo.Admin"},
				"sub":         "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
				"tid":         entraTenant,
				"unique_name": "alice@contoso.com",
				"upn":         "alice@contoso.com",
				"uti":         "fqiBqXLPj0eQa82S-IYFAA",
				"ver":         "1.0",
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://sts.windows.net/" + entraTenant + "/"
				c.Audiences = []string{"api://todo-api", entraAPIClientID}
				c.RoleClaims = []string{"roles"}
			},
			wantSub:    "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
			wantScopes: []string{"Todos.Read", "Todos.Write"},
			wantRoles:  []string{"Todo.Admin"},
			refused: []providerRefusal{
				// Every tenant's tokens are signed with the same keys: only
				// iss tells them apart.
				{"another tenant", func(c map[string]any) {
					c["iss"] = "https://sts.windows.net/" + entraOtherTenant + "/"
					c["tid"] = entraOtherTenant
				}, middleware.ReasonIssuer},
				{"a token for Microsoft Graph", func(c map[string]any) { c["aud"] = "00000003-0000-0000-c000-000000000000" }, middleware.ReasonAudience},
				{"a v2.0 token of the tenant", func(c map[string]any) {
					c["iss"] = "https://login.microsoftonline.com/" + entraTenant + "/v2.0"
					c["ver"] = "2.0"
				}, middleware.ReasonIssuer},
			},
		},
		{
			// v2.0: iss https://login.microsoftonline.com/{tid}/v2.0, aud
			// always the API's client id, azp, ver "2.0".
			name:   "Entra ID v2",
			doc:    "https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference",
			header: map[string]any{"typ": "JWT"},
			kid:    "L1KfKFI_jnXbwWc22xZxw1sUHH0",
			jwk:    entraJWK,
			claims: map[string]any{
				"aud":                entraAPIClientID,
				"iss":                "https://login.microsoftonline.com/" + entraTenant + "/v2.0",
				"aio":                "AWQAm/8TAAAA",
				"azp":                entraWebClientID,
				"azpacr":             "0",
				"name":               "Alice",
				"oid":                "00000000-0000-0000-66f3-3332eca7ea81",
				"preferred_username": "alice@contoso.com",
				"rh":                 "0.AAAA",
				"scp":                "Todos.Read",
				"roles":              []any{"Todo.Admin", "Todo.Auditor"},
				"sub":                "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
				"tid":                entraTenant,
				"uti":                "fqiBqXLPj0eQa82S-IYFAA",
				"ver":                "2.0",
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://login.microsoftonline.com/" + entraTenant + "/v2.0"
				c.Audiences = []string{entraAPIClientID}
				c.RoleClaims = []string{"roles"}
			},
			wantSub:    "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
			wantScopes: []string{"Todos.Read"},
			wantRoles:  []string{"Todo.Admin", "Todo.Auditor"},
			refused: []providerRefusal{
				{"another tenant", func(c map[string]any) {
					c["iss"] = "https://login.microsoftonline.com/" + entraOtherTenant + "/v2.0"
					c["tid"] = entraOtherTenant
				}, middleware.ReasonIssuer},
				{"another app of the tenant", func(c map[string]any) { c["aud"] = "22223333-cccc-4444-dddd-5555eeee6666" }, middleware.ReasonAudience},
			},
		},
		{
			// https://developer.okta.com/docs/reference/api/oidc/#access-token
			// (a custom authorization server, here "default": aud
			// api://default, cid, uid, scp an array, ver 1, jti "AT.…";
			// header alg and kid, no typ). groups is a custom claim the
			// authorization server is told to add.
			name:   "Okta",
			doc:    "https://developer.okta.com/docs/reference/api/oidc/#access-token",
			header: map[string]any{"typ": nil},
			kid:    "ZkvelLN_seik7w4pc_prCcfUf-h2hFfiwkDeCrs0iUc",
			claims: map[string]any{
				"ver":       1,
				"jti":       "AT.MNAoEQ_jbKqoinrQo1D0XKjMX28U5d7ZszBceot7-Ts",
				"iss":       "https://dev-123456.okta.com/oauth2/default",
				"aud":       "api://default",
				"sub":       "alice@example.com",
				"cid":       "0oa1b2c3d4e5f6g7h8i9",
				"uid":       "00u1a2b3c4d5e6f7g8h9",
				"scp":       []any{"openid", "todos:read", "todos:write"},
				"auth_time": time.Now().Add(-time.Minute).Unix(),
				"groups":    []any{"Everyone", "todo-editors"},
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://dev-123456.okta.com/oauth2/default"
				c.Audiences = []string{"api://default"}
				c.RoleClaims = []string{"groups"}
			},
			wantSub:    "alice@example.com",
			wantScopes: []string{"openid", "todos:read", "todos:write"},
			wantRoles:  []string{"Everyone", "todo-editors"},
			refused: []providerRefusal{
				{"the org authorization server's token", func(c map[string]any) {
					c["iss"] = "https://dev-123456.okta.com"
					c["aud"] = "https://dev-123456.okta.com"
				}, middleware.ReasonIssuer},
				{"another audience of the same server", func(c map[string]any) { c["aud"] = "api://payments" }, middleware.ReasonAudience},
			},
		},
		{
			// https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html
			// No aud: the app client is in client_id; token_use "access";
			// scope a string of resource-server scopes; cognito:groups.
			name:   "Cognito",
			doc:    "https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html",
			header: map[string]any{"typ": nil},
			kid:    "abcdefghijklmnopqrsexample=",
			claims: map[string]any{
				"sub":            "aaaaaaaa-bbbb-cccc-dddd-example",
				"cognito:groups": []any{"todo-editors"},
				"iss":            "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_example",
				"version":        2,
				"client_id":      "1example23456789",
				"origin_jti":     "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
				"event_id":       "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
				"token_use":      "access",
				"scope":          "openid todo-api/todos.read todo-api/todos.write",
				"auth_time":      time.Now().Add(-time.Minute).Unix(),
				"jti":            "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
				"username":       "alice",
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_example"
				c.AudienceClaims = []string{"client_id"}
				c.Audiences = []string{"1example23456789"}
				c.RoleClaims = []string{"cognito:groups"}
			},
			wantSub:    "aaaaaaaa-bbbb-cccc-dddd-example",
			wantScopes: []string{"openid", "todo-api/todos.read", "todo-api/todos.write"},
			wantRoles:  []string{"todo-editors"},
			refused: []providerRefusal{
				{"another app client", func(c map[string]any) { c["client_id"] = "2other34567890123" }, middleware.ReasonAudience},
				// An ID token of the same client names it in aud, and has
				// no client_id: refused for want of the audience claim.
				{"the client's ID token", func(c map[string]any) {
					delete(c, "client_id")
					c["aud"] = "1example23456789"
					c["token_use"] = "id"
				}, middleware.ReasonAudience},
				{"another user pool", func(c map[string]any) {
					c["iss"] = "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_other"
				}, middleware.ReasonIssuer},
			},
		},
		{
			// Keycloak: typ Bearer claim, azp, realm_access.roles,
			// resource_access.<client>.roles; aud names todo-api once an
			// Audience mapper adds it:
			// https://www.keycloak.org/docs/latest/server_admin/index.html#_audience
			name:   "Keycloak",
			doc:    "https://www.keycloak.org/docs/latest/server_admin/index.html#_audience",
			header: map[string]any{"typ": "JWT"},
			kid:    "nnniBrxL0qhG79pkF3ccQj_l0jDmxKrYYy2YLlEe1s",
			claims: map[string]any{
				"jti":             "d58f5dc8-fd8f-462b-8a19-716f8f83985b",
				"iss":             "https://sso.example.com/realms/todo",
				"aud":             []any{"todo-api", "account"},
				"sub":             "36fa0f91-f94d-4a0c-afed-6b7d952e47da",
				"typ":             "Bearer",
				"azp":             "todo-web",
				"sid":             "2a88c258-f73a-4103-b862-e1fbd8f4e04e",
				"acr":             "1",
				"allowed-origins": []any{"https://todo.example.com"},
				"realm_access":    map[string]any{"roles": []any{"default-roles-todo", "offline_access", "todo-user"}},
				"resource_access": map[string]any{
					"todo-api": map[string]any{"roles": []any{"editor"}},
					"account":  map[string]any{"roles": []any{"manage-account", "view-profile"}},
				},
				"scope":              "openid profile email todos:read todos:write",
				"email_verified":     true,
				"preferred_username": "alice",
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://sso.example.com/realms/todo"
				c.Audiences = []string{"todo-api"}
				c.RoleClaims = []string{"realm_access.roles", "resource_access.todo-api.roles"}
			},
			wantSub:    "36fa0f91-f94d-4a0c-afed-6b7d952e47da",
			wantScopes: []string{"openid", "profile", "email", "todos:read", "todos:write"},
			wantRoles:  []string{"default-roles-todo", "offline_access", "todo-user", "editor"},
			refused: []providerRefusal{
				{"no Audience mapper", func(c map[string]any) { c["aud"] = "account" }, middleware.ReasonAudience},
				{"another realm", func(c map[string]any) { c["iss"] = "https://sso.example.com/realms/other" }, middleware.ReasonIssuer},
			},
		},
		{
			// A Keycloak client id with a dot: the escaped path reads the
			// member "todo.api", never the nested "todo" → "api".
			name:   "Keycloak client id with a dot",
			doc:    "https://www.keycloak.org/docs/latest/server_admin/index.html#_protocol-mappers",
			header: map[string]any{"typ": "JWT"},
			claims: map[string]any{
				"iss": "https://sso.example.com/realms/todo",
				"aud": []any{"todo.api", "account"},
				"sub": "36fa0f91-f94d-4a0c-afed-6b7d952e47da",
				"typ": "Bearer",
				"azp": "todo-web",
				"resource_access": map[string]any{
					"todo.api": map[string]any{"roles": []any{"editor"}},
					"todo":     map[string]any{"api": map[string]any{"roles": []any{"intruder"}}},
				},
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://sso.example.com/realms/todo"
				c.Audiences = []string{"todo.api"}
				c.RoleClaims = []string{`resource_access.todo\.api.roles`}
			},
			wantSub:   "36fa0f91-f94d-4a0c-afed-6b7d952e47da",
			wantRoles: []string{"editor"},
		},
		{
			// Keycloak without an Audience mapper: aud is "account", so
			// the check moves to the client (azp).
			name:   "Keycloak checked by azp",
			doc:    "https://www.keycloak.org/docs/latest/server_admin/index.html#_audience",
			header: map[string]any{"typ": "JWT"},
			claims: map[string]any{
				"iss":   "https://sso.example.com/realms/todo",
				"aud":   "account",
				"sub":   "36fa0f91-f94d-4a0c-afed-6b7d952e47da",
				"typ":   "Bearer",
				"azp":   "todo-web",
				"scope": "openid todos:read",
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://sso.example.com/realms/todo"
				c.AudienceClaims = []string{"azp"}
				c.Audiences = []string{"todo-web"}
			},
			wantSub:    "36fa0f91-f94d-4a0c-afed-6b7d952e47da",
			wantScopes: []string{"openid", "todos:read"},
			refused: []providerRefusal{
				{"another client of the realm", func(c map[string]any) { c["azp"] = "admin-cli" }, middleware.ReasonAudience},
				{"no azp", func(c map[string]any) { delete(c, "azp") }, middleware.ReasonAudience},
			},
		},
		{
			// https://fusionauth.io/docs/lifecycle/authenticate-users/oauth/tokens
			// HS256 by default; header typ JWT and kid; aud the client id
			// (the application's id), applicationId, roles, tid, iss the
			// tenant's issuer (acme.com by default: no scheme).
			name:   "FusionAuth",
			doc:    "https://fusionauth.io/docs/lifecycle/authenticate-users/oauth/tokens",
			hs256:  true,
			header: map[string]any{"typ": "JWT", "kid": "cc9fbd6f8"},
			claims: map[string]any{
				"aud":                fusionAppID,
				"iss":                "acme.com",
				"sub":                "00000000-0000-0001-0000-000000000000",
				"jti":                "3c2f9f85-6fb3-4a1c-8a3a-8f8b5b4f3f1c",
				"authenticationType": "PASSWORD",
				"email":              "alice@example.com",
				"email_verified":     true,
				"applicationId":      fusionAppID,
				"scope":              "offline_access",
				"roles":              []any{"user", "editor"},
				"sid":                "bb3e1c5f-8bbf-4c07-8f3a-0d2e8a7b6c55",
				"auth_time":          time.Now().Add(-time.Minute).Unix(),
				"tid":                "f8b1c3a4-2d5e-4f6a-8b9c-0d1e2f3a4b5c",
			},
			config: func(c *middleware.Config) {
				c.Issuer = "acme.com"
				c.Audiences = []string{fusionAppID}
				c.RoleClaims = []string{"roles"}
			},
			wantSub:    "00000000-0000-0001-0000-000000000000",
			wantScopes: []string{"offline_access"},
			wantRoles:  []string{"user", "editor"},
			refused: []providerRefusal{
				{"another application", func(c map[string]any) {
					c["aud"] = "3c219e58-ed0e-4b18-ad48-f4f92793ae32"
					c["applicationId"] = "3c219e58-ed0e-4b18-ad48-f4f92793ae32"
				}, middleware.ReasonAudience},
				{"another tenant's issuer", func(c map[string]any) { c["iss"] = "other.example.com" }, middleware.ReasonIssuer},
			},
		},
		{
			// Ory Hydra with the JWT access token strategy
			// (https://www.ory.sh/docs/oauth2-oidc/jwt-access-token; the
			// claims: github.com/ory/fosite token/jwt/claims_jwt.go ToMap):
			// kid "public:…", typ JWT, scp an array, client_id, ext, and
			// aud an array: [] unless the client asked for an audience.
			name:   "Ory Hydra",
			doc:    "https://www.ory.sh/docs/oauth2-oidc/jwt-access-token",
			header: map[string]any{"typ": "JWT"},
			kid:    "public:89b6bbd4-8d3e-4b2b-a1b4-2b1c0e6a1f52",
			claims: map[string]any{
				"aud":       []any{"todo-api"},
				"client_id": "todo-web",
				"ext":       map[string]any{},
				"iss":       "https://hydra.example.com/",
				"jti":       "6b9b4c5e-6a4e-4f0b-9c1d-2e3f4a5b6c7d",
				"scp":       []any{"openid", "offline", "todos:read", "todos:write"},
				"sub":       "alice",
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://hydra.example.com/"
				c.Audiences = []string{"todo-api"}
			},
			wantSub:    "alice",
			wantScopes: []string{"openid", "offline", "todos:read", "todos:write"},
			refused: []providerRefusal{
				// golang-jwt, in charge of aud by default, calls an empty
				// aud a missing claim.
				{"no audience requested", func(c map[string]any) { c["aud"] = []any{} }, middleware.ReasonMissingClaim},
				{"issuer without its trailing slash", func(c map[string]any) { c["iss"] = "https://hydra.example.com" }, middleware.ReasonIssuer},
			},
		},
		{
			// Hydra clients that ask for no audience: aud is [], which
			// counts as absent, so client_id decides; a token that names
			// another audience is decided by aud and refused, whatever
			// its client.
			name:   "Ory Hydra checked by client_id",
			doc:    "https://www.ory.sh/docs/oauth2-oidc/jwt-access-token",
			header: map[string]any{"typ": "JWT"},
			claims: map[string]any{
				"aud":       []any{},
				"client_id": "todo-web",
				"ext":       map[string]any{},
				"iss":       "https://hydra.example.com/",
				"scp":       []any{"todos:read"},
				"sub":       "alice",
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://hydra.example.com/"
				c.AudienceClaims = []string{"aud", "client_id"}
				c.Audiences = []string{"todo-api", "todo-web"}
			},
			wantSub:    "alice",
			wantScopes: []string{"todos:read"},
			refused: []providerRefusal{
				{"another client", func(c map[string]any) { c["client_id"] = "reporting" }, middleware.ReasonAudience},
				{"the client's token for another API", func(c map[string]any) { c["aud"] = []any{"payments-api"} }, middleware.ReasonAudience},
			},
		},
		{
			// https://zitadel.com/docs/apis/openidoauth/claims and
			// https://zitadel.com/docs/guides/integrate/retrieve-user-roles:
			// aud holds the project id, client_id; roles are the member
			// names of urn:zitadel:iam:org:project:{projectid}:roles (each
			// mapping organisation ids to domains); no scope claim.
			name:   "Zitadel",
			doc:    "https://zitadel.com/docs/apis/openidoauth/claims",
			header: map[string]any{"typ": nil},
			kid:    "231849024580108295",
			claims: map[string]any{
				"iss":       "https://todo-abc123.zitadel.cloud",
				"sub":       "345377791925026818",
				"aud":       []any{zitadelProject, "245745163158472704@todo"},
				"client_id": "245745163158472704@todo",
				"jti":       "V2_345377791925026818-at_345377791925026819",
				"urn:zitadel:iam:org:project:roles": map[string]any{
					"todo.editor": map[string]any{"231848297847848959": "acme.todo-abc123.zitadel.cloud"},
				},
				"urn:zitadel:iam:org:project:" + zitadelProject + ":roles": map[string]any{
					"todo.editor": map[string]any{"231848297847848959": "acme.todo-abc123.zitadel.cloud"},
					"todo.viewer": map[string]any{"231848297847848959": "acme.todo-abc123.zitadel.cloud"},
				},
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://todo-abc123.zitadel.cloud"
				c.Audiences = []string{zitadelProject}
				c.RoleClaims = []string{"urn:zitadel:iam:org:project:" + zitadelProject + ":roles.*"}
			},
			wantSub:   "345377791925026818",
			wantRoles: []string{"todo.editor", "todo.viewer"},
			refused: []providerRefusal{
				{"another project", func(c map[string]any) { c["aud"] = []any{"344374183645413999", "245745163158472704@todo"} }, middleware.ReasonAudience},
				{"another instance", func(c map[string]any) { c["iss"] = "https://other-xyz789.zitadel.cloud" }, middleware.ReasonIssuer},
			},
		},
		{
			// Dex issues its ID token's shape as the access token
			// (server/oauth2.go newAccessToken calls newIDToken): aud is
			// the client id, or with the cross-client scope
			// audience:server:client_id:todo-api an array naming todo-api
			// and the client, with azp; groups; no scope claim; header alg
			// and kid only.
			// https://dexidp.io/docs/configuration/custom-scopes-claims-clients/
			name:   "Dex",
			doc:    "https://dexidp.io/docs/configuration/custom-scopes-claims-clients/",
			header: map[string]any{"typ": nil},
			kid:    "3f8e1b0b5d3c2a1f0e9d8c7b6a594837",
			claims: map[string]any{
				"iss":                "https://dex.example.com/dex",
				"sub":                "CgVhbGljZRIFbG9jYWw",
				"aud":                []any{"todo-api", "todo-web"},
				"azp":                "todo-web",
				"email":              "alice@example.com",
				"email_verified":     true,
				"groups":             []any{"todo-editors", "admins"},
				"name":               "alice",
				"preferred_username": "alice",
			},
			config: func(c *middleware.Config) {
				c.Issuer = "https://dex.example.com/dex"
				c.Audiences = []string{"todo-api"}
				c.RoleClaims = []string{"groups"}
			},
			wantSub:   "CgVhbGljZRIFbG9jYWw",
			wantRoles: []string{"todo-editors", "admins"},
			refused: []providerRefusal{
				{"without the cross-client scope", func(c map[string]any) {
					c["aud"] = "todo-web"
					delete(c, "azp")
				}, middleware.ReasonAudience},
				{"another client's token", func(c map[string]any) {
					c["aud"] = "grafana"
					delete(c, "azp")
				}, middleware.ReasonAudience},
			},
		},
	}
}

// entraJWK publishes a key as Entra ID's JWKS does: no alg, an x5t.
func entraJWK(k map[string]any) {
	delete(k, "alg")
	k["x5t"] = k["kid"]
}

// TestProviderShapes: for each server of the README's provider guide, a
// token shaped as its documentation shows is accepted with the guide's
// settings, with the right subject, scopes and roles, and tokens of another
// tenant, client or audience are refused.
func TestProviderShapes(t *testing.T) {
	is := authtest.NewIssuer(t)
	hs := authtest.NewIssuer(t, authtest.WithHS256(nil))
	cases := providerCases()
	// Publish every row's key under the kid its server uses before any
	// Authenticator loads the set.
	keys := map[string]*authtest.Key{}
	for _, tc := range cases {
		if tc.kid == "" || tc.hs256 {
			continue
		}
		k := &authtest.Key{KID: tc.kid, Alg: "RS256", Private: is.KeyFor("RS256").Private}
		jwk := authtest.PublicJWK(k)
		if tc.jwk != nil {
			tc.jwk(jwk)
		}
		raw, err := json.Marshal(jwk)
		if err != nil {
			t.Fatal(err)
		}
		is.AddRawJWK(string(raw))
		keys[tc.name] = k
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			issuer := is
			if tc.hs256 {
				issuer = hs
			}
			a := mustAuthenticator(t, issuer, func(c *middleware.Config) {
				c.JWKSURL = issuer.URL + "/jwks"
				if tc.hs256 {
					c.JWKSURL = ""
					c.HMACSecret = hs.HMACSecret()
				}
				tc.config(c)
			})
			sign := func(edit func(map[string]any)) string {
				claims := jwt.MapClaims{}
				maps.Copy(claims, deepCopy(tc.claims))
				now := time.Now()
				claims["iat"] = now.Unix()
				claims["nbf"] = now.Unix()
				claims["exp"] = now.Add(5 * time.Minute).Unix()
				if edit != nil {
					edit(claims)
				}
				switch {
				case tc.hs256:
					return issuer.Sign(t, "HS256", claims, tc.header)
				case keys[tc.name] != nil:
					return authtest.SignWith(t, keys[tc.name], claims, tc.header)
				}
				return issuer.Sign(t, "RS256", claims, tc.header)
			}

			p, w := authenticateThrough(a, sign(nil))
			if w.Code != http.StatusOK {
				t.Fatalf("documented token refused: %d %s", w.Code, w.Body)
			}
			if p.Subject != tc.wantSub {
				t.Errorf("Subject = %q, want %q", p.Subject, tc.wantSub)
			}
			if !slices.Equal(p.Scopes, tc.wantScopes) {
				t.Errorf("Scopes = %q, want %q", p.Scopes, tc.wantScopes)
			}
			if !slices.Equal(p.Roles, tc.wantRoles) {
				t.Errorf("Roles = %q, want %q", p.Roles, tc.wantRoles)
			}
			for _, r := range tc.refused {
				t.Run(r.name, func(t *testing.T) {
					_, w := authenticateThrough(a, sign(r.edit))
					if w.Code != http.StatusUnauthorized {
						t.Fatalf("status %d, want 401", w.Code)
					}
					if got := problem(t, w)["reason"]; got != r.reason {
						t.Errorf("reason %v, want %s", got, r.reason)
					}
				})
			}
		})
	}
}

// authenticateThrough sends token through a.Require and returns the
// principal the handler saw.
func authenticateThrough(a *middleware.Authenticator, token string) (principal.Principal, *httptest.ResponseRecorder) {
	var p principal.Principal
	w := httptest.NewRecorder()
	a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ = principal.From(r.Context())
	})).ServeHTTP(w, bearerRequest(token))
	return p, w
}

// deepCopy copies a claims map through JSON, so that a row's edits never
// reach the next token's claims.
func deepCopy(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}
