// Package api wires the todo API together: it opens the database named by
// DATABASE_URL (SQLite by default, PostgreSQL for several instances), puts
// the authentication middleware in front of the todos handlers, and serves
// them with graceful shutdown. It is the only package, with cmd, that knows
// every other one.
package api
