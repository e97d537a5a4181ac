package middleware

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Claim paths name where in a token's claims the audience, the scopes and
// the roles are read (Config.AudienceClaims, ScopeClaims, RoleClaims).
//
// A path is one or more claim names separated by dots, each name a member
// of the object the previous one names: "scope", "realm_access.roles",
// "resource_access.todo-api.roles". A dot that is part of a name is
// written `\.` and a backslash `\\`: "resource_access.my\.client.roles"
// reads the member "my.client"; Auth0's URL-named claims are written
// "https://todo\.example\.com/roles". That is Keycloak's own escape for
// dotted claim names, so the same text works in both places. The path is
// parsed once, in New; what a token carries never changes how it is read,
// so a token cannot redirect a path by adding a claim named like it.
//
// A path may end with the segment `*`: the member names of the object it
// reaches are the values (Zitadel puts each role as a member name of
// "urn:zitadel:iam:org:project:roles"). `\*` is a member named "*".

// Bounds on configured paths and on the work a token can cause.
const (
	// maxClaimPaths bounds each of AudienceClaims, ScopeClaims and
	// RoleClaims.
	maxClaimPaths = 16
	// maxPathSegments bounds the depth a path walks into the claims.
	maxPathSegments = 8
	// maxPathBytes bounds the text of a path.
	maxPathBytes = 512
	// MaxClaimValues bounds the distinct scopes, and the distinct roles, a
	// token may carry: more, and it is refused (401 invalid_token, reason
	// malformed_token) rather than judged on a cut list. Far beyond what
	// servers put in a token (Entra ID stops listing groups at 200).
	MaxClaimValues = 1024
)

// keysSegment ends a path whose values are the member names of an object.
const keysSegment = "*"

// claimPath is a parsed claim path.
type claimPath struct {
	text string   // as configured, for errors and logs
	segs []string // the member names, unescaped
	keys bool     // the values are the member names of the object reached
}

// parseClaimPath reads the text of a claim path; see the comment above.
func parseClaimPath(text string) (claimPath, error) {
	p := claimPath{text: text}
	switch {
	case text == "":
		return p, errors.New("empty claim path")
	case len(text) > maxPathBytes:
		return p, fmt.Errorf("claim path %.40q… is longer than %d bytes", text, maxPathBytes)
	}
	var seg strings.Builder
	escaped := false // seg holds an escape, so it is never the bare "*"
	end := func() error {
		s := seg.String()
		switch {
		case s == "":
			return fmt.Errorf("claim path %q has an empty name (a dot at the start or the end, or two in a row; write a dot inside a name as \\.)", text)
		case s == keysSegment && !escaped && !p.keys:
			p.keys = true
			seg.Reset()
			return nil
		case p.keys:
			return fmt.Errorf("claim path %q: %s may only end a path (write a member named * as \\*)", text, keysSegment)
		}
		p.segs = append(p.segs, s)
		seg.Reset()
		escaped = false
		return nil
	}
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case '\\':
			if i+1 == len(text) {
				return p, fmt.Errorf("claim path %q ends with a lone backslash", text)
			}
			i++
			switch n := text[i]; n {
			case '.', '\\', '*':
				seg.WriteByte(n)
				escaped = true
			default:
				return p, fmt.Errorf("claim path %q: unknown escape \\%c (only \\. \\\\ and \\* are escapes)", text, n)
			}
		case '.':
			if err := end(); err != nil {
				return p, err
			}
		default:
			seg.WriteByte(c)
		}
	}
	if err := end(); err != nil {
		return p, err
	}
	switch {
	case p.keys && len(p.segs) == 0:
		return p, fmt.Errorf("claim path %q names no claim before %s", text, keysSegment)
	case len(p.segs) > maxPathSegments:
		return p, fmt.Errorf("claim path %q is deeper than %d names", text, maxPathSegments)
	case strings.Contains(text, "://") && len(p.segs) > 1:
		// A URL-named claim (Auth0 asks for them) split at its dots reads
		// nothing, silently: say so now rather than answer 403 forever.
		return p, fmt.Errorf(`claim path %q splits a URL-named claim at its dots; escape each dot that belongs to the name (e.g. https://todo\.example\.com/roles)`, text)
	}
	return p, nil
}

// lookup returns the value the path names in claims.
func (p *claimPath) lookup(claims map[string]any) (any, bool) {
	var v any = claims
	for _, s := range p.segs {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[s]; !ok {
			return nil, false
		}
	}
	return v, true
}

// errTooManyValues refuses a token with more than MaxClaimValues scopes or
// roles.
var errTooManyValues = fmt.Errorf("more than %d distinct values", MaxClaimValues)

// valueSet gathers distinct values in the order first seen, at most
// MaxClaimValues of them.
type valueSet struct {
	out  []string
	seen map[string]struct{} // once out is long enough for a linear search to cost
}

// linearUpTo is where valueSet stops searching out and builds seen.
const linearUpTo = 32

func (s *valueSet) add(v string) error {
	if v == "" {
		return nil
	}
	if s.seen != nil {
		if _, dup := s.seen[v]; dup {
			return nil
		}
	} else if slices.Contains(s.out, v) {
		return nil
	}
	if len(s.out) == MaxClaimValues {
		return errTooManyValues
	}
	s.out = append(s.out, v)
	switch {
	case s.seen != nil:
		s.seen[v] = struct{}{}
	case len(s.out) > linearUpTo:
		s.seen = make(map[string]struct{}, 2*len(s.out))
		for _, o := range s.out {
			s.seen[o] = struct{}{}
		}
	}
	return nil
}

// addValue adds what one path found: a space-delimited string (RFC 6749
// §3.3, the scope claim), an array whose string items are taken whole (scp,
// roles, groups; other items are ignored), or, for a path ending in *, the
// member names of an object, in sorted order so that a principal's values
// never depend on map iteration. Anything else adds nothing.
func (s *valueSet) addValue(v any, keys bool) error {
	if keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if len(m) > MaxClaimValues {
			return errTooManyValues // all distinct: no need to sort them first
		}
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			if err := s.add(k); err != nil {
				return err
			}
		}
		return nil
	}
	switch v := v.(type) {
	case string:
		for f := range strings.FieldsSeq(v) {
			if err := s.add(f); err != nil {
				return err
			}
		}
	case []any:
		for _, item := range v {
			if str, ok := item.(string); ok {
				if err := s.add(str); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// collect gathers the distinct values of every path in paths, in order.
// nil when there are none.
func collect(claims map[string]any, paths []claimPath) ([]string, error) {
	var s valueSet
	for i := range paths {
		v, ok := paths[i].lookup(claims)
		if !ok {
			continue
		}
		if err := s.addValue(v, paths[i].keys); err != nil {
			return nil, fmt.Errorf("claim %s: %w", paths[i].text, err)
		}
	}
	return s.out, nil
}

// claimMapping is the parsed AudienceClaims, ScopeClaims and RoleClaims of
// a Config.
type claimMapping struct {
	audience []claimPath
	// audienceIsAud: AudienceClaims is exactly ["aud"], the default, and
	// golang-jwt's validator checks it (jwt.WithAudience) as it always did.
	audienceIsAud bool
	scopes        []claimPath
	roles         []claimPath
}

// DefaultScopeClaims returns the claims read into Principal.Scopes when
// Config.ScopeClaims is empty: scope (a space-delimited string, RFC 9068
// §2.2.3) and scp (an array, or a string, as Okta, Hydra and Entra ID send
// it). Each call returns a new slice.
func DefaultScopeClaims() []string { return []string{"scope", "scp"} }

// defaultClaimMapping is the mapping of a Config whose three lists are
// empty: aud; scope and scp into Scopes; nothing into Roles.
var defaultClaimMapping = claimMapping{
	audience:      []claimPath{{text: "aud", segs: []string{"aud"}}},
	audienceIsAud: true,
	scopes:        []claimPath{{text: "scope", segs: []string{"scope"}}, {text: "scp", segs: []string{"scp"}}},
}

// notAudienceOrGrant are the registered claims that can never hold an
// audience, a scope or a role: a path naming one is a mistake.
var notAudienceOrGrant = []string{"iss", "sub", "exp", "nbf", "iat", "jti"}

// newClaimMapping parses the three lists of c (their defaults when empty)
// and reports every problem, each naming its field.
func newClaimMapping(c *Config) (claimMapping, error) {
	var errs []error
	parse := func(field string, texts []string, keysOK bool, forbidden []string) []claimPath {
		if len(texts) > maxClaimPaths {
			errs = append(errs, fmt.Errorf("middleware: %s lists %d claims, at most %d", field, len(texts), maxClaimPaths))
			return nil
		}
		var out []claimPath
		for _, t := range texts {
			p, err := parseClaimPath(t)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("middleware: %s: %w", field, err))
				continue
			case p.keys && !keysOK:
				errs = append(errs, fmt.Errorf("middleware: %s: claim path %q: an audience is a value, never a member name (%s)", field, t, keysSegment))
				continue
			case len(p.segs) == 1 && slices.Contains(forbidden, p.segs[0]):
				errs = append(errs, fmt.Errorf("middleware: %s: claim %q cannot hold one", field, p.segs[0]))
				continue
			case slices.ContainsFunc(out, func(q claimPath) bool { return samePath(p, q) }):
				errs = append(errs, fmt.Errorf("middleware: %s names claim path %q twice", field, t))
				continue
			}
			out = append(out, p)
		}
		return out
	}
	m := defaultClaimMapping
	if len(c.AudienceClaims) > 0 {
		m.audience = parse("AudienceClaims", c.AudienceClaims, false, notAudienceOrGrant)
		m.audienceIsAud = len(m.audience) == 1 && samePath(m.audience[0], defaultClaimMapping.audience[0])
	}
	grants := append(slices.Clone(notAudienceOrGrant), "aud")
	if len(c.ScopeClaims) > 0 {
		m.scopes = parse("ScopeClaims", c.ScopeClaims, true, grants)
	}
	m.roles = parse("RoleClaims", c.RoleClaims, true, grants)
	for _, r := range m.roles {
		if slices.ContainsFunc(m.scopes, func(s claimPath) bool { return samePath(r, s) }) {
			// A claim read as both would let a role pass a scope check.
			errs = append(errs, fmt.Errorf("middleware: claim path %q is in both ScopeClaims and RoleClaims (with ScopeClaims empty, its default: scope, scp)", r.text))
		}
	}
	return m, errors.Join(errs...)
}

func samePath(a, b claimPath) bool { return a.keys == b.keys && slices.Equal(a.segs, b.segs) }

// audienceOf finds the audience claim that decides for a token: the first
// of m.audience that the claims carry with a value (a non-empty string, or
// a non-empty array). It returns that path and the value; found is false
// when the token carries none of them.
func (m *claimMapping) audienceOf(claims map[string]any) (path *claimPath, value any, found bool) {
	for i := range m.audience {
		v, ok := m.audience[i].lookup(claims)
		if !ok {
			continue
		}
		switch v := v.(type) {
		case nil:
			continue
		case string:
			if v == "" {
				continue
			}
		case []any:
			if len(v) == 0 {
				continue
			}
		}
		return &m.audience[i], v, true
	}
	return nil, nil, false
}

// checkAudience applies the AudienceClaims rule to claims: the first listed
// claim the token carries with a value decides, and must hold one of want:
// be one, if a string, or contain one, if an array of strings. Any other
// value (a number, an object, an array with something else than strings)
// decides against the token. A nil error accepts; otherwise the cause
// names, for the log, the claim and the values received.
func (m *claimMapping) checkAudience(claims map[string]any, want []string) error {
	path, v, found := m.audienceOf(claims)
	if !found {
		names := make([]string, len(m.audience))
		for i := range m.audience {
			names[i] = m.audience[i].text
		}
		return fmt.Errorf("token carries none of the audience claims %q", names)
	}
	switch v := v.(type) {
	case string:
		if slices.Contains(want, v) {
			return nil
		}
		return claimMismatch(path.text, []string{v}, want)
	case []any:
		matched := false
		for _, item := range v {
			s, ok := item.(string)
			if !ok {
				return fmt.Errorf("audience claim %s holds something else than strings", path.text)
			}
			matched = matched || slices.Contains(want, s)
		}
		if matched {
			return nil
		}
		got := make([]string, len(v)) // for the log only
		for i, item := range v {
			got[i] = item.(string)
		}
		return claimMismatch(path.text, got, want)
	}
	return fmt.Errorf("audience claim %s is not a string or an array of strings", path.text)
}

// grants reads a token's scopes and roles. Its error refuses the token:
// more than MaxClaimValues of either.
func (m *claimMapping) grants(claims map[string]any) (scopes, roles []string, err error) {
	if scopes, err = collect(claims, m.scopes); err == nil {
		roles, err = collect(claims, m.roles)
	}
	if err != nil {
		return nil, nil, newErr(ErrInvalidToken, ReasonBadToken, "token has too many scopes or roles", err)
	}
	return scopes, roles, nil
}
