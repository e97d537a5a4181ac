// Package devstack builds and runs Tollgate's whole development system on
// loopback: the development authorization server (cmd/devidp), the exchange
// service with the todo web page (cmd/exchange) and the todo API
// (cmd/todo-api), each as its own process, with settings that match one
// another (issuer, client secrets, redirect URIs, cookie names, CORS origin).
//
// Every URL uses the host name localhost, so the browser sends the exchange's
// access token cookie to the todo API (cookies ignore ports); the programs
// listen on 127.0.0.1 only. cmd/tollgate-dev (make run) and the browser tests
// in e2e use it. It is for development and tests, never for production: the
// secrets are devidp's public defaults.
package devstack
