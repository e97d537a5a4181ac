package todos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"
)

// validator is a request body that can check itself once decoded: Valid
// returns what is wrong by field name, empty when nothing is.
type validator interface {
	Valid(ctx context.Context) map[string]string
}

// requestError is bad input: the status and the problem it is answered
// with. Nothing has been changed when one is returned.
type requestError struct {
	status int
	detail string
	fields map[string]string // 422 only: JSON field name → what is wrong
}

func (e *requestError) Error() string { return fmt.Sprintf("%d: %s", e.status, e.detail) }

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, detail: fmt.Sprintf(format, args...)}
}

func invalidFields(fields map[string]string) *requestError {
	return &requestError{
		status: http.StatusUnprocessableEntity,
		detail: "the request body has invalid fields; see errors",
		fields: fields,
	}
}

// readOnlyFields are fields of a todo that clients may not set. Naming them
// as such is kinder than "unknown field" to a client that sends a todo it
// fetched back.
var readOnlyFields = map[string]bool{"id": true, "url": true, "created_at": true, "updated_at": true}

// maxFieldProblems bounds the problems reported for one body, so that a body
// of thousands of unknown keys does not get an answer as large.
const maxFieldProblems = 20

// decodeValid reads r's JSON body into a T and validates it. It is the only
// way the handlers read a body, and it checks, in this order:
//   - Content-Type is application/json (charset utf-8 if any), else 415;
//   - the body is at most maxBytes long, else 413 (http.MaxBytesReader);
//   - the body is one well-formed JSON object, else 400;
//   - every key is a field of T, spelt exactly and given once, and every
//     value is valid UTF-8, else 422 naming the field (encoding/json
//     matches keys case-insensitively and replaces invalid UTF-8 silently:
//     this scan is what refuses both);
//   - every value has the field's JSON type, else 422 naming the field;
//   - T.Valid finds nothing wrong, else 422 naming the fields.
//
// Every error is a *requestError; no input makes it panic.
func decodeValid[T validator](r *http.Request, w http.ResponseWriter, maxBytes int64) (T, error) {
	var v T
	if err := checkJSONContentType(r.Header); err != nil {
		return v, err
	}
	tooLarge := &requestError{
		status: http.StatusRequestEntityTooLarge,
		detail: fmt.Sprintf("the request body must be at most %d bytes", maxBytes),
	}
	if r.ContentLength > maxBytes {
		return v, tooLarge
	}
	if r.Body == nil {
		return v, badRequest("the request body is empty; send a JSON object")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return v, tooLarge
		}
		return v, badRequest("the request body could not be read")
	}
	return decodeBody[T](r.Context(), body)
}

// checkJSONContentType answers 415 unless the header says JSON in UTF-8.
func checkJSONContentType(h http.Header) error {
	unsupported := &requestError{
		status: http.StatusUnsupportedMediaType,
		detail: `the request body must be JSON, sent with "Content-Type: application/json"`,
	}
	ct := h.Values("Content-Type")
	if len(ct) != 1 {
		return unsupported
	}
	mt, params, err := mime.ParseMediaType(ct[0])
	if err != nil || mt != "application/json" {
		return unsupported
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return unsupported
	}
	return nil
}

// decodeBody is decodeValid past the headers: body is the whole body.
func decodeBody[T validator](ctx context.Context, body []byte) (T, error) {
	var v T
	if len(bytes.TrimSpace(body)) == 0 {
		return v, badRequest("the request body is empty; send a JSON object")
	}
	if !json.Valid(body) {
		var syn *json.SyntaxError
		if err := json.Unmarshal(body, new(any)); errors.As(err, &syn) {
			return v, badRequest("the request body is not well-formed JSON: %s (at byte %d)", syn.Error(), syn.Offset)
		}
		return v, badRequest("the request body is not well-formed JSON")
	}
	if problems := scanKeys(body, jsonFields(reflect.TypeFor[T]())); len(problems) > 0 {
		if _, ok := problems[""]; ok {
			return v, badRequest("the request body must be a JSON object")
		}
		return v, invalidFields(problems)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) && typ.Field != "" {
			return v, invalidFields(map[string]string{typ.Field: "must be " + jsonTypeName(typ.Type)})
		}
		return v, badRequest("the request body must be a JSON object")
	}
	if problems := v.Valid(ctx); len(problems) > 0 {
		return v, invalidFields(problems)
	}
	return v, nil
}

// scanKeys checks the top-level keys of body, which is well-formed JSON,
// against known. A body that is not an object is reported under "".
func scanKeys(body []byte, known map[string]bool) map[string]string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return map[string]string{"": "not an object"}
	}
	problems := map[string]string{}
	seen := map[string]bool{}
	for dec.More() && len(problems) < maxFieldProblems {
		tok, err := dec.Token()
		key, ok := tok.(string)
		var raw json.RawMessage
		if err != nil || !ok || dec.Decode(&raw) != nil {
			return map[string]string{"": "not an object"} // unreachable for valid JSON
		}
		shown := key
		if utf8.RuneCountInString(shown) > 64 {
			shown = string([]rune(shown)[:64]) + "…"
		}
		switch {
		case seen[key]:
			problems[shown] = "must appear only once"
		case readOnlyFields[key]:
			problems[shown] = "is read-only"
		case !known[key]:
			problems[shown] = "is not a field of this request"
		case !utf8.Valid(raw):
			problems[shown] = "must be valid UTF-8"
		}
		seen[key] = true
	}
	return problems
}

// jsonFields returns the JSON names of t's fields.
func jsonFields(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names[name] = true
		}
	}
	return names
}

// jsonTypeName names the JSON type that Go type t decodes from.
func jsonTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "of another type"
}

// createRequest is the body of POST /todos. Pointers tell a missing or null
// field from a zero value: title is required, the others default to false
// and 0.
type createRequest struct {
	Title     *string `json:"title"`
	Completed *bool   `json:"completed"`
	Order     *int    `json:"order"`
}

// Valid implements validator.
func (r createRequest) Valid(context.Context) map[string]string {
	if r.Title == nil {
		problems := r.newTodo().Valid()
		problems["title"] = "is required"
		return problems
	}
	return r.newTodo().Valid()
}

func (r createRequest) newTodo() NewTodo {
	var n NewTodo
	if r.Title != nil {
		n.Title = *r.Title
	}
	if r.Completed != nil {
		n.Completed = *r.Completed
	}
	if r.Order != nil {
		n.Order = *r.Order
	}
	return n
}

// patchRequest is the body of PATCH /todos/{id}: a field that is absent or
// null is left as it is (there is nothing a todo's field could be reset to).
type patchRequest struct {
	Title     *string `json:"title"`
	Completed *bool   `json:"completed"`
	Order     *int    `json:"order"`
}

// Valid implements validator.
func (r patchRequest) Valid(context.Context) map[string]string {
	return r.patch().Valid()
}

func (r patchRequest) patch() Patch {
	return Patch(r)
}
