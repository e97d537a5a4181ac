package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/introspection"
)

func TestParseClaimPath(t *testing.T) {
	for _, tc := range []struct {
		text string
		segs []string
		keys bool
		err  string // "" for a path that parses
	}{
		{text: "scope", segs: []string{"scope"}},
		{text: "realm_access.roles", segs: []string{"realm_access", "roles"}},
		{text: "resource_access.todo-api.roles", segs: []string{"resource_access", "todo-api", "roles"}},
		{text: `resource_access.my\.client.roles`, segs: []string{"resource_access", "my.client", "roles"}},
		{text: `https://todo\.example\.com/roles`, segs: []string{"https://todo.example.com/roles"}},
		{text: "cognito:groups", segs: []string{"cognito:groups"}},
		{text: "urn:zitadel:iam:org:project:roles.*", segs: []string{"urn:zitadel:iam:org:project:roles"}, keys: true},
		{text: `a.\*`, segs: []string{"a", "*"}},
		{text: `a\\b`, segs: []string{`a\b`}},
		{text: `a\\.b`, segs: []string{`a\`, "b"}},
		{text: "https://example.com", segs: []string{"https://example.com"}, err: "splits a URL-named claim"},
		{text: "", err: "empty claim path"},
		{text: ".a", err: "empty name"},
		{text: "a.", err: "empty name"},
		{text: "a..b", err: "empty name"},
		{text: `a\`, err: "lone backslash"},
		{text: `a\b`, err: "unknown escape"},
		{text: "*", err: "names no claim"},
		{text: "a.*.b", err: "may only end a path"},
		{text: "a.*.*", err: "may only end a path"},
		{text: "a.b.c.d.e.f.g.h.i", err: "deeper than 8"},
		{text: "a.b.c.d.e.f.g.h", segs: []string{"a", "b", "c", "d", "e", "f", "g", "h"}},
		{text: strings.Repeat("a", maxPathBytes+1), err: "longer than"},
	} {
		p, err := parseClaimPath(tc.text)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one saying %q", tc.text, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.text, err)
		case !slices.Equal(p.segs, tc.segs) || p.keys != tc.keys:
			t.Errorf("%q: segs %q keys %v, want %q %v", tc.text, p.segs, p.keys, tc.segs, tc.keys)
		}
	}
}

// mustPaths parses texts or fails.
func mustPaths(tb testing.TB, texts ...string) []claimPath {
	tb.Helper()
	var out []claimPath
	for _, s := range texts {
		p, err := parseClaimPath(s)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func decodeClaims(tb testing.TB, s string) map[string]any {
	tb.Helper()
	m, err := decodeObject([]byte(s))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestCollect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		claims string
		paths  []string
		want   []string
	}{
		{"scope string split at spaces", `{"scope":"a  b\tc a"}`, []string{"scope"}, []string{"a", "b", "c"}},
		{"array items whole", `{"roles":["Todo Admin","x"]}`, []string{"roles"}, []string{"Todo Admin", "x"}},
		{"array non-strings ignored", `{"roles":["a",1,null,{"b":1},["c"],true,""]}`, []string{"roles"}, []string{"a"}},
		{"merged in order without duplicates", `{"scope":"a b","scp":["b","c"]}`, []string{"scope", "scp"}, []string{"a", "b", "c"}},
		{"nested", `{"realm_access":{"roles":["r1"]},"resource_access":{"todo-api":{"roles":["r2"]}}}`,
			[]string{"realm_access.roles", "resource_access.todo-api.roles"}, []string{"r1", "r2"}},
		{"escaped dot reads the dotted member only", `{"ra":{"my.client":{"roles":["good"]},"my":{"client":{"roles":["bad"]}}}}`,
			[]string{`ra.my\.client.roles`}, []string{"good"}},
		{"a path is not read as a dotted top-level claim", `{"realm_access.roles":["bad"]}`, []string{"realm_access.roles"}, nil},
		{"keys of an object, sorted", `{"z":{"b":{},"a":1,"c":null}}`, []string{"z.*"}, []string{"a", "b", "c"}},
		{"keys of a non-object: none", `{"z":["a"]}`, []string{"z.*"}, nil},
		{"object without *: none", `{"realm_access":{"roles":["r"]}}`, []string{"realm_access"}, nil},
		{"through a non-object: none", `{"a":"b"}`, []string{"a.b"}, nil},
		{"number: none", `{"scope":12}`, []string{"scope"}, nil},
		{"absent: nil", `{}`, []string{"scope", "scp"}, nil},
	} {
		got, err := collect(decodeClaims(t, tc.claims), mustPaths(t, tc.paths...))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestCollectBound: a token may carry MaxClaimValues distinct values per
// list, any number of duplicates, and no more; past it the token is
// refused, not judged on a cut list.
func TestCollectBound(t *testing.T) {
	values := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = fmt.Sprint("v", i)
		}
		return out
	}
	paths := mustPaths(t, "roles", "more", "obj.*")
	if got, err := collect(map[string]any{"roles": values(MaxClaimValues)}, paths); err != nil || len(got) != MaxClaimValues {
		t.Fatalf("at the bound: %d values, %v", len(got), err)
	}
	dups := slices.Repeat([]any{"a", "b"}, 5000)
	if got, err := collect(map[string]any{"roles": dups}, paths); err != nil || len(got) != 2 {
		t.Fatalf("duplicates: %q, %v", got, err)
	}
	// Over the bound across two claims, after the set switched to a map.
	over := map[string]any{"roles": values(MaxClaimValues), "more": []any{"new"}}
	if _, err := collect(over, paths); !errors.Is(err, errTooManyValues) {
		t.Fatalf("over the bound: %v", err)
	}
	obj := map[string]any{}
	for i := range MaxClaimValues + 1 {
		obj[fmt.Sprint("k", i)] = true
	}
	if _, err := collect(map[string]any{"obj": obj}, paths); !errors.Is(err, errTooManyValues) {
		t.Fatalf("object over the bound: %v", err)
	}
	var m claimMapping
	m.roles = paths
	if _, _, err := m.grants(over); err == nil || Reason(err) != ReasonBadToken || !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("grants over the bound: %v", err)
	}
}

// TestCheckAudience: the first listed claim the token carries with a
// value decides; empty values count as absent; a deciding claim of the
// wrong form refuses.
func TestCheckAudience(t *testing.T) {
	m := claimMapping{audience: mustPaths(t, "aud", "client_id")}
	want := []string{"api", "web"}
	for _, tc := range []struct {
		name, claims string
		ok           bool
	}{
		{"aud string", `{"aud":"api"}`, true},
		{"aud array", `{"aud":["x","api"]}`, true},
		{"aud decides against, client_id never asked", `{"aud":["x"],"client_id":"web"}`, false},
		{"empty aud array: client_id decides", `{"aud":[],"client_id":"web"}`, true},
		{"empty aud string: client_id decides", `{"aud":"","client_id":"web"}`, true},
		{"null aud: client_id decides", `{"aud":null,"client_id":"web"}`, true},
		{"none of them", `{"azp":"web"}`, false},
		{"only empty ones", `{"aud":[],"client_id":""}`, false},
		{"wrong type decides against", `{"aud":12,"client_id":"web"}`, false},
		{"array with a non-string decides against", `{"aud":["api",1],"client_id":"web"}`, false},
		{"object decides against", `{"aud":{"api":true},"client_id":"web"}`, false},
		{"case matters", `{"aud":"API"}`, false},
	} {
		err := m.checkAudience(decodeClaims(t, tc.claims), want)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestClaimMappingConfig: New refuses configurations that cannot mean
// anything, each problem named, all at once.
func TestClaimMappingConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"bad paths", Config{ScopeClaims: []string{"a..b"}, RoleClaims: []string{"x.*.y"}, AudienceClaims: []string{`c\d`}},
			[]string{"ScopeClaims: claim path \"a..b\"", "RoleClaims: claim path \"x.*.y\"", "AudienceClaims: claim path"}},
		{"same claim as scope and role", Config{RoleClaims: []string{"scp"}}, []string{`"scp" is in both ScopeClaims and RoleClaims`}},
		{"same claim, explicit scopes", Config{ScopeClaims: []string{"permissions"}, RoleClaims: []string{"roles", "permissions"}}, []string{`"permissions" is in both`}},
		{"named twice", Config{RoleClaims: []string{"roles", "roles"}}, []string{`RoleClaims names claim path "roles" twice`}},
		{"keys for an audience", Config{AudienceClaims: []string{"aud.*"}}, []string{"never a member name"}},
		{"sub as audience", Config{AudienceClaims: []string{"sub"}}, []string{`AudienceClaims: claim "sub" cannot hold one`}},
		{"exp as role", Config{RoleClaims: []string{"exp"}}, []string{`RoleClaims: claim "exp"`}},
		{"aud as scope", Config{ScopeClaims: []string{"aud"}}, []string{`ScopeClaims: claim "aud"`}},
		{"unescaped URL claim", Config{RoleClaims: []string{"https://todo.example.com/roles"}}, []string{`escape each dot`}},
		{"too many", Config{RoleClaims: strings.Fields(strings.Repeat("r ", maxClaimPaths+1))}, []string{"at most 16"}},
		{"empty entry", Config{ScopeClaims: []string{"scope", ""}}, []string{"empty claim path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Issuer, cfg.Audiences, cfg.JWKSURL = "https://i", []string{"a"}, "https://i/jwks"
			cfg.setDefaults()
			err := cfg.validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// AudienceClaims without Audiences means nothing in introspection mode
	// (JWT modes need Audiences anyway).
	cfg := Config{Issuer: "https://i", Mode: ModeIntrospection, Introspector: nopIntrospector{}, AudienceClaims: []string{"client_id"}}
	cfg.setDefaults()
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "AudienceClaims needs Audiences") {
		t.Fatalf("introspection AudienceClaims without Audiences: %v", err)
	}
	// The defaults, spelled out, are the defaults: golang-jwt keeps aud.
	cfg = Config{Issuer: "https://i", Audiences: []string{"a"}, AudienceClaims: []string{"aud"}, ScopeClaims: DefaultScopeClaims()}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil || !cfg.claims().audienceIsAud {
		t.Fatalf("explicit defaults: %v, audienceIsAud %v", err, cfg.claims().audienceIsAud)
	}
}

// FuzzClaimPaths: a claim path from the configuration and claims from a
// token, both arbitrary. Parsing never panics, a parsed path prints back to
// one that parses the same, and what collect reads is bounded, distinct and
// never empty, and found where the path says.
func FuzzClaimPaths(f *testing.F) {
	for _, s := range []struct{ path, claims string }{
		{"scope", `{"scope":"a b c"}`},
		{"realm_access.roles", `{"realm_access":{"roles":["a","b"]}}`},
		{`resource_access.my\.client.roles`, `{"resource_access":{"my.client":{"roles":["r"]}}}`},
		{`https://todo\.example\.com/roles`, `{"https://todo.example.com/roles":["x"]}`},
		{"urn:z:roles.*", `{"urn:z:roles":{"a":{"1":"d"},"b":{}}}`},
		{`a.\*.\\`, `{"a":{"*":{"\\":"v"}}}`},
		{"a..b", `{}`},
		{"x.*.y", `null`},
		{"roles", `{"roles":["a","a",1,null,""]}`},
		{"aud", `{"aud":["x","api"]}`},
		{"client_id", `{"client_id":"api"}`},
	} {
		f.Add(s.path, s.claims)
	}
	f.Fuzz(func(t *testing.T, text, claimsJSON string) {
		p, err := parseClaimPath(text)
		if err != nil {
			return
		}
		if len(p.segs) == 0 || len(p.segs) > maxPathSegments || slices.Contains(p.segs, "") {
			t.Fatalf("%q parsed to %q", text, p.segs)
		}
		again, err := parseClaimPath(escapePath(p))
		if err != nil || !samePath(p, again) {
			t.Fatalf("%q → %q → %q, %v", text, escapePath(p), again.segs, err)
		}
		claims, err := decodeObject([]byte(claimsJSON))
		if err != nil {
			return
		}
		if !p.keys {
			// The same claims judged as an audience: accepted only when the
			// value there is "api", or an array of strings holding it.
			m := claimMapping{audience: []claimPath{p}}
			if m.checkAudience(claims, []string{"api"}) == nil {
				v, _ := p.lookup(claims)
				arr, isArr := v.([]any)
				if v != "api" && !(isArr && slices.Contains(arr, any("api"))) {
					t.Fatalf("audience %v accepted for api", v)
				}
			}
		}
		got, err := collect(claims, []claimPath{p})
		if err != nil {
			if !errors.Is(err, errTooManyValues) {
				t.Fatalf("collect: %v", err)
			}
			return
		}
		if len(got) > MaxClaimValues {
			t.Fatalf("%d values", len(got))
		}
		seen := map[string]bool{}
		for _, v := range got {
			if v == "" || seen[v] {
				t.Fatalf("empty or repeated value in %q", got)
			}
			seen[v] = true
		}
		// Every value is found where the path says, by a walk that does
		// not share lookup's code.
		if len(got) > 0 {
			v := any(claims)
			for _, s := range p.segs {
				v = v.(map[string]any)[s]
			}
			raw, _ := json.Marshal(v)
			for _, g := range got {
				want, _ := json.Marshal(g)
				if !strings.Contains(string(raw), strings.Trim(string(want), `"`)) {
					t.Fatalf("value %q not in %s", g, raw)
				}
			}
		}
	})
}

// escapePath writes p's segments back as a claim path.
func escapePath(p claimPath) string {
	r := strings.NewReplacer(`\`, `\\`, ".", `\.`, "*", `\*`)
	parts := make([]string, 0, len(p.segs)+1)
	for _, s := range p.segs {
		parts = append(parts, r.Replace(s))
	}
	if p.keys {
		parts = append(parts, keysSegment)
	}
	return strings.Join(parts, ".")
}

// nopIntrospector answers nothing; the tests it serves never ask it.
type nopIntrospector struct{}

func (nopIntrospector) Introspect(context.Context, string) (*introspection.Response, error) {
	return nil, errors.New("not asked")
}
