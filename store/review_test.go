package store_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/redistest"
)

// TestReviewSubscriptionsLeaveNothingBehind: many waiters subscribing to
// and leaving topics at once (some with a cancelled context) leave no
// channel subscribed at the server and no goroutine behind.
func TestReviewSubscriptionsLeaveNothingBehind(t *testing.T) {
	srv := redistest.Start(t)
	st := openT(t, srv.URL)
	pub := openT(t, srv.URL)
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	ctx := t.Context()
	// Warm up (the shared pub/sub connection and its goroutines).
	if s, err := st.Subscribe(ctx, "warm"); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := range 400 {
		wg.Go(func() {
			topic := fmt.Sprintf("t%d", i%10)
			sctx := ctx
			if i%7 == 0 {
				c, cancel := context.WithTimeout(ctx, time.Duration(i%3)*time.Millisecond)
				defer cancel()
				sctx = c
			}
			s, err := st.Subscribe(sctx, topic)
			if err != nil {
				return
			}
			_ = pub.Publish(ctx, topic)
			select {
			case <-s.C:
			case <-time.After(50 * time.Millisecond):
			}
			s.Close()
			s.Close()
		})
	}
	wg.Wait()
	deadline := time.Now().Add(3 * time.Second)
	for {
		chans, err := raw.PubSubChannels(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(chans) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still subscribed at the server: %v", chans)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("%d goroutines before, %d after", before, after)
	}
	var _ store.Store = st
}
