// Package store is the little shared state Tollgate's services need when
// several instances serve one site: short-lived values, locks and wake-ups.
// Open("") gives an in-process store (one instance, nothing to run); Open
// with a redis:// or rediss:// URL gives one every instance shares (Redis or
// Valkey).
//
// Keys and topics are the caller's: the store adds no prefix, so callers
// namespace them (for example "tollgate:exchange:…"). Values are opaque
// bytes; the store neither encrypts nor logs them, so callers seal what is
// secret before it reaches Set.
//
// Every method may fail with an error wrapping ErrUnavailable when the store
// cannot answer (Redis down, timed out, refused). Callers decide what that
// means for them; the Redis store reconnects by itself, so a later call
// succeeds once Redis is back.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Store is shared short-lived state. Every ttl must be positive: a value
// that never expires is refused (ErrInvalid), so nothing accumulates. Redis
// keeps a value for whole milliseconds: a ttl between two is rounded up, so
// a value never expires before the caller asked.
type Store interface {
	// Get returns key's value; ok is false when it is absent or expired.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Set stores value under key for ttl, replacing any value and TTL.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// SetNX stores value under key for ttl only when key is absent
	// (Redis SET NX PX) and reports whether it did: of any number of
	// concurrent callers on any instance, exactly one wins.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// CompareAndDelete deletes key only while it still holds value, and
	// reports whether it did: a lock's holder releases it without deleting
	// the lock of whoever took over after it expired.
	CompareAndDelete(ctx context.Context, key string, value []byte) (bool, error)
	// Delete removes key; an absent key is no error.
	Delete(ctx context.Context, key string) error
	// Publish wakes the current subscribers of topic on every instance.
	// Delivery is at most once (Redis pub/sub): a subscriber must not
	// depend on it alone (see Subscribe).
	Publish(ctx context.Context, topic string) error
	// Subscribe returns once the subscription is in effect: a Publish
	// made after it returned is delivered, barring an outage. The way to
	// wait for a result without polling is: Subscribe, then check (Get),
	// then wait on C, then check again, with a timeout as a backstop for a
	// lost message. Close the subscription when done.
	Subscribe(ctx context.Context, topic string) (*Subscription, error)
	// Close releases connections and background work.
	Close() error
}

// Subscription is one Subscribe's wake-ups. C receives (without blocking
// the publisher; wake-ups coalesce) after each Publish of the topic.
type Subscription struct {
	C     <-chan struct{}
	close func()
}

// Close ends the subscription; it may be called more than once.
func (s *Subscription) Close() { s.close() }

var (
	// ErrUnavailable wraps every failure to reach the store.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrInvalid is a call the store refuses (a ttl that is not positive).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrFull is the in-process store refusing a new key when it holds
	// MaxEntries live ones: it evicts nothing, since evicting a lock or a
	// replay marker would let a second caller through.
	ErrFull = errors.New("store: full")
)

// Open returns the store named by rawURL, the STORE_URL setting: "" is the
// in-process store, redis://[user:password@]host[:port][/db] or rediss://…
// (TLS) a Redis or Valkey server (go-redis's URL syntax and query options,
// such as dial_timeout). Open does not contact the server: an unreachable
// one shows as ErrUnavailable from each call until it answers. Errors never
// contain the password.
func Open(rawURL string) (Store, error) {
	if rawURL == "" {
		return NewMemory(MemoryOptions{}), nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL, password included.
		return nil, errors.New("store: STORE_URL is not a URL (want redis://host:port/db or rediss://…)")
	}
	if u.Fragment != "" || strings.Contains(rawURL, "#") {
		// go-redis ignores a fragment, so a password holding "#" would be
		// cut short silently, and its rest logged with the URL.
		return nil, errors.New("store: STORE_URL contains \"#\": percent-encode a password's /, ?, # and @ (%2F, %3F, %23, %40)")
	}
	switch strings.ToLower(u.Scheme) {
	case "redis", "rediss":
		s, err := openRedis(u)
		if err != nil {
			return nil, err // not a typed nil in a non-nil Store
		}
		return s, nil
	default:
		return nil, fmt.Errorf("store: STORE_URL scheme %q is not supported: want redis:// or rediss:// (or unset for the in-process store)", u.Scheme)
	}
}

// Redacted is rawURL as it may be logged: the password replaced by xxxxx,
// or "in-process" for "". A path other than a database number, a query and
// a fragment show as "…": a password pasted with an unescaped "/", "?" or
// "#" (base64 passwords hold "/") ends up there, where url.URL.Redacted
// would show it.
func Redacted(rawURL string) string {
	if rawURL == "" {
		return "in-process"
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable STORE_URL)"
	}
	r := url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host}
	out := r.Redacted()
	switch db := strings.TrimPrefix(u.Path, "/"); {
	case u.Path == "":
	case db == "" || strings.Trim(db, "0123456789") == "" && len(db) <= 4:
		out += u.Path
	default:
		out += "/…"
	}
	if u.RawQuery != "" || u.ForceQuery {
		out += "?…"
	}
	if u.Fragment != "" || strings.Contains(rawURL, "#") {
		out += "#…"
	}
	return out
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: ttl %v is not positive", ErrInvalid, ttl)
	}
	return nil
}
