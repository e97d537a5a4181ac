package todos

import (
	"errors"
	"maps"
	"slices"
	"strings"
)

// Errors the Store returns, checked with errors.Is. The handlers turn each
// into one status, in statusOf.
var (
	// ErrNotFound: no todo with that ID belongs to the owner. Another
	// user's todo is not found too, so that IDs reveal nothing.
	ErrNotFound = errors.New("todos: not found")
	// ErrPreconditionFailed: the todo exists but no longer has the version
	// the caller's If-Match named.
	ErrPreconditionFailed = errors.New("todos: precondition failed")
	// ErrLimit: the owner already has the most todos allowed.
	ErrLimit = errors.New("todos: too many todos")
	// ErrBadCursor: a list cursor that this package did not make.
	ErrBadCursor = errors.New("todos: malformed cursor")
)

// ValidationError lists the fields of a NewTodo or Patch that are invalid.
type ValidationError struct {
	// Fields maps a field's JSON name to what is wrong with it.
	Fields map[string]string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("todos: invalid")
	for i, k := range slices.Sorted(maps.Keys(e.Fields)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(" " + k + " " + e.Fields[k])
	}
	return b.String()
}
