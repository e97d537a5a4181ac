package introspection

import (
	"context"
	"testing"
	"time"
)

func BenchmarkIntrospectCached(b *testing.B) {
	srv := newIntroServer(b, answerActive(time.Now().Add(time.Hour)))
	c := newTestClient(b, srv.endpoint(), nil)
	ctx := context.Background()
	const token = "good-eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	if _, err := c.Introspect(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Introspect(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := srv.calls.Load(); n != 1 {
		b.Fatalf("server calls = %d, want 1", n)
	}
}

func BenchmarkIntrospectUncached(b *testing.B) {
	srv := newIntroServer(b, answerActive(time.Now().Add(time.Hour)))
	c := newTestClient(b, srv.endpoint(), func(c *Client) { c.CacheTTL, c.InactiveCacheTTL = -1, -1 })
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Introspect(ctx, "good"); err != nil {
			b.Fatal(err)
		}
	}
}
