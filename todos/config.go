package todos

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// DefaultMaxBodyBytes is the largest request body the handlers read by
// default: a todo is well under 3 KiB, so 64 KiB leaves room for clients
// that pad and still stops a body from filling memory.
const DefaultMaxBodyBytes = 64 << 10

// Config holds the handlers' settings; a zero field means its default.
type Config struct {
	// BaseURL is the public URL the routes are served under, without
	// "/todos" and without a trailing slash, such as
	// "https://todo.example.com" or "https://example.com/api". The url
	// field of a todo, Location and Link are built from it.
	//
	// When empty, they are built from the request instead: "https" when
	// the connection is TLS, else "http", then the Host header and the path
	// of the router given to Register. Set it in production: the Host
	// header is whatever the client sent.
	BaseURL string
	// TrustForwardedProto makes the scheme, when BaseURL is empty, come
	// from the X-Forwarded-Proto header ("http" or "https") when present.
	// Set it only behind a proxy that sets or strips that header; any
	// client can send it. Default false.
	TrustForwardedProto bool
	// MaxBodyBytes is the largest request body read; a larger one gets 413.
	// Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// DefaultPageSize is the page size of GET /todos without ?limit=.
	// Default DefaultPageSize (100).
	DefaultPageSize int
	// MaxPageSize is the largest ?limit= accepted; a larger one gets 400.
	// Default and upper bound MaxPageSize (500).
	MaxPageSize int
	// Logger receives unexpected errors (those answered with 500). It
	// never sees a token: the handlers never do. Default slog.Default().
	Logger *slog.Logger
	// AllowDeleteAll, when set, is asked before DELETE /todos deletes every
	// todo of the caller (not before ?completed=true, nor for a request
	// answered 400): it returns true to go on, or answers the request itself
	// and returns false. The todo API puts a step-up check here (RFC 9470),
	// so that wiping a whole list may take a stronger or fresher sign-in
	// than clearing the done items. Default: allowed.
	AllowDeleteAll func(w http.ResponseWriter, r *http.Request) bool
	// Owner, when set, names the owner of a verified caller's todos; an
	// empty name refuses the caller (401). Default: the subject. A subject
	// is unique only at its issuer, so an API that trusts several issuers
	// names owners by issuer and subject.
	Owner func(p principal.Principal) string
}

// withDefaults fills in the zero fields and reports every problem at once.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("todos: BaseURL: %w", err))
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("todos: BaseURL %q must be an absolute http or https URL", c.BaseURL))
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			errs = append(errs, fmt.Errorf("todos: BaseURL %q must have no query, fragment or user info", c.BaseURL))
		}
		c.BaseURL = strings.TrimSuffix(c.BaseURL, "/")
	}
	if c.MaxBodyBytes < 0 || c.DefaultPageSize < 0 || c.MaxPageSize < 0 {
		errs = append(errs, errors.New("todos: MaxBodyBytes, DefaultPageSize and MaxPageSize must not be negative"))
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxPageSize == 0 {
		c.MaxPageSize = MaxPageSize
	}
	if c.MaxPageSize > MaxPageSize {
		errs = append(errs, fmt.Errorf("todos: MaxPageSize must be at most %d", MaxPageSize))
	}
	if c.DefaultPageSize == 0 {
		c.DefaultPageSize = min(DefaultPageSize, c.MaxPageSize)
	}
	if c.DefaultPageSize > c.MaxPageSize {
		errs = append(errs, errors.New("todos: DefaultPageSize must not exceed MaxPageSize"))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, errors.Join(errs...)
}
