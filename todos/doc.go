// Package todos is the todo API's domain: the Todo model, its validation, a
// Store over GORM that keeps every user's todos apart, and the Gin handlers
// for the Todo-Backend style REST routes that openapi.yaml describes.
//
// Every Store method takes the owner (the verified subject of the access
// token) explicitly, so no query can run without one; only the handlers read
// it, from principal.From. Another user's todo is reported as ErrNotFound,
// never as forbidden, so IDs leak nothing.
//
// The package imports gorm.io/gorm but never a database driver: the api
// package opens SQLite or PostgreSQL and hands the *gorm.DB to NewStore. It
// knows nothing of tokens: authentication and scope checks are middlewares
// that the api package passes to Handlers.Register.
package todos
