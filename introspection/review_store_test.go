package introspection

import (
	"context"
	"testing"
	"time"
)

// TestReviewSharedCacheAbandonedLookupIsNoOutage: a lookup abandoned by
// every caller (clients that went away) ends its shared cache call with
// the context's error. Counting that as an outage switched the Client to
// its local cache for a second and logged an outage that was none: anyone,
// with no token at all, could do it on demand, sending every lookup of
// the instance to the server (and its RateLimit).
func TestReviewSharedCacheAbandonedLookupIsNoOutage(t *testing.T) {
	srv := newIntroServer(t, answerByToken(time.Now().Add(time.Hour)))
	sc := newMemShared(time.Now)
	var logs logBuffer
	c := fleet(t, 1, srv.endpoint(), sc, func(c *Client) { c.Logger = logs.logger() })[0]

	sc.block.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, _ = c.Introspect(ctx, "random-token")
	cancel()
	sc.block.Store(false)

	gets := sc.gets.Load()
	if _, err := c.Introspect(context.Background(), "good-1"); err != nil {
		t.Fatal(err)
	}
	if sc.gets.Load() == gets {
		t.Error("the next lookup skipped the shared cache: an abandoned lookup counted as an outage")
	}
	if st := c.Stats(); st.SharedErrors != 0 {
		t.Errorf("SharedErrors = %d, want 0", st.SharedErrors)
	}
	if n := logs.count("shared cache unavailable"); n != 0 {
		t.Errorf("an abandoned lookup was logged as an outage:\n%s", logs.String())
	}
}
