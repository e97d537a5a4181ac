package introspection_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/introspection"
)

// TestHashToken: HashToken is SHA-256, allocates nothing whatever the
// token's length, and its log field is the first 12 hex digits.
func TestHashToken(t *testing.T) {
	for _, token := range []string{"", "a", strings.Repeat("eyJ0eXAi", 100), strings.Repeat("x", 20<<10)} {
		h := introspection.HashToken(token)
		want := sha256.Sum256([]byte(token))
		if h != want {
			t.Fatalf("len %d: hash differs from sha256.Sum256", len(token))
		}
		if allocs := testing.AllocsPerRun(10, func() { h = introspection.HashToken(token) }); allocs != 0 {
			t.Errorf("len %d: %v allocations per hash, want 0", len(token), allocs)
		}
		attr := h.LogAttr()
		if attr.Key != "token_sha256" || attr.Value.String() != hex.EncodeToString(want[:6]) || h.Short() != attr.Value.String() {
			t.Errorf("len %d: log attr %v", len(token), attr)
		}
	}
}
