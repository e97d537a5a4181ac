package conformance

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware"
)

// metadataServer serves the JSON documents of docs (path → document) over
// TLS, and returns a client that reaches it under any https host name
// (auth.example.com, the catalog's issuer), trusting its certificate.
func metadataServer(t *testing.T, docs map[string]any) *http.Client {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	addr := srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	// The test certificate names example.com.
	tr.TLSClientConfig.ServerName = "example.com"
	return &http.Client{Transport: tr}
}

// TestDiscovery: the RFC 8414 metadata cases that concern a resource
// server, against middleware.Discover and the discovery New does when
// Config.JWKSURL is empty.
func TestDiscovery(t *testing.T) {
	const oidcPath = "/.well-known/openid-configuration"
	// newFrom builds an Authenticator for the fixture's issuer whose
	// metadata is doc, and returns New's error.
	newFrom := func(t *testing.T, doc map[string]any) error {
		t.Helper()
		client := metadataServer(t, map[string]any{oidcPath: doc})
		cfg := baseConfig(newIssuer(t))
		cfg.JWKSURL, cfg.HTTPClient = "", client
		_, err := middleware.New(t.Context(), cfg)
		return err
	}

	runCase(t, "rfc8414-metadata-issuer-must-match-configured-issuer", func(t *testing.T) {
		for _, iss := range []string{"https://evil.example.com", fixtureIssuer + "/"} {
			client := metadataServer(t, map[string]any{oidcPath: map[string]any{"issuer": iss, "jwks_uri": fixtureIssuer + "/jwks"}})
			md, err := middleware.Discover(t.Context(), client, fixtureIssuer)
			if err == nil || !strings.Contains(err.Error(), "names issuer") {
				t.Errorf("metadata naming %q: %v %v, want an issuer mismatch", iss, md, err)
			}
		}
	})

	runCase(t, "rfc8414-jwks-uri-required-for-jwt-validation", func(t *testing.T) {
		err := newFrom(t, map[string]any{"issuer": fixtureIssuer})
		if err == nil || !strings.Contains(err.Error(), "jwks_uri") {
			t.Errorf("New: %v, want an error naming jwks_uri", err)
		}
	})

	runCase(t, "rfc8414-metadata-must-contain-issuer", func(t *testing.T) {
		client := metadataServer(t, map[string]any{oidcPath: map[string]any{"jwks_uri": fixtureIssuer + "/jwks"}})
		if md, err := middleware.Discover(t.Context(), client, fixtureIssuer); err == nil || !strings.Contains(err.Error(), "issuer") {
			t.Errorf("metadata without issuer: %v %v, want refused", md, err)
		}
	})

	runCase(t, "rfc8414-jwks-uri-must-be-absolute-https-url", func(t *testing.T) {
		for _, uri := range []string{"/relative-jwks", "http://auth.example.com/jwks"} {
			err := newFrom(t, map[string]any{"issuer": fixtureIssuer, "jwks_uri": uri})
			if err == nil || !strings.Contains(err.Error(), "jwks_uri") {
				t.Errorf("jwks_uri %q: New: %v, want an error naming jwks_uri", uri, err)
			}
		}
	}, noted("an http:// jwks_uri is accepted only from the metadata of an http:// issuer, which the operator configured (a development server)"))

	runCase(t, "rfc8414-introspection-endpoint-required-when-introspection-is-used", func(t *testing.T) {
		client := metadataServer(t, map[string]any{oidcPath: map[string]any{"issuer": fixtureIssuer, "jwks_uri": fixtureIssuer + "/jwks"}})
		md, err := middleware.Discover(t.Context(), client, fixtureIssuer)
		if err != nil {
			t.Fatal(err)
		}
		if u, err := md.IntrospectionURL(); err == nil || !strings.Contains(err.Error(), "introspection_endpoint") {
			t.Errorf("IntrospectionURL: %q %v, want an error naming introspection_endpoint", u, err)
		}
	})

	runCase(t, "rfc8414-introspection-endpoint-must-be-absolute-https-url", func(t *testing.T) {
		for _, tc := range []struct{ endpoint, want string }{
			{"http://auth.example.com/introspect", "plain http"},
			{"/introspect", "not an http(s) URL"},
			{"https://auth.example.com/introspect", ""},
		} {
			client := metadataServer(t, map[string]any{oidcPath: map[string]any{
				"issuer": fixtureIssuer, "jwks_uri": fixtureIssuer + "/jwks", "introspection_endpoint": tc.endpoint,
			}})
			md, err := middleware.Discover(t.Context(), client, fixtureIssuer)
			if err != nil {
				t.Fatal(err)
			}
			u, err := md.IntrospectionURL()
			switch {
			case tc.want == "" && (err != nil || u != tc.endpoint):
				t.Errorf("%q: IntrospectionURL = %q, %v; want it accepted", tc.endpoint, u, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "introspection_endpoint") || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%q: IntrospectionURL = %q, %v; want an error naming introspection_endpoint: %s", tc.endpoint, u, err, tc.want)
			}
		}
	}, noted("an http:// introspection_endpoint is accepted only from the metadata of an http:// issuer, which the operator configured (a development server)"))

	runCase(t, "rfc8414-jwks-uri-rotation-must-reconfigure-jwks-cache", func(t *testing.T) {
		// Two key sets on the metadata server: v1 with is1's keys, v2
		// with is2's only, whose ES256 key has a kid is1 does not use.
		is1, is2 := newIssuer(t), newIssuer(t)
		is2.AddKey(t, "ES256")
		doc := &switchableDoc{}
		doc.set(map[string]any{"issuer": fixtureIssuer, "jwks_uri": fixtureIssuer + "/jwks-v1"})
		client := metadataServer(t, map[string]any{
			oidcPath:   doc,
			"/jwks-v1": json.RawMessage(is1.JWKS()),
			"/jwks-v2": json.RawMessage(is2.JWKS()),
		})
		a := newAuthenticator(t, is1, func(cfg *middleware.Config) { cfg.JWKSURL, cfg.HTTPClient = "", client })
		mustAccept(t, send(t, a, bearer(token(t, is1, nil, nil))))
		doc.set(map[string]any{"issuer": fixtureIssuer, "jwks_uri": fixtureIssuer + "/jwks-v2"})
		// A token with a kid of the new key set: the refresh it causes
		// reads the metadata again and fetches the new jwks_uri.
		mustAccept(t, send(t, a, bearer(token(t, is2, nil, nil))))
		if got := a.JWKSURL(); got != fixtureIssuer+"/jwks-v2" {
			t.Errorf("JWKSURL() = %q, want the new jwks_uri", got)
		}
	}, noted("the metadata is read again at each key refresh (the periodic one, and the one an unknown kid causes, rate-limited by JWKSMinRefreshInterval); a configured JWKSURL is never rebound"))

	runCase(t, "rfc8414-discovery-url-must-insert-well-known-before-issuer-path", func(t *testing.T) {
		issuer := fixtureIssuer + "/tenant-a"
		// Only the RFC 8414 location answers; the appended forms are 404.
		client := metadataServer(t, map[string]any{
			"/.well-known/oauth-authorization-server/tenant-a": map[string]any{"issuer": issuer, "jwks_uri": issuer + "/jwks"},
		})
		md, err := middleware.Discover(t.Context(), client, issuer)
		if err != nil || md.Issuer != issuer || md.JWKSURI != issuer+"/jwks" {
			t.Fatalf("Discover: %+v %v", md, err)
		}
	})
}

// switchableDoc is a metadata document a case changes while the server
// serves it.
type switchableDoc struct {
	doc atomic.Pointer[map[string]any]
}

func (d *switchableDoc) set(doc map[string]any) { d.doc.Store(&doc) }

func (d *switchableDoc) MarshalJSON() ([]byte, error) { return json.Marshal(*d.doc.Load()) }
