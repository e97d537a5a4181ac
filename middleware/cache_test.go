package middleware

import (
	"fmt"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

func TestVerifiedCacheBounded(t *testing.T) {
	now := time.Now()
	c := newVerifiedCache(100, time.Minute)
	for i := range 1000 {
		c.put(keyOf(fmt.Sprint(i)), principal.Principal{Subject: "s", ExpiresAt: now.Add(time.Hour)}, now)
		if c.len() > 100 {
			t.Fatalf("cache grew to %d entries", c.len())
		}
	}
	// The newest entry survives the eviction that made room for it.
	if _, ok := c.get(keyOf("999"), now); !ok {
		t.Fatal("newest entry evicted")
	}
	// Entries end at the earlier of exp and the maximum age.
	c.put(keyOf("short"), principal.Principal{Subject: "s", ExpiresAt: now.Add(time.Second)}, now)
	if _, ok := c.get(keyOf("short"), now.Add(2*time.Second)); ok {
		t.Fatal("entry outlived its exp")
	}
	c.put(keyOf("long"), principal.Principal{Subject: "s", ExpiresAt: now.Add(time.Hour)}, now)
	if _, ok := c.get(keyOf("long"), now.Add(2*time.Minute)); ok {
		t.Fatal("entry outlived the maximum age")
	}
	// An already expired token is not stored.
	n := c.len()
	c.put(keyOf("dead"), principal.Principal{Subject: "s", ExpiresAt: now.Add(-time.Second)}, now)
	if c.len() > n {
		t.Fatal("stored an expired token")
	}
	var disabled *verifiedCache = newVerifiedCache(-1, time.Minute)
	disabled.put(keyOf("x"), principal.Principal{Subject: "s"}, now)
	if _, ok := disabled.get(keyOf("x"), now); ok || disabled.len() != 0 {
		t.Fatal("disabled cache answered")
	}
}
