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
package todoapi
