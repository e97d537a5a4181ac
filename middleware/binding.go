package middleware

import "strings"

// A sender-constrained token is bound to a key that its holder must prove
// it has on every request: RFC 9449 DPoP (cnf.jkt, token_type DPoP), RFC
// 8705 mutual TLS (cnf.x5t#S256), RFC 9201 PoP. Accepting a bound token as
// a plain bearer token would make a stolen one replayable here, which is
// the very thing binding prevents, so bound tokens are refused with
// ReasonBoundToken, except DPoP-bound ones (cnf.jkt alone) when Config.DPoP
// allows them: those need a proof on every request (dpop.go).

// isBound reports whether claims, from a JWT or an introspection answer,
// carry an RFC 7800 confirmation. Any cnf member counts, whatever its value:
// an empty object, a string or JSON null included. A server that means
// "unbound" leaves cnf out, and guessing which other values a server meant
// as unbound is how a bound token would slip through.
func isBound(claims map[string]any) bool {
	_, ok := claims["cnf"]
	return ok
}

// isBoundType reports whether an introspection answer's token_type is one
// of the access token types that are bound to a key (RFC 9449 DPoP, RFC
// 9201 PoP), compared case-insensitively. A server may send it without cnf.
func isBoundType(tokenType string) bool {
	return strings.EqualFold(tokenType, "DPoP") || strings.EqualFold(tokenType, "PoP")
}
