package conformance

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware"
)

// TestProtectedResourceMetadata: the RFC 9728 cases, against the document
// the Authenticator serves (Config.ResourceMetadata,
// ResourceMetadataHandler).
func TestProtectedResourceMetadata(t *testing.T) {
	is := newIssuer(t)
	// document is the metadata served by an Authenticator configured by
	// edit, decoded.
	document := func(t *testing.T, edit func(*middleware.Config)) map[string]any {
		t.Helper()
		a := newAuthenticator(t, is, func(c *middleware.Config) {
			c.ResourceMetadata = &middleware.ResourceMetadata{
				Resource:        fixtureResource,
				ScopesSupported: []string{"read:data", "write:data"},
			}
			if edit != nil {
				edit(c)
			}
		})
		w := httptest.NewRecorder()
		a.ResourceMetadataHandler().ServeHTTP(w, httptest.NewRequest("GET", a.ResourceMetadataPath(), nil))
		if w.Code != http.StatusOK {
			t.Fatalf("metadata: %d %s", w.Code, w.Body)
		}
		var doc map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	list := func(v any) []string {
		list, _ := v.([]any)
		var out []string
		for _, s := range list {
			str, _ := s.(string)
			out = append(out, str)
		}
		return out
	}

	runCase(t, "rfc9728-prm-must-contain-required-fields", func(t *testing.T) {
		doc := document(t, nil)
		if doc["resource"] != fixtureResource {
			t.Errorf("resource %v, want %s", doc["resource"], fixtureResource)
		}
		for _, name := range []string{"authorization_servers", "bearer_methods_supported", "scopes_supported"} {
			if len(list(doc[name])) == 0 {
				t.Errorf("%s missing or empty in %v", name, doc)
			}
		}
		if got := list(doc["scopes_supported"]); !slices.Equal(got, []string{"read:data", "write:data"}) {
			t.Errorf("scopes_supported %v", got)
		}
	})

	runCase(t, "rfc9728-prm-authorization-servers-must-list-the-issuer", func(t *testing.T) {
		if got := list(document(t, nil)["authorization_servers"]); !slices.Equal(got, []string{fixtureIssuer}) {
			t.Errorf("authorization_servers %v, want [%s]", got, fixtureIssuer)
		}
	})

	runCase(t, "rfc9728-prm-supported-bearer-methods-should-be-stable", func(t *testing.T) {
		for range 2 {
			if got := list(document(t, nil)["bearer_methods_supported"]); !slices.Equal(got, []string{"header"}) {
				t.Errorf("bearer_methods_supported %v, want [header]", got)
			}
		}
	})

	runCase(t, "rfc9728-well-known-path-must-derive-from-resource-uri", func(t *testing.T) {
		for resource, want := range map[string]string{
			"https://api.example.com":        "/.well-known/oauth-protected-resource",
			"https://api.example.com/mcp":    "/.well-known/oauth-protected-resource/mcp",
			"https://api.example.com/v2/mcp": "/.well-known/oauth-protected-resource/v2/mcp",
			"https://api.example.com/mcp/":   "/.well-known/oauth-protected-resource/mcp",
		} {
			metaURL, path, _, err := middleware.ResourceMetadataURL(resource)
			if err != nil || path != want || metaURL != "https://api.example.com"+want {
				t.Errorf("%s: %q %q %v, want path %s", resource, metaURL, path, err, want)
			}
			// The Authenticator serves the document there.
			a := newAuthenticator(t, is, func(c *middleware.Config) {
				c.ResourceMetadata = &middleware.ResourceMetadata{Resource: resource}
			})
			if got := a.ResourceMetadataPath(); got != want {
				t.Errorf("%s: served at %s, want %s", resource, got, want)
			}
		}
	})

	runCase(t, "rfc9728-prm-dpop-fields-should-be-advertised-when-dpop-is-supported", func(t *testing.T) {
		doc := document(t, func(c *middleware.Config) {
			c.DPoP = middleware.DPoPAllowed
			c.DPoPAlgorithms = []string{"ES256", "RS256"}
		})
		if got := list(doc["dpop_signing_alg_values_supported"]); !slices.Equal(got, []string{"ES256", "RS256"}) {
			t.Errorf("dpop_signing_alg_values_supported %v, want [ES256 RS256]", got)
		}
		if _, ok := doc["dpop_bound_access_tokens_required"]; ok {
			t.Errorf("dpop_bound_access_tokens_required set while bearer tokens are accepted: %v", doc)
		}
	})

	runCase(t, "rfc9728-prm-must-advertise-dpop-required-when-resource-requires-dpop", func(t *testing.T) {
		doc := document(t, func(c *middleware.Config) { c.DPoP = middleware.DPoPRequired })
		if doc["dpop_bound_access_tokens_required"] != true {
			t.Errorf("dpop_bound_access_tokens_required %v, want true", doc["dpop_bound_access_tokens_required"])
		}
	})
}
