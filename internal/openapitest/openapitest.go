// Package openapitest checks, in tests, that HTTP requests and responses
// match the repository's openapi.yaml, with github.com/getkin/kin-openapi,
// so that the document and the code cannot drift apart. Handler tests use
// Validator.Serve; tests of a running server use Validator.Client or
// Validator.Transport.
//
// A test that sends a deliberately bad request marks it with ExpectInvalid
// (the document must refuse it too) or, for a rule the document cannot
// state such as a body size limit, with SkipRequestCheck. Either way the
// response is still checked.
package openapitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Validator checks requests and responses against one OpenAPI document. It
// is safe for concurrent use.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
}

// Load reads the OpenAPI document at path, checks that it is valid, and
// returns a Validator for it. The document's servers are ignored: requests
// are matched on their path alone, since tests serve on any host and port.
func Load(path string) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("openapitest: load %s: %w", path, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapitest: %s is not valid OpenAPI: %w", path, err)
	}
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapitest: %s: %w", path, err)
	}
	return &Validator{doc: doc, router: router}, nil
}

// New returns a Validator for the repository's openapi.yaml, found beside
// go.mod in the working directory or one of its parents; it fails tb when
// there is none or it is invalid.
func New(tb testing.TB) *Validator {
	tb.Helper()
	path, err := SpecPath()
	if err != nil {
		tb.Fatal(err)
	}
	v, err := Load(path)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// SpecPath returns the path of openapi.yaml beside the module's go.mod.
func SpecPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "openapi.yaml"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("openapitest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Document returns the loaded document, for tests that inspect it.
func (v *Validator) Document() *openapi3.T { return v.doc }

type markKey struct{}

type mark int

const (
	markExpectInvalid mark = iota + 1
	markSkipRequest
)

// ExpectInvalid marks req as one the document must refuse: the check then
// fails if the document accepts it, and checks only the response (against
// the operation, or for a path or method the document lacks, against the
// Problem schema and the MethodNotAllowed response).
func ExpectInvalid(req *http.Request) *http.Request {
	return req.WithContext(context.WithValue(req.Context(), markKey{}, markExpectInvalid))
}

// SkipRequestCheck marks req as bad in a way the document cannot state
// (a body over the size limit, a key given twice): only the response is
// checked.
func SkipRequestCheck(req *http.Request) *http.Request {
	return req.WithContext(context.WithValue(req.Context(), markKey{}, markSkipRequest))
}

func markOf(req *http.Request) mark {
	m, _ := req.Context().Value(markKey{}).(mark)
	return m
}

// options are kin-openapi's, strict: an undocumented status is an error,
// and defaults are not written into the request under test.
func options() *openapi3filter.Options {
	return &openapi3filter.Options{
		IncludeResponseStatus: true,
		SkipSettingDefaults:   true,
		AuthenticationFunc:    authenticate,
	}
}

// authenticate checks that a request carries what a security scheme asks
// for, as a client would send it. It does not verify tokens: that is the
// middleware's business, tested with real ones.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	s := in.SecurityScheme
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return errors.New("no bearer token in Authorization")
		}
		return nil
	case s.Type == "http" && strings.EqualFold(s.Scheme, "DPoP"):
		// RFC 9449 §7.1: the DPoP scheme, and exactly one proof.
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "DPoP") || strings.TrimSpace(token) == "" {
			return errors.New("no DPoP token in Authorization")
		}
		if n := len(r.Header.Values("DPoP")); n != 1 {
			return fmt.Errorf("a DPoP token needs exactly one DPoP proof header, got %d", n)
		}
		return nil
	case s.Type == "apiKey" && s.In == "cookie":
		if _, err := r.Cookie(s.Name); err != nil {
			return fmt.Errorf("no %s cookie", s.Name)
		}
		if r.Header.Get("X-CSRF") != "1" {
			return errors.New("a cookie-borne token needs X-CSRF: 1")
		}
		return nil
	}
	return fmt.Errorf("security scheme %q is not supported by openapitest", in.SecuritySchemeName)
}

// CheckRequest validates req, whose body is body, against the document.
// It reads neither req.Body nor modifies req.
func (v *Validator) CheckRequest(req *http.Request, body []byte) error {
	in, err := v.requestInput(req, body)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateRequest(req.Context(), in)
}

func (v *Validator) requestInput(req *http.Request, body []byte) (*openapi3filter.RequestValidationInput, error) {
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	clone := req.Clone(req.Context())
	clone.Body = io.NopCloser(bytes.NewReader(body))
	clone.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	clone.ContentLength = int64(len(body))
	return &openapi3filter.RequestValidationInput{
		Request: clone, PathParams: params, Route: route, Options: options(),
	}, nil
}

// CheckResponse validates a response to req (whose body was reqBody)
// against the document: status, headers, content type and body.
func (v *Validator) CheckResponse(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	in, err := v.requestInput(req, reqBody)
	if err != nil {
		var re *routers.RouteError
		if !errors.As(err, &re) {
			return err
		}
		// No operation to check against: a 404 for an unknown path or a
		// 405 for a method the path lacks must still be a problem document.
		in = &openapi3filter.RequestValidationInput{Request: req, Route: v.fallbackRoute(status, re)}
		if in.Route == nil {
			return fmt.Errorf("%s %s is not in the document and answered %d", req.Method, req.URL.Path, status)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header, Options: options(),
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		return fmt.Errorf("%s %s → %d: %w", req.Method, req.URL.Path, status, err)
	}
	return nil
}

// fallbackRoute makes an operation whose only answer is the document's
// MethodNotAllowed response (for 405) or a Problem (for 404).
func (v *Validator) fallbackRoute(status int, re *routers.RouteError) *routers.Route {
	var resp *openapi3.ResponseRef
	switch {
	case status == http.StatusMethodNotAllowed && re.Reason == routers.ErrMethodNotAllowed.Error():
		resp = v.doc.Components.Responses["MethodNotAllowed"]
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		resp = &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription("not found").
			WithContent(openapi3.NewContentWithSchemaRef(v.doc.Components.Schemas["Problem"], []string{"application/problem+json"}))}
	}
	if resp == nil {
		return nil
	}
	op := openapi3.NewOperation()
	op.Responses = openapi3.NewResponses(openapi3.WithStatus(status, resp))
	return &routers.Route{Spec: v.doc, Operation: op}
}

// check validates one exchange according to req's mark and reports every
// problem found.
func (v *Validator) check(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	var errs []error
	reqErr := v.CheckRequest(req, reqBody)
	switch markOf(req) {
	case markExpectInvalid:
		if reqErr == nil {
			errs = append(errs, fmt.Errorf("openapitest: the document accepts %s %s, which the test marked invalid", req.Method, req.URL))
		}
	case markSkipRequest:
	default:
		if reqErr != nil {
			errs = append(errs, fmt.Errorf("openapitest: request does not match the document: %w", reqErr))
		}
	}
	if err := v.CheckResponse(req, reqBody, status, header, body); err != nil {
		errs = append(errs, fmt.Errorf("openapitest: response does not match the document: %w\nbody: %.2000s", err, body))
	}
	return errors.Join(errs...)
}

// Serve runs req through h, checks the request and the response against
// the document (failing tb, not stopping it), and returns the response.
func (v *Validator) Serve(tb testing.TB, h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	tb.Helper()
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			tb.Fatalf("openapitest: reading the request body: %v", err)
		}
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if err := v.check(req, body, rec.Code, rec.Result().Header, rec.Body.Bytes()); err != nil {
		tb.Error(err)
	}
	return rec
}

// Transport returns an http.RoundTripper that sends requests through base
// (nil: http.DefaultTransport) and checks each request and response against
// the document, failing tb on a mismatch. Bodies are buffered.
func (v *Validator) Transport(tb testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{tb: tb, v: v, base: base}
}

// Client returns an *http.Client that uses Transport(tb, nil).
func (v *Validator) Client(tb testing.TB) *http.Client {
	return &http.Client{Transport: v.Transport(tb, nil)}
}

type transport struct {
	tb   testing.TB
	v    *Validator
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		var err error
		reqBody, err = io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(reqBody)), nil }
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := t.v.check(req, reqBody, resp.StatusCode, resp.Header, body); err != nil {
		t.tb.Error(err)
	}
	return resp, nil
}
