package metriclabel

import "testing"

func TestMethod(t *testing.T) {
	for in, want := range map[string]string{
		"GET": "GET", "DELETE": "DELETE", "OPTIONS": "OPTIONS",
		"get": "other", "X0Y": "other", "PROPFIND": "other", "": "other",
	} {
		if got := Method(in); got != want {
			t.Errorf("Method(%q) = %q, want %q", in, got, want)
		}
	}
}
