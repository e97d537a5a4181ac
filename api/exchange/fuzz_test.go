package exchange

import (
	"bytes"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// FuzzSanitizeReturnTo: whatever comes in, what goes out is "/" or the
// input unchanged, and a local path that no browser reads as another host.
func FuzzSanitizeReturnTo(f *testing.F) {
	for _, s := range []string{
		"/", "/ok?x=1", "//evil.example", "/\\evil.example", "/\t/evil.example", "/%09/evil",
		"https://evil.example", "\\\\evil", "/a\r\nb", "/\x00", "/caf\u00e9", strings.Repeat("/a", 600),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := sanitizeReturnTo(in)
		if got != "/" && got != in {
			t.Fatalf("sanitizeReturnTo(%q) = %q: neither / nor the input", in, got)
		}
		if got == "" || got[0] != '/' || strings.Contains(got, "//") || strings.Contains(got, `\`) || len(got) > maxReturnToLen {
			t.Fatalf("sanitizeReturnTo(%q) = %q: not a local path", in, got)
		}
		for i := 0; i < len(got); i++ {
			if got[i] <= 0x20 || got[i] >= 0x7f {
				t.Fatalf("sanitizeReturnTo(%q) = %q: byte %#x at %d", in, got, got[i], i)
			}
		}
	})
}

// FuzzSealerOpen: open never panics on outside input, a sealed value opens
// under its own cookie name only, and any change to it is refused.
func FuzzSealerOpen(f *testing.F) {
	s, err := newSealer(testSessionSecret)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("__Host-tg_session", "__Host-tg_tx_0123456789abcdef", []byte(`{"sub":"alice"}`), "", uint(0))
	f.Add("__Secure-refresh_token", "refresh_token", []byte(`{"rt":"ory_rt_x","exp":1700000000,"sub":"alice"}`), "", uint(3))
	f.Add("a", "b", []byte{}, "AQ", uint(7))
	f.Add("x", "x", []byte("x"), strings.Repeat("A", maxSealedLen+1), uint(100))
	f.Fuzz(func(t *testing.T, name, other string, plain []byte, raw string, flip uint) {
		// Outside input: a cookie value sent by anyone.
		if b, err := s.open(name, raw); err == nil && raw != "" {
			// Only a value we sealed opens; finding one by chance would
			// mean the cipher is broken.
			t.Fatalf("open(%q, %q) = %q: an unsealed value opened", name, raw, b)
		}

		sealed := s.seal(name, plain)
		got, err := s.open(name, sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("open(seal(%q)) = %q, %v", plain, got, err)
		}
		if other != name {
			if _, err := s.open(other, sealed); err == nil {
				t.Fatalf("a value sealed for %q opened as %q", name, other)
			}
		}
		// Change one character of the value.
		i := int(flip % uint(len(sealed)))
		c := sealed[i] + 1
		if c > 'z' {
			c = '-'
		}
		tampered := sealed[:i] + string(c) + sealed[i+1:]
		if _, err := s.open(name, tampered); err == nil {
			t.Fatalf("tampered value %q opened", tampered)
		}
	})
}

// FuzzStepUpParams: whatever a /login query holds, the acr_values and
// max_age passed on are "" or well formed: values of printable ASCII
// without quotes or backslashes, single spaces between at most ten of
// them, and a decimal max_age within bounds.
func FuzzStepUpParams(f *testing.F) {
	for _, s := range []string{
		"acr_values=urn%3Atollgate%3Aacr%3A2fa&max_age=300", "acr_values=a+b&acr_values=c", "max_age=-1",
		"max_age=007", "acr_values=%22x%22", "acr_values=a%09b", "acr_values=%E2%80%A8", "max_age=99999999999",
		"acr_values=" + strings.Repeat("v+", 12), "%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		acr, maxAge, err := stepUpParams(q)
		if err != nil {
			if acr != "" || maxAge != "" {
				t.Fatalf("%q: error with values %q %q", raw, acr, maxAge)
			}
			return
		}
		if acr != "" {
			values := strings.Split(acr, " ")
			if len(values) > maxACRValues || len(acr) > maxACRValuesLen {
				t.Fatalf("%q: acr_values %q too long", raw, acr)
			}
			for _, v := range values {
				if !isACRValue(v) {
					t.Fatalf("%q: acr_values %q holds %q", raw, acr, v)
				}
			}
		}
		if maxAge != "" {
			n, err := strconv.ParseUint(maxAge, 10, 64)
			if err != nil || n > maxMaxAge || strconv.FormatUint(n, 10) != maxAge {
				t.Fatalf("%q: max_age %q", raw, maxAge)
			}
		}
	})
}
