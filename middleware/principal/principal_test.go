package principal_test

import (
	"context"
	"errors"
	"fmt"
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
	derived, cancelDerived := context.WithTimeout(context.WithValue(ctx, otherKey{}, 1), time.Hour)
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

// TestWithShared: the context refers to the caller's Principal rather than
// a copy of it (the middleware's cache entry), From still hands out a copy,
// a nil Principal carries no caller, the context prints as With's does,
// and a nil parent panics as With's does.
func TestWithShared(t *testing.T) {
	shared := &principal.Principal{Subject: "alice", Scopes: []string{"read"}}
	ctx := principal.WithShared(context.Background(), shared)
	p, ok := principal.From(ctx)
	if !ok || p.Subject != "alice" || !p.HasScope("read") {
		t.Fatalf("From = %v, %v", p, ok)
	}
	p.Subject = "mallory"
	if again, _ := principal.From(ctx); again.Subject != "alice" || shared.Subject != "alice" {
		t.Fatalf("changing From's result reached the shared Principal: %q, %q", again.Subject, shared.Subject)
	}
	if got, want := fmt.Sprint(ctx), fmt.Sprint(principal.With(context.Background(), *shared)); got != want {
		t.Errorf("WithShared's context prints %q, With's %q", got, want)
	}
	if p, ok := principal.From(principal.WithShared(context.Background(), nil)); ok || p.Subject != "" {
		t.Fatalf("a nil Principal: From = %v, %v", p, ok)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("WithShared(nil, …) did not panic")
		}
	}()
	//lint:ignore SA1012 the nil parent is the point of the test
	principal.WithShared(nil, shared)
}
