package middleware_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware"
)

// TestReview17MetadataGivenBrokenMetadataRequests: with Config.Metadata
// given and the issuer's metadata unreadable, how many metadata requests
// does each key refresh cost? The docs say a flood of random kids costs no
// more metadata requests than key requests.
func TestReview17MetadataGivenBrokenMetadataRequests(t *testing.T) {
	p := newRotatingIdP(t)
	md, err := middleware.Discover(t.Context(), p.srv.Client(), p.issuer)
	if err != nil {
		t.Fatal(err)
	}
	auth := p.authenticator(t, nil, func(c *middleware.Config) {
		c.Metadata = md
		c.JWKSMinRefreshInterval = time.Nanosecond
	})
	p.setMetadata(nil)
	meta, keys := p.metadataRequests(), p.count("/jwks-v1")
	for i := range 5 {
		k := newECKey(t, fmt.Sprintf("random-%d", i))
		if w := do(auth, bearerRequest(signFor(t, k, p.issuer))); w.Code != http.StatusUnauthorized {
			t.Fatalf("random kid: %d", w.Code)
		}
	}
	if dm, dk := p.metadataRequests()-meta, p.count("/jwks-v1")-keys; dm > dk {
		t.Errorf("%d metadata requests for %d JWKS requests", dm, dk)
	}
}

// TestReview17MetadataGivenRFC8414Only: with Config.Metadata given, the
// re-reads try Discover's two locations in turn, one per refresh, so a
// server that publishes at the RFC 8414 location only is still followed,
// at the second refresh, and from then on read there alone.
func TestReview17MetadataGivenRFC8414Only(t *testing.T) {
	p := newRotatingIdP(t)
	p.rfc8414.Store(true)
	md, err := middleware.Discover(t.Context(), p.srv.Client(), p.issuer)
	if err != nil {
		t.Fatal(err)
	}
	auth := p.authenticator(t, nil, func(c *middleware.Config) {
		c.Metadata = md
		c.JWKSMinRefreshInterval = time.Nanosecond
	})
	p.setMetadata(map[string]any{"issuer": p.issuer, "jwks_uri": p.issuer + "/jwks-v2"})
	tokB := signFor(t, p.b, p.issuer)
	if w := do(auth, bearerRequest(tokB)); w.Code != http.StatusUnauthorized {
		t.Fatalf("key B at the first refresh (the OpenID Connect location tried): %d", w.Code)
	}
	if w := do(auth, bearerRequest(tokB)); w.Code != http.StatusOK {
		t.Fatalf("key B at the second refresh (the RFC 8414 location): %d %s", w.Code, w.Body)
	}
	meta := p.metadataRequests()
	k := newECKey(t, "random")
	do(auth, bearerRequest(signFor(t, k, p.issuer)))
	if n := p.metadataRequests() - meta; n != 1 || p.count(metadataPath) != 2 { // Discover, then the first re-read
		t.Errorf("%d metadata requests for one refresh (OpenID Connect location %d in all), want 1 at the RFC 8414 location", n, p.count(metadataPath))
	}
}
