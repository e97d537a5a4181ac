package envflag

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		check   func(t *testing.T, addr string, skew time.Duration, on bool)
	}{
		{name: "defaults", env: map[string]string{"ISSUER": "http://x"}, check: func(t *testing.T, addr string, skew time.Duration, on bool) {
			if addr != ":8080" || skew != time.Minute || on {
				t.Fatalf("got %q %v %v", addr, skew, on)
			}
		}},
		{name: "env", env: map[string]string{"ISSUER": "http://x", "LISTEN_ADDR": ":1", "CLOCK_SKEW": "5", "FLAG_ON": "true"}, check: func(t *testing.T, addr string, skew time.Duration, on bool) {
			if addr != ":1" || skew != 5*time.Second || !on {
				t.Fatalf("got %q %v %v", addr, skew, on)
			}
		}},
		{name: "flag wins", env: map[string]string{"ISSUER": "http://x", "LISTEN_ADDR": ":1"}, args: []string{"-listen-addr", ":2"}, check: func(t *testing.T, addr string, _ time.Duration, _ bool) {
			if addr != ":2" {
				t.Fatalf("got %q", addr)
			}
		}},
		{name: "missing required", wantErr: "ISSUER is required"},
		{name: "bad duration", env: map[string]string{"ISSUER": "x", "CLOCK_SKEW": "soon"}, wantErr: "CLOCK_SKEW: invalid value"},
		{name: "negative duration", env: map[string]string{"ISSUER": "x", "CLOCK_SKEW": "-5s"}, wantErr: "CLOCK_SKEW: invalid value"},
		{name: "bad bool", env: map[string]string{"ISSUER": "x", "FLAG_ON": "yes please"}, wantErr: "FLAG_ON: invalid value"},
		{name: "stray argument", env: map[string]string{"ISSUER": "x"}, args: []string{"extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New("test", func(k string) string { return tt.env[k] }, io.Discard)
			addr := s.String("LISTEN_ADDR", ":8080", "address")
			s.Required("ISSUER", "issuer")
			skew := s.Duration("CLOCK_SKEW", time.Minute, "skew")
			on := s.Bool("FLAG_ON", false, "on")
			err := s.Parse(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, *addr, *skew, *on)
		})
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	s := New("todo-api", func(string) string { return "" }, &out)
	s.String("LISTEN_ADDR", ":8080", "address to listen on")
	if err := s.Parse([]string{"--help"}); !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), "LISTEN_ADDR") || !strings.Contains(out.String(), ":8080") {
		t.Fatalf("usage lacks the setting: %s", out.String())
	}
}

func TestList(t *testing.T) {
	got := List(" a, ,b ,")
	if len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("List = %q", got)
	}
}

func TestLookupEmptyIsSet(t *testing.T) {
	env := map[string]string{"SCOPES": ""}
	s := NewLookup("test", func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
	scopes := s.String("SCOPES", "todos:read", "scopes")
	other := s.String("OTHER", "default", "other")
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if *scopes != "" || *other != "default" || !s.Set("SCOPES") || s.Set("OTHER") {
		t.Fatalf("scopes %q other %q", *scopes, *other)
	}
}
