package middleware_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// Protect a net/http handler: Require verifies the token, RequireScopes
// checks a scope, and the handler reads the verified caller.
func ExampleAuthenticator_Require() {
	auth, err := middleware.New(context.Background(), middleware.Config{
		Issuer:    "https://auth.example.com/",
		Audiences: []string{"todo-api"},
	})
	if err != nil {
		log.Fatal(err)
	}
	todos := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		fmt.Fprintf(w, "todos of %s\n", p.Subject)
	})
	http.Handle("GET /todos", auth.Require(auth.RequireScopes("todos:read")(todos)))
	log.Fatal(http.ListenAndServe(":8080", nil))
}

// A runnable round trip against the test issuer in middleware/authtest.
func ExampleAuthenticator_Authenticate() {
	is := authtest.NewIssuer(logTB{})
	defer is.Server.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	auth, err := middleware.New(ctx, middleware.Config{Issuer: is.URL, Audiences: []string{authtest.Audience}})
	if err != nil {
		log.Fatal(err)
	}
	for auth.Ready(ctx) != nil {
		time.Sleep(10 * time.Millisecond)
	}
	srv := httptest.NewServer(auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		fmt.Fprintf(w, "hello %s, scopes %v", p.Subject, p.Scopes)
	})))
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+is.Token(logTB{}, "alice", nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	resp, err = http.Get(srv.URL)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	// Output:
	// 200 hello alice, scopes [todos:read todos:write]
	// 401 Bearer
}

// logTB lets an example use authtest outside a test: failures are fatal.
type logTB struct{}

func (logTB) Helper()                           {}
func (logTB) Fatal(args ...any)                 { log.Fatal(args...) }
func (logTB) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }
func (logTB) Cleanup(func())                    {}
