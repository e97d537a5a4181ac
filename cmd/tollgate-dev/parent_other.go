//go:build !linux

package main

// stopWithParent is Linux-only; elsewhere Ctrl-C in the terminal, which
// reaches us along with go run, is the way to stop.
func stopWithParent() {}
