package todos_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/todos"
)

func TestParseCursor(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tt := range []struct{ name, cursor string }{
		{"not_base64", "***"},
		{"padded_base64", enc(`{"o":0,"t":0,"i":"AAAAAAAAAAAAAAAAAAAAAAAAAA"}`) + "=="},
		{"not_json", enc("hello")},
		{"unknown_field", enc(`{"o":0,"t":0,"i":"AAAAAAAAAAAAAAAAAAAAAAAAAA","x":1}`)},
		{"bad_id", enc(`{"o":0,"t":0,"i":"' OR 1=1"}`)},
		{"no_id", enc(`{"o":0,"t":0}`)},
		{"order_out_of_range", enc(`{"o":3000000000,"t":0,"i":"AAAAAAAAAAAAAAAAAAAAAAAAAA"}`)},
		{"trailing_data", enc(`{"o":0,"t":0,"i":"AAAAAAAAAAAAAAAAAAAAAAAAAA"}{}`)},
		{"too_long", strings.Repeat("A", 300)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := todos.ParseCursor(tt.cursor); !errors.Is(err, todos.ErrBadCursor) {
				t.Errorf("ParseCursor(%q) = %v, want ErrBadCursor", tt.cursor, err)
			}
		})
	}
	t.Run("empty_is_the_start", func(t *testing.T) {
		c, err := todos.ParseCursor("")
		if err != nil || !c.IsZero() || c.String() != "" {
			t.Errorf("ParseCursor(\"\") = %v, %v", c, err)
		}
	})
	t.Run("round_trip", func(t *testing.T) {
		s := enc(`{"o":-5,"t":1700000000123456,"i":"AAAAAAAAAAAAAAAAAAAAAAAAAA"}`)
		c, err := todos.ParseCursor(s)
		if err != nil || c.String() != s {
			t.Errorf("ParseCursor(%s) = %v, %v; String %s", s, c, err, c.String())
		}
	})
}
