package introspection

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"unsafe"
)

// TokenHash is the SHA-256 of a token. Tollgate keys its token caches and
// names tokens in logs by it, so that neither holds a token: finding a token
// from its hash would need a preimage.
type TokenHash [sha256.Size]byte

// TokenHashLogKey is the log field that names a token by its short hash,
// the same in every Tollgate package.
const TokenHashLogKey = "token_sha256"

// HashToken returns the SHA-256 of token without copying it: []byte(token)
// would allocate for every token longer than 32 bytes, on every request.
// sha256.Sum256 only reads its argument and keeps no reference, which is
// what makes viewing the string's bytes in place safe.
func HashToken(token string) TokenHash {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// Short is the first 12 hex digits of the hash: enough to follow one token
// through the logs, useless for replaying it.
func (h TokenHash) Short() string { return hex.EncodeToString(h[:6]) }

// LogAttr is the log field naming the token: TokenHashLogKey = Short().
func (h TokenHash) LogAttr() slog.Attr { return slog.String(TokenHashLogKey, h.Short()) }
