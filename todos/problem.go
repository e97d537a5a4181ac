package todos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"
)

// problem is an RFC 9457 problem detail, the body of every error answer;
// openapi.yaml's Problem and ValidationProblem schemas pin its shape.
type problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []fieldError `json:"errors,omitempty"`
}

// fieldError names one invalid field of a 422 answer.
type fieldError struct {
	// Field is the JSON name of the field.
	Field string `json:"field"`
	// Pointer is the same as a JSON Pointer into the body, as RFC 9457's
	// example has it.
	Pointer string `json:"pointer"`
	// Detail says what is wrong with it.
	Detail string `json:"detail"`
}

// writeProblem answers with status and an application/problem+json body and
// stops the Gin chain.
func writeProblem(c *gin.Context, status int, detail string, fields map[string]string) {
	p := problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		p.Errors = append(p.Errors, fieldError{Field: name, Pointer: "/" + escapePointer(name), Detail: fields[name]})
	}
	b, err := json.Marshal(p)
	if err != nil { // cannot happen: every field is a string or an int
		b = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)
	}
	c.Abort()
	c.Data(status, "application/problem+json", b)
}

// escapePointer escapes a field name as a JSON Pointer token (RFC 6901).
func escapePointer(s string) string {
	var out []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '~':
			out = append(out, '~', '0')
		case '/':
			out = append(out, '~', '1')
		default:
			out = append(out, s[i])
		}
	}
	return string(out)
}

// writeError answers with the status that err means. This is the one place
// where the package's errors become statuses.
func (h *Handlers) writeError(c *gin.Context, err error) {
	var (
		re *requestError
		ve *ValidationError
	)
	switch {
	case errors.As(err, &re):
		writeProblem(c, re.status, re.detail, re.fields)
	case errors.As(err, &ve):
		writeProblem(c, http.StatusUnprocessableEntity, "the request body has invalid fields; see errors", ve.Fields)
	case errors.Is(err, ErrNotFound):
		writeProblem(c, http.StatusNotFound, "there is no such todo", nil)
	case errors.Is(err, ErrPreconditionFailed):
		writeProblem(c, http.StatusPreconditionFailed,
			"the todo has changed since the ETag given in If-Match: fetch it again and retry", nil)
	case errors.Is(err, ErrLimit):
		// 409: the request conflicts with the state of the caller's list,
		// and deleting todos resolves it. 403 would read as a missing scope.
		writeProblem(c, http.StatusConflict, fmt.Sprintf(
			"you already have the most todos allowed (%d): delete some before adding more",
			h.store.MaxTodosPerOwner()), nil)
	case errors.Is(err, ErrBadCursor):
		writeProblem(c, http.StatusBadRequest, "the cursor is malformed: use the Link header's, or start from the first page", nil)
	case errors.Is(err, context.DeadlineExceeded):
		c.Header("Retry-After", "1")
		writeProblem(c, http.StatusServiceUnavailable, "the database did not answer in time", nil)
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		writeProblem(c, http.StatusServiceUnavailable, "the request was canceled", nil)
	default:
		h.cfg.Logger.ErrorContext(c.Request.Context(), "todos: unexpected error",
			"method", c.Request.Method, "route", c.FullPath(), "err", err)
		writeProblem(c, http.StatusInternalServerError, "an unexpected error occurred", nil)
	}
}
