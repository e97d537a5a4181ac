package principal_test

import (
	"context"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

func TestFrom(t *testing.T) {
	tests := []struct {
		name   string
		ctx    context.Context
		wantOK bool
	}{
		{name: "no principal", ctx: context.Background()},
		{name: "empty subject", ctx: principal.With(context.Background(), principal.Principal{})},
		{name: "verified", ctx: principal.With(context.Background(), principal.Principal{Subject: "alice"}), wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := principal.From(tt.ctx)
			if ok != tt.wantOK {
				t.Fatalf("From ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && p.Subject != "alice" {
				t.Fatalf("Subject = %q", p.Subject)
			}
			if !ok && principal.Subject(tt.ctx) != "" {
				t.Fatalf("Subject of unverified context = %q", principal.Subject(tt.ctx))
			}
		})
	}
}

func TestHasScopes(t *testing.T) {
	p := principal.Principal{Subject: "a", Scopes: []string{"todos:read", "openid"}}
	if !p.HasScopes("todos:read") || !p.HasScopes() {
		t.Fatal("missing granted scope")
	}
	if p.HasScopes("todos:read", "todos:write") || p.HasScope("todos") {
		t.Fatal("granted a scope that was not in the token")
	}
}
