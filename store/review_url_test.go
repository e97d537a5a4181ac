package store_test

import (
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/store"
)

// TestReviewMisplacedPasswordNeverEchoed: a password pasted into
// STORE_URL unescaped, containing "/", "?" or "#" (base64 passwords hold
// "/"), makes url.Parse put the rest of it into the path, query or
// fragment. Neither Open's error nor Redacted (what the services log) may
// then show that rest.
func TestReviewMisplacedPasswordNeverEchoed(t *testing.T) {
	const secret = "Zq9Xsecret"
	for _, raw := range []string{
		"redis://:123/" + secret + "@redis.internal:6379/0",
		"redis://default:123/" + secret + "@redis.internal:6379",
		"redis://:123?" + secret + "@redis.internal:6379",
		"redis://default:123?" + secret + "=1@redis.internal:6379",
		"redis://:123#" + secret + "@redis.internal:6379",
		"rediss://u:9/" + secret + "/x@redis.internal",
		"redis://redis.internal:6379/0?client_name=" + secret,
	} {
		st, err := store.Open(raw)
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("Open(%q): the error shows the password: %v", raw, err)
		}
		if err != nil && st != nil {
			// A typed nil in a non-nil interface: a caller's "st != nil"
			// check passes and Close panics.
			t.Errorf("Open(%q) failed but returned a non-nil Store %#v", raw, st)
		} else if st != nil {
			st.Close()
		}
		if r := store.Redacted(raw); strings.Contains(r, secret) {
			t.Errorf("Redacted(%q) = %q shows the password", raw, r)
		}
	}
	// What is safe to show still shows.
	for raw, want := range map[string]string{
		"redis://:pw@redis.internal:6379/2":             "redis://:xxxxx@redis.internal:6379/2",
		"rediss://user:pw@redis.internal:6380/0":        "rediss://user:xxxxx@redis.internal:6380/0",
		"redis://redis.internal:6379":                   "redis://redis.internal:6379",
		"redis://redis.internal:6379/0?dial_timeout=1s": "redis://redis.internal:6379/0?…",
		"": "in-process",
	} {
		if got := store.Redacted(raw); got != want {
			t.Errorf("Redacted(%q) = %q, want %q", raw, got, want)
		}
	}
}
