package middleware

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// splitChecked splits a compact JWS after the checks that need no
// decoding: three segments, only base64url characters, a header of
// bounded size.
func splitChecked(token string) (header64, payload64, sig64 string, err error) {
	header64, payload64, sig64, ok := splitCompact(token)
	if !ok {
		return "", "", "", newErr(ErrInvalidToken, ReasonBadToken, "token is not a signed JWT", nil)
	}
	// Only the base64url alphabet: encoding/base64 skips CR and LF even in
	// strict mode, which would give one signed token several spellings.
	// (The Authenticator checks this before verify; verify must not rely
	// on every caller doing so.)
	if i := strings.IndexFunc(token, notB64URLOrDot); i >= 0 {
		return "", "", "", malformed("token", fmt.Errorf("character outside base64url at offset %d", i))
	}
	// A real JOSE header is a few hundred bytes; a big one is only work
	// for the decoder before the signature can refuse it.
	if len(header64) > maxHeaderSegment {
		return "", "", "", malformed("header", fmt.Errorf("longer than %d characters", maxHeaderSegment))
	}
	return header64, payload64, sig64, nil
}

// issuerOf reads the iss member of a JWT payload, the JSON object
// payload, without decoding anything else: one pass over the bytes that
// steps over every other member's value by counting brackets, so a
// payload of deeply nested arrays costs no more than a flat one of the
// same length, and nothing is allocated but the result. It reports false
// when the payload has no top-level iss, when iss is not a string, or when
// it is longer than maxIssuerBytes.
//
// For any payload that encoding/json decodes into a map it finds what the
// map holds under "iss" (the last of duplicate members, with escapes
// decoded and invalid UTF-8 replaced: FuzzIssuerOf holds it to that). On
// broken JSON it may find anything, or nothing: the payload is decoded
// properly after the signature, and iss must then equal the issuer
// chosen, so a wrong choice here only refuses a token.
func issuerOf(p []byte) (string, bool) {
	i := skipSpace(p, 0)
	if i >= len(p) || p[i] != '{' {
		return "", false
	}
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == '}' {
		return "", false
	}
	var iss string
	found := false
	for {
		if i >= len(p) || p[i] != '"' {
			return "", false
		}
		end, ok := skipString(p, i)
		if !ok {
			return "", false
		}
		isIss := isIssKey(p[i:end])
		i = skipSpace(p, end)
		if i >= len(p) || p[i] != ':' {
			return "", false
		}
		i = skipSpace(p, i+1)
		if isIss {
			// The last iss counts, as for encoding/json.
			iss, found = "", false
			if i < len(p) && p[i] == '"' {
				if end, ok = skipString(p, i); ok {
					iss, found = unquoteIssuer(p[i:end])
				}
			} else {
				end, ok = skipValue(p, i)
			}
		} else {
			end, ok = skipValue(p, i)
		}
		if !ok {
			return "", false
		}
		i = skipSpace(p, end)
		if i >= len(p) {
			return "", false
		}
		switch p[i] {
		case ',':
			i = skipSpace(p, i+1)
		case '}':
			return iss, found
		default:
			return "", false
		}
	}
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string that starts at
// p[i], a quote.
func skipString(p []byte, i int) (int, bool) {
	for i++; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index after the JSON value that starts at p[i],
// counting brackets (not matching them: broken JSON is refused later)
// and stepping over strings.
func skipValue(p []byte, i int) (int, bool) {
	if i >= len(p) {
		return 0, false
	}
	switch p[i] {
	case '"':
		return skipString(p, i)
	case '{', '[':
		depth := 0
		for i < len(p) {
			switch p[i] {
			case '"':
				end, ok := skipString(p, i)
				if !ok {
					return 0, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	}
	// A number, true, false or null.
	start := i
	for ; i < len(p); i++ {
		switch p[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i, i > start
		}
	}
	return i, i > start
}

// isIssKey reports whether the quoted JSON string q is "iss", written
// plainly or with escapes ("\u0069ss"): at most 18 bytes between the
// quotes either way.
func isIssKey(q []byte) bool {
	if string(q) == `"iss"` {
		return true
	}
	if len(q) > 20 || !slices.Contains(q, '\\') {
		return false
	}
	s, ok := unquote(q)
	return ok && s == "iss"
}

// unquoteIssuer decodes the quoted JSON string q as an iss value of at
// most maxIssuerBytes.
func unquoteIssuer(q []byte) (string, bool) {
	// Each byte of the value takes at most 6 characters to write.
	if len(q) > 6*maxIssuerBytes+2 {
		return "", false
	}
	s, ok := unquote(q)
	if !ok || len(s) > maxIssuerBytes {
		return "", false
	}
	return s, true
}

// unquote decodes a quoted JSON string: plain printable ASCII directly,
// anything else (escapes, UTF-8, control characters) by encoding/json, so
// that it means exactly what it means in the claims decoded later.
func unquote(q []byte) (string, bool) {
	inner := q[1 : len(q)-1]
	plain := true
	for _, c := range inner {
		if c < 0x20 || c > 0x7e || c == '\\' || c == '"' {
			plain = false
			break
		}
	}
	if plain {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return "", false
	}
	return s, true
}
