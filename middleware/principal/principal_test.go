package principal_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

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

// TestContextBehavesAsWithValue: the context With returns is not
// context.WithValue's, so check that it keeps what WithValue gives: the
// Principal through derived contexts, the parent's values, cancellation in
// both directions, and no goroutine per derived cancellable context (the
// context package finds the parent's cancelCtx through Value).
func TestContextBehavesAsWithValue(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	ctx := principal.With(parent, principal.Principal{Subject: "alice"})
	type derivedKey struct{}
	derived, cancelDerived := context.WithTimeout(context.WithValue(ctx, derivedKey{}, 1), time.Hour)
	defer cancelDerived()

	if p, ok := principal.From(derived); !ok || p.Subject != "alice" {
		t.Fatalf("From(derived) = %v, %v", p, ok)
	}
	if derived.Value(key{}) != "v" {
		t.Fatal("parent's value lost")
	}
	if _, ok := principal.From(parent); ok {
		t.Fatal("parent carries a Principal")
	}

	before := runtime.NumGoroutine()
	var children []context.CancelFunc
	for range 50 {
		_, c := context.WithCancel(ctx)
		children = append(children, c)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("deriving 50 cancellable contexts started %d goroutines", after-before)
	}
	for _, c := range children {
		c()
	}

	cancel()
	select {
	case <-derived.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the parent did not reach the derived context")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("ctx.Err() = %v", ctx.Err())
	}
}

func TestWithNilParentPanicsLikeWithValue(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("With(nil, …) did not panic")
		}
	}()
	//lint:ignore SA1012 the nil parent is the point of the test
	principal.With(nil, principal.Principal{Subject: "alice"})
}
