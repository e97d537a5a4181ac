package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for what a STORE_URL's query leaves unset: an outage must show
// as a quick error (the callers answer 503), not as requests hanging.
const (
	redisDialTimeout = 2 * time.Second
	redisIOTimeout   = 2 * time.Second
	// confirmTimeout bounds how long Subscribe waits for the server to
	// confirm a subscription.
	confirmTimeout = 2 * time.Second
)

// compareAndDelete deletes KEYS[1] only while it holds ARGV[1], atomically.
var compareAndDelete = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`)

// redisStore is the Store every instance shares. Subscriptions share one
// pub/sub connection, so waiters cost no connection each.
type redisStore struct {
	rdb *redis.Client
	ps  *redis.PubSub

	mu     sync.Mutex
	topics map[string]*redisTopic
	done   chan struct{}
}

type redisTopic struct {
	subs      map[chan struct{}]struct{}
	ready     chan struct{} // closed when the server confirms the subscription
	confirmed bool
}

// goRedisLog sends go-redis's own messages to slog.Default at Debug level.
// go-redis prints to stderr, one line for every connection it fails to
// make, so an outage would fill the log with a line per request; the
// callers report an outage once, when it starts, and once when it ends.
type goRedisLog struct{}

func (goRedisLog) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// quietGoRedis installs goRedisLog once (go-redis's logger is global).
var quietGoRedis = sync.OnceFunc(func() { redis.SetLogger(goRedisLog{}) })

func openRedis(u *url.URL) (*redisStore, error) {
	quietGoRedis()
	opts, err := redis.ParseURL(u.String())
	if err != nil {
		// Not go-redis's message: it quotes the path or the query option
		// it refused, which is where the rest of a password with an
		// unescaped "/" or "?" ends up.
		return nil, errors.New("store: STORE_URL is not a Redis URL the client accepts: the database number, path or a query option is not valid (want redis://[user:password@]host[:port][/db][?option=value]; percent-encode a password's /, ?, # and @)")
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = redisDialTimeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = redisIOTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = redisIOTimeout
	}
	if opts.MaxRetries == 0 {
		// No retries: a SET NX whose answer was lost and is sent again
		// answers "taken" to the caller that took it.
		opts.MaxRetries = -1
	}
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	s := &redisStore{rdb: rdb, ps: rdb.Subscribe(context.Background()), topics: map[string]*redisTopic{}, done: make(chan struct{})}
	go s.dispatch(s.ps.ChannelWithSubscriptions())
	return s, nil
}

func unavailable(err error) error {
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

func (s *redisStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, unavailable(err)
	}
	return v, true, nil
}

func (s *redisStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, key, value, wholeMillis(ttl)).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

func (s *redisStore) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	// SET key value NX PX ttl: absent → "OK", present → nil.
	err := s.rdb.SetArgs(ctx, key, value, redis.SetArgs{Mode: "NX", TTL: wholeMillis(ttl)}).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, unavailable(err)
	}
	return true, nil
}

// wholeMillis rounds a positive ttl up to whole milliseconds, Redis's
// finest TTL (PX). go-redis truncates (1.5ms becomes PX 1), which would
// drop a replay marker or a cached verdict before the instant its caller
// computed; rounding up keeps every value at least as long as asked, and
// never at PX 0 (refused by Redis) or without expiry.
func wholeMillis(ttl time.Duration) time.Duration {
	if r := ttl % time.Millisecond; r != 0 && ttl <= math.MaxInt64-time.Millisecond {
		ttl += time.Millisecond - r
	}
	return ttl
}

func (s *redisStore) CompareAndDelete(ctx context.Context, key string, value []byte) (bool, error) {
	n, err := compareAndDelete.Run(ctx, s.rdb, []string{key}, value).Int()
	if err != nil {
		return false, unavailable(err)
	}
	return n == 1, nil
}

func (s *redisStore) Delete(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, key).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

func (s *redisStore) Publish(ctx context.Context, topic string) error {
	if err := s.rdb.Publish(ctx, topic, "").Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

func (s *redisStore) Subscribe(ctx context.Context, topic string) (*Subscription, error) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	t := s.topics[topic]
	if t == nil {
		t = &redisTopic{subs: map[chan struct{}]struct{}{}, ready: make(chan struct{})}
		s.topics[topic] = t
		// Under s.mu, so that SUBSCRIBE and UNSUBSCRIBE of one topic reach
		// the server in the order the map changed.
		if err := s.ps.Subscribe(ctx, topic); err != nil {
			delete(s.topics, topic)
			// go-redis keeps the topic to subscribe again on reconnect;
			// drop it so an outage does not pile topics up.
			_ = s.ps.Unsubscribe(ctx, topic)
			s.mu.Unlock()
			return nil, unavailable(err)
		}
	}
	t.subs[ch] = struct{}{}
	ready := t.ready
	s.mu.Unlock()

	var once sync.Once
	sub := &Subscription{C: ch, close: func() { once.Do(func() { s.unsubscribe(topic, ch) }) }}
	timer := time.NewTimer(confirmTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		return sub, nil
	case <-ctx.Done():
		sub.Close()
		return nil, unavailable(ctx.Err())
	case <-timer.C:
		sub.Close()
		return nil, unavailable(errors.New("the server did not confirm the subscription"))
	case <-s.done:
		sub.Close()
		return nil, unavailable(errors.New("closed"))
	}
}

func (s *redisStore) unsubscribe(topic string, ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topic]
	if t == nil {
		return
	}
	delete(t.subs, ch)
	if len(t.subs) == 0 {
		delete(s.topics, topic)
		// An error leaves the server subscribed, which costs only the
		// messages that dispatch then drops.
		ctx, cancel := context.WithTimeout(context.Background(), redisIOTimeout)
		_ = s.ps.Unsubscribe(ctx, topic)
		cancel()
	}
}

// dispatch hands the shared connection's messages to the subscribers. The
// go-redis channel reconnects and subscribes again after an outage.
func (s *redisStore) dispatch(msgs <-chan any) {
	defer close(s.done)
	for msg := range msgs {
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			s.mu.Lock()
			if t := s.topics[m.Channel]; t != nil && !t.confirmed {
				t.confirmed = true
				close(t.ready)
			}
			s.mu.Unlock()
		case *redis.Message:
			s.mu.Lock()
			if t := s.topics[m.Channel]; t != nil {
				for ch := range t.subs {
					select {
					case ch <- struct{}{}:
					default:
					}
				}
			}
			s.mu.Unlock()
		}
	}
}

func (s *redisStore) Close() error {
	return errors.Join(s.ps.Close(), s.rdb.Close())
}
