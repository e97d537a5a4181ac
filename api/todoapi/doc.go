// Package todoapi is the todo API server: it opens the database named by
// DATABASE_URL (SQLite by default, PostgreSQL for several instances, through
// internal/gormdb), puts the authentication middleware in front of the
// todos handlers, and serves every route of openapi.yaml (routes.go).
//
// It has the shape of its siblings api/exchange and api/devidp: New(ctx,
// cfg) returns a *Server that is an http.Handler (request id, panic
// recovery and the request log included, from internal/httpserve), and
// Close releases what New opened. cmd/todo-api serves it with
// httpserve.Serve.
//
// # Several instances (STORE_URL)
//
// With StoreURL, the instances share their token caches through one Redis
// or Valkey (package store): the introspection verdicts, authenticated
// with a key derived from StoreSecret, and, with DPoP on, the ids of the
// proofs already used. The libraries take the store through their own
// small interfaces (introspection.SharedCache, middleware.ReplayStore),
// which store.Store satisfies, so they import no Redis client: the wiring
// is here. A store that is down costs each instance its share only: it
// falls back to its own caches, logging once per outage.
package todoapi
