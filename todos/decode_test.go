package todos

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzDecodeTodo feeds arbitrary bodies to the decoder of POST and PATCH
// bodies: it must never panic, must answer every refusal with a 400 or a
// 422 problem, and must never accept a title that breaks the rules.
func FuzzDecodeTodo(f *testing.F) {
	for _, s := range []string{
		`{"title":"Buy milk"}`, `{"title":"a","completed":true,"order":-3}`, `{}`, `{"title":null}`,
		`{"title":""}`, `{"title":" "}`, `{"title":"a\nb"}`, `{"title":"a\u0000"}`, `{"title":"\ud800"}`,
		"{\"title\":\"\xff\"}", `{"title":"a","title":"b"}`, `{"Title":"a"}`, `{"title":5}`, `{"order":1e400}`,
		`[]`, `"x"`, `null`, `{"title":"a"} {}`, `{"title":"` + strings.Repeat("é", 501) + `"}`, `{"id":"x"}`,
	} {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	check := func(t *testing.T, title *string, err error) {
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || (re.status != http.StatusBadRequest && re.status != http.StatusUnprocessableEntity) || re.detail == "" {
				t.Fatalf("refused with %v", err)
			}
			if re.status == http.StatusUnprocessableEntity && len(re.fields) == 0 {
				t.Fatalf("422 without fields: %v", err)
			}
			return
		}
		if title == nil {
			return
		}
		s := *title
		if !utf8.ValidString(s) || strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > MaxTitleLength ||
			strings.ContainsRune(s, utf8.RuneError) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			t.Fatalf("accepted title %q", s)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := decodeBody[createRequest](ctx, body)
		if err == nil && c.Title == nil {
			t.Fatal("accepted a new todo without a title")
		}
		check(t, c.Title, err)
		if err == nil && orderProblem(c.newTodo().Order) != "" {
			t.Fatalf("accepted order %d", c.newTodo().Order)
		}
		p, err := decodeBody[patchRequest](ctx, body)
		check(t, p.Title, err)
	})
}

func TestParseETag(t *testing.T) {
	const id = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	tests := []struct {
		tag  string
		want int
		ok   bool
	}{
		{`"` + id + `-1"`, 1, true},
		{`"` + id + `-42"`, 42, true},
		{`W/"` + id + `-1"`, 0, false},
		{`"` + id + `-01"`, 0, false},
		{`"` + id + `-0"`, 0, false},
		{`"` + id + `--1"`, 0, false},
		{`"` + id + `-1`, 0, false},
		{`"BBBBBBBBBBBBBBBBBBBBBBBBBB-1"`, 0, false},
		{`"` + id + `-99999999999999999999"`, 0, false},
		{`*`, 0, false},
		{``, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseETag(tt.tag, id)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseETag(%s) = %d, %t; want %d, %t", tt.tag, got, ok, tt.want, tt.ok)
		}
	}
}
