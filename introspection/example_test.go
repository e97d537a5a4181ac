package introspection_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tollgate-dev/tollgate/introspection"
)

func ExampleClient_Introspect() {
	// A stand-in authorization server: "good" tokens are active.
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		if id != "todo-api" || secret != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("token") != "good" {
			io.WriteString(w, `{"active":false}`)
			return
		}
		io.WriteString(w, `{"active":true,"sub":"alice","scope":"todos:read todos:write","aud":"todo-api","exp":4102444800}`)
	}))
	defer as.Close()

	c := &introspection.Client{
		Endpoint:     as.URL + "/introspect",
		ClientID:     "todo-api",
		ClientSecret: "s3cret",
	}
	if err := c.Validate(); err != nil {
		log.Fatal(err)
	}

	resp, err := c.Introspect(context.Background(), "good")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Sub, strings.Join(resp.Scopes(), ","), resp.Aud, resp.Exp.Year())

	_, err = c.Introspect(context.Background(), "revoked")
	switch {
	case errors.Is(err, introspection.ErrInactive):
		fmt.Println("401:", err)
	case errors.Is(err, introspection.ErrUnavailable), errors.Is(err, introspection.ErrMalformedResponse):
		fmt.Println("503:", err)
	}

	_, _ = c.Introspect(context.Background(), "good") // from the cache
	fmt.Printf("%+v\n", c.Stats())
	// Output:
	// alice todos:read,todos:write [todo-api] 2100
	// 401: introspection: token is not active
	// {Requests:3 CacheHits:1 Calls:2 Failures:0 Refused:0 SharedHits:0 SharedErrors:0}
}

func ExampleClient_Validate() {
	c := &introspection.Client{Endpoint: "ftp://as.example/introspect"}
	fmt.Println(c.Validate())
	// Output:
	// introspection: Endpoint scheme must be https or http, not "ftp"
	// introspection: ClientID is required with AuthMethod basic (use AuthNone for an endpoint without client authentication)
}
