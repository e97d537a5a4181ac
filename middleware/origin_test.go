package middleware

import (
	"net/url"
	"strings"
	"testing"
)

func TestNormalizeOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		refusal  string // part of the error; empty: accepted
	}{
		{in: "https://app.example.com", want: "https://app.example.com"},
		{in: "http://localhost:3000/", want: "http://localhost:3000"},
		{in: "HTTPS://App.Example.COM", want: "https://app.example.com"},
		{in: "https://app.example:443", want: "https://app.example"},
		{in: "https://app.example:443/", want: "https://app.example"},
		{in: "http://app.example:80", want: "http://app.example"},
		{in: "http://app.example:443", want: "http://app.example:443"},
		{in: "https://app.example:80", want: "https://app.example:80"},
		{in: "https://app.example:08443", want: "https://app.example:8443"},
		{in: "http://app.example:", want: "http://app.example"},
		{in: "  http://127.0.0.1:8080 ", want: "http://127.0.0.1:8080"},
		{in: "http://[::1]:3000", want: "http://[::1]:3000"},
		{in: "http://[0:0:0:0:0:0:0:1]", want: "http://[::1]"},
		{in: "http://[2001:DB8::1]:443", want: "http://[2001:db8::1]:443"},
		{in: "https://xn--bcher-kva.example", want: "https://xn--bcher-kva.example"},
		{in: "http://my_host.internal", want: "http://my_host.internal"},
		{in: "https://app.example.", want: "https://app.example."},

		{in: "", refusal: "empty"},
		{in: "   ", refusal: "empty"},
		{in: "null", refusal: `"null"`},
		{in: "NULL", refusal: `"null"`},
		{in: "*", refusal: "wildcard"},
		{in: "https://*.example.com", refusal: "wildcard"},
		{in: "app.example.com", refusal: "no scheme"},
		{in: "//app.example.com", refusal: "no scheme"},
		{in: "ftp://app.example.com", refusal: "http or https"},
		{in: "javascript://app.example.com", refusal: "http or https"},
		{in: "file:///etc/passwd", refusal: "http or https"},
		{in: "https://app.example.com/app", refusal: "path"},
		{in: "https://app.example.com//", refusal: "path"},
		{in: `https://app.example.com\`, refusal: "path"},
		{in: "https://app.example.com/?a=1", refusal: "query"},
		{in: "https://app.example.com?", refusal: "query"},
		{in: "https://app.example.com#x", refusal: "fragment"},
		{in: "https://app.example.com#", refusal: "fragment"},
		{in: "https://user@app.example.com", refusal: "userinfo"},
		{in: "https://user:pw@app.example.com", refusal: "userinfo"},
		{in: "https://", refusal: "no host"},
		{in: "https://:443", refusal: "no host"},
		{in: "https://app.example.com:0", refusal: "port"},
		{in: "https://app.example.com:65536", refusal: "port"},
		{in: "https://app.example.com:123456", refusal: "port"},
		{in: "https://app.example.com:-1", refusal: "port"},
		{in: "https://app.example.com:1:2", refusal: "port"},
		{in: "https://app.example.com:https", refusal: "port"},
		{in: "https://app example.com", refusal: "spaces"},
		{in: "https://app.example.com\r\n", want: "https://app.example.com"}, // TrimSpace
		{in: "https://app\x00.example.com", refusal: "control"},
		{in: "https://bücher.example", refusal: "xn--"},
		{in: "https://%61pp.example", refusal: "characters other than"},
		{in: "https://a..example", refusal: "empty label"},
		{in: "https://.", refusal: "empty label"},
		{in: "http://127.1", refusal: "dotted-quad"},
		{in: "http://0x7f.0.0.1", refusal: "dotted-quad"},
		{in: "http://127.000.000.001", refusal: "dotted-quad"},
		{in: "http://999.1.1.1", refusal: "dotted-quad"},
		{in: "http://app.123", refusal: "dotted-quad"},
		{in: "http://[::1", refusal: "closing ]"},
		{in: "http://[fe80::1%25eth0]", refusal: "not an IPv6"},
		{in: "http://[::ffff:127.0.0.1]", refusal: "not an IPv6"},
		{in: "http://[127.0.0.1]", refusal: "not an IPv6"},
		{in: "http://[::1]x", refusal: "other than a port"},
		{in: "https://" + strings.Repeat("a", 400) + ".example", refusal: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeOrigin(tt.in)
			if tt.refusal != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refusal) {
					t.Fatalf("NormalizeOrigin(%q) = %q, %v; want an error saying %q", tt.in, got, err, tt.refusal)
				}
				if got != "" {
					t.Errorf("refused, yet returned %q", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeOrigin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestNewNormalizesAllowedOrigins: the cookie check compares the
// request's Origin exactly, against the normalised list.
func TestNewNormalizesAllowedOrigins(t *testing.T) {
	t.Parallel()
	cfg := Config{Issuer: "https://issuer.example", Audiences: []string{"api"}, HMACSecret: []byte(strings.Repeat("k", 32)),
		AllowedOrigins: []string{"HTTPS://App.Example:443/", "https://app.example", "http://localhost:3000/"}}
	a, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a.cfg.AllowedOrigins, " "); got != "https://app.example http://localhost:3000" {
		t.Errorf("AllowedOrigins %q", got)
	}
	cfg.AllowedOrigins = []string{"https://app.example/app", "*"}
	_, err = New(t.Context(), cfg)
	if err == nil || strings.Count(err.Error(), "middleware: AllowedOrigins: ") != 2 {
		t.Errorf("New with two bad origins: %v; want both named", err)
	}
}

// FuzzNormalizeOrigin: the normaliser reads settings people type. Whatever
// it accepts must be a bare http(s) origin in canonical form, which a
// second pass leaves alone and net/url reads the same way.
func FuzzNormalizeOrigin(f *testing.F) {
	for _, s := range []string{
		"https://app.example.com", "http://localhost:3000/", "HTTPS://A.EXAMPLE:443", "http://[::1]:80",
		"null", "*", "https://a.example/p?q#f", "https://u:p@a.example", "http://127.1", "http://a:0099",
		"http://[fe80::1%25eth0]", "https://bücher.example", "http://a.example:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeOrigin(in)
		if err != nil {
			if out != "" {
				t.Fatalf("refused %q with %v, yet returned %q", in, err, out)
			}
			return
		}
		again, err := NormalizeOrigin(out)
		if err != nil || again != out {
			t.Fatalf("%q -> %q -> %q, %v: not stable", in, out, again, err)
		}
		if out != strings.ToLower(out) || len(out) > maxOriginBytes {
			t.Fatalf("%q -> %q: not lower case or too long", in, out)
		}
		u, err := url.Parse(out)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.Scheme+"://"+u.Host != out {
			t.Fatalf("%q -> %q, which net/url reads as %#v (%v)", in, out, u, err)
		}
		if (u.Scheme == "http" && u.Port() == "80") || (u.Scheme == "https" && u.Port() == "443") {
			t.Fatalf("%q -> %q keeps the default port", in, out)
		}
	})
}
