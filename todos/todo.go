package todos

import (
	"crypto/rand"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on a todo's fields. They are part of the API contract: openapi.yaml
// states the same numbers.
const (
	// MaxTitleLength is the longest title, in Unicode code points (what
	// PostgreSQL's varchar counts), so that a title fits one line of the page.
	MaxTitleLength = 500
	// MinOrder and MaxOrder bound Order to a 32-bit integer, which every
	// client language (JavaScript included) represents exactly.
	MinOrder = math.MinInt32
	MaxOrder = math.MaxInt32
)

// Todo is one item of a user's list, as stored.
//
// The composite index idx_todos_owner_list (owner, position, created_at, id)
// is the list order itself, so that listing a page of one owner is a range
// scan of that index whatever the size of the table; the per-owner count
// that enforces the cap reads the same index.
type Todo struct {
	// ID is opaque: 26 characters of base32 from crypto/rand (130 bits), so
	// one ID tells nothing about another. It is the last column of the list
	// index too, to break ties between todos of equal order and creation time.
	ID string `gorm:"primaryKey;type:text;index:idx_todos_owner_list,priority:4"`
	// Owner names the verified caller who created it: the subject (sub),
	// or what Config.Owner makes of the caller (the todo API: the issuer, a
	// space and the subject).
	Owner string `gorm:"type:text;not null;index:idx_todos_owner_list,priority:1"`
	// Order is the client's sort key; the column is called position because
	// ORDER is an SQL keyword.
	Order int `gorm:"column:position;not null;default:0;index:idx_todos_owner_list,priority:2"`
	// CreatedAt is in UTC, truncated to microseconds: PostgreSQL keeps no
	// finer, and the list cursor must compare equal to what was stored.
	CreatedAt time.Time `gorm:"not null;autoCreateTime:false;index:idx_todos_owner_list,priority:3"`
	// Title is non-empty text of at most MaxTitleLength code points.
	Title string `gorm:"size:500;not null"`
	// Completed tells whether the todo is done.
	Completed bool `gorm:"not null;default:false"`
	// UpdatedAt is in UTC, truncated to microseconds.
	UpdatedAt time.Time `gorm:"not null;autoUpdateTime:false"`
	// Version starts at 1 and grows by one with every change; the ETag is
	// made of ID and Version.
	Version int `gorm:"not null;default:1"`
}

// ETag returns the todo's strong entity tag (RFC 9110 §8.8.3), quotes
// included. It changes whenever the todo does.
func (t Todo) ETag() string {
	return `"` + t.ID + "-" + strconv.Itoa(t.Version) + `"`
}

// NewTodo is what a caller gives to create a todo.
type NewTodo struct {
	Title     string
	Completed bool
	Order     int
}

// Valid reports the problems of n by field name; an empty map means valid.
func (n NewTodo) Valid() map[string]string {
	problems := map[string]string{}
	if msg := titleProblem(n.Title); msg != "" {
		problems["title"] = msg
	}
	if msg := orderProblem(n.Order); msg != "" {
		problems["order"] = msg
	}
	return problems
}

// Patch is a partial update: a nil field is left as it is.
type Patch struct {
	Title     *string
	Completed *bool
	Order     *int
}

// Valid reports the problems of p by field name; an empty map means valid.
func (p Patch) Valid() map[string]string {
	problems := map[string]string{}
	if p.Title != nil {
		if msg := titleProblem(*p.Title); msg != "" {
			problems["title"] = msg
		}
	}
	if p.Order != nil {
		if msg := orderProblem(*p.Order); msg != "" {
			problems["order"] = msg
		}
	}
	return problems
}

// titleProblem says what is wrong with a title, or "" when nothing is.
//
// U+FFFD is refused because it is what invalid UTF-8 and lone surrogate
// escapes ("\ud800") decode to: refusing it is how invalid text in a JSON
// body becomes a 422 instead of silently stored replacement characters.
// Control characters (C0, DEL, C1: line breaks and tabs included) are refused
// because a title is one line of plain text.
func titleProblem(title string) string {
	switch {
	case !utf8.ValidString(title):
		return "must be valid UTF-8"
	case strings.TrimSpace(title) == "":
		return "must not be empty or only white space"
	case utf8.RuneCountInString(title) > MaxTitleLength:
		return fmt.Sprintf("must be at most %d characters", MaxTitleLength)
	}
	for _, r := range title {
		if r == utf8.RuneError {
			return "must be valid UTF-8 text (U+FFFD is not accepted)"
		}
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	return ""
}

// orderProblem says what is wrong with an order, or "" when nothing is.
func orderProblem(order int) string {
	if order < MinOrder || order > MaxOrder {
		return fmt.Sprintf("must be between %d and %d", MinOrder, MaxOrder)
	}
	return ""
}

// idLength is the length of rand.Text's output: 26 base32 characters.
const idLength = 26

// newID returns a fresh random ID: crypto/rand.Text gives 130 bits of
// randomness in base32 (A–Z, 2–7), safe in URLs as it is.
func newID() string {
	return rand.Text()
}

// validID reports whether id could have been made by newID, so that the
// handlers answer 404 for anything else without asking the database.
func validID(id string) bool {
	if len(id) != idLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'A' || c > 'Z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}
