package todos

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Cursor is an opaque position in an owner's list: the list key (order,
// creation time, ID) of the last todo of the previous page. Clients get it
// from the Link header and give it back as ?cursor=; they never build one.
//
// Keyset pagination (rather than OFFSET) keeps a page a range scan of the
// list index, and keeps paging stable while todos are added or removed: a
// page starts right after the last todo the client saw, wherever that is now.
type Cursor struct {
	order     int
	createdAt time.Time
	id        string
}

// cursorJSON is the encoded form. The names are short because the cursor
// travels in every Link header.
type cursorJSON struct {
	Order     int    `json:"o"`
	CreatedAt int64  `json:"t"` // Unix microseconds
	ID        string `json:"i"`
}

// maxCursorLength bounds what ParseCursor reads; real cursors are under 100.
const maxCursorLength = 256

// cursorAfter returns the cursor that continues a list after t.
func cursorAfter(t Todo) Cursor {
	return Cursor{order: t.Order, createdAt: t.CreatedAt, id: t.ID}
}

// IsZero reports whether c is the zero Cursor: the start of the list.
func (c Cursor) IsZero() bool {
	return c.id == ""
}

// String returns the cursor's opaque text: unpadded base64url of a small
// JSON object. It is "" for the zero Cursor.
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	b, _ := json.Marshal(cursorJSON{Order: c.order, CreatedAt: c.createdAt.UnixMicro(), ID: c.id})
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor reads a cursor made by Cursor.String. The empty string is the
// zero Cursor. Anything this package could not have made is ErrBadCursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > maxCursorLength {
		return Cursor{}, fmt.Errorf("%w: too long", ErrBadCursor)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: not base64url", ErrBadCursor)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var cj cursorJSON
	if err := dec.Decode(&cj); err != nil || dec.More() {
		return Cursor{}, fmt.Errorf("%w: not a cursor", ErrBadCursor)
	}
	if !validID(cj.ID) || orderProblem(cj.Order) != "" {
		return Cursor{}, fmt.Errorf("%w: not a cursor", ErrBadCursor)
	}
	return Cursor{order: cj.Order, createdAt: time.UnixMicro(cj.CreatedAt).UTC(), id: cj.ID}, nil
}
