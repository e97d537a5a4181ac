#!/usr/bin/env bash
# Checks what the reusable modules cost the teams that import them:
#
#   1. consumer: a throwaway module outside the repository imports
#      middleware, middleware/principal and introspection (the first
#      consumer) and then middleware/ginauth (the second) and
#      middleware/mcpauth (the third). The first must see at most MAX_MODULES
#      modules in `go list -m all` and none of the application's heavy
#      dependencies in go.sum; the second may add only gin's own tree (still
#      none of GORM, fosite, chromedp, pgx, kin-openapi, Prometheus); the
#      third only the MCP SDK's tree (none of those, nor gin). None of them
#      may see go-redis: only the store module brings it in.
#   2. oldest Go: the reusable modules build and pass their tests with the
#      oldest toolchain their go.mod files declare (MIN_GO), fetched through
#      the module proxy like any module.
#
# Usage: scripts/library-check.sh [consumer|oldest-go|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MAX_MODULES=${MAX_MODULES:-15}
MIN_GO=${MIN_GO:-go1.25.0}
HEAVY='gin-gonic|gorm.io|ory/fosite|chromedp|jackc/pgx|getkin/kin-openapi|prometheus|redis/go-redis'
HEAVY_NOT_GIN='gorm.io|ory/fosite|chromedp|jackc/pgx|getkin/kin-openapi|prometheus|redis/go-redis'

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

consumer() {
	local dir="$work/consumer"
	mkdir -p "$dir/plain" "$dir/withgin" "$dir/withmcp"
	# The consumer's own replace lines stand in for the published versions.
	for sub in plain withgin withmcp; do
		cat >"$dir/$sub/go.mod" <<MOD
module example.com/consumer

go 1.25.0

replace github.com/tollgate-dev/tollgate/introspection => $ROOT/introspection

replace github.com/tollgate-dev/tollgate/middleware => $ROOT/middleware

replace github.com/tollgate-dev/tollgate/middleware/ginauth => $ROOT/middleware/ginauth

replace github.com/tollgate-dev/tollgate/middleware/mcpauth => $ROOT/middleware/mcpauth
MOD
	done
	cat >"$dir/plain/main.go" <<'GO'
package main

import (
	"context"
	"net/http"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

func main() {
	auth, err := middleware.New(context.Background(), middleware.Config{
		Issuer:       "https://auth.example.com/",
		Mode:         middleware.ModeIntrospection,
		Introspector: &introspection.Client{Endpoint: "https://auth.example.com/introspect"},
	})
	if err != nil {
		panic(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		_, _ = w.Write([]byte(p.Subject))
	})
	_ = http.ListenAndServe(":8080", auth.Require(h))
}
GO
	cat >"$dir/withgin/main.go" <<'GO'
package main

import (
	"context"

	"github.com/gin-gonic/gin"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/ginauth"
)

func main() {
	auth, err := middleware.New(context.Background(), middleware.Config{
		Issuer: "https://auth.example.com/", Audiences: []string{"api"},
	})
	if err != nil {
		panic(err)
	}
	r := gin.New()
	r.GET("/", ginauth.Require(auth), func(c *gin.Context) { c.String(200, "ok") })
	_ = r.Run(":8080")
}
GO
	cat >"$dir/withmcp/main.go" <<'GO'
package main

import (
	"context"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/mcpauth"
)

func main() {
	auth, err := middleware.New(context.Background(), middleware.Config{
		Issuer: "https://auth.example.com/", Audiences: []string{"https://mcp.example.com/mcp"},
		ResourceMetadata: &middleware.ResourceMetadata{Resource: "https://mcp.example.com/mcp"},
	})
	if err != nil {
		panic(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "x", Version: "1"}, nil)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	_ = http.ListenAndServe(":8080", mcpauth.Handler(auth, h))
}
GO
	local status=0
	(cd "$dir/plain" && GOWORK=off GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 && GOWORK=off go build ./...)
	local n
	n=$(cd "$dir/plain" && GOWORK=off go list -m all | wc -l)
	echo "consumer of middleware, principal, introspection: $n modules in go list -m all (at most $MAX_MODULES)"
	(cd "$dir/plain" && GOWORK=off go list -m all | sed 's/^/    /')
	if [ "$n" -gt "$MAX_MODULES" ]; then
		echo "FAIL: more than $MAX_MODULES modules"; status=1
	fi
	if grep -E "$HEAVY" "$dir/plain/go.sum"; then
		echo "FAIL: go.sum of a plain consumer names the modules above"; status=1
	fi
	(cd "$dir/withgin" && GOWORK=off GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 && GOWORK=off go build ./...)
	local g
	g=$(cd "$dir/withgin" && GOWORK=off go list -m all | wc -l)
	echo "consumer of ginauth: $g modules (gin's own tree added)"
	if grep -E "$HEAVY_NOT_GIN" "$dir/withgin/go.sum"; then
		echo "FAIL: go.sum of a ginauth consumer names the modules above"; status=1
	fi
	(cd "$dir/withmcp" && GOWORK=off GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 && GOWORK=off go build ./...)
	local m
	m=$(cd "$dir/withmcp" && GOWORK=off go list -m all | wc -l)
	echo "consumer of mcpauth: $m modules (the MCP SDK's tree added)"
	if grep -E "$HEAVY" "$dir/withmcp/go.sum"; then
		echo "FAIL: go.sum of an mcpauth consumer names the modules above"; status=1
	fi
	return $status
}

oldest_go() {
	# A workspace of just the reusable modules, declaring the oldest Go.
	cat >"$work/go.work" <<WORK
go ${MIN_GO#go}

use (
	$ROOT/introspection
	$ROOT/middleware
	$ROOT/middleware/ginauth
	$ROOT/middleware/mcpauth
	$ROOT/store
)

// The go command still looks up the versions the modules require of each
// other unless they are replaced, as the application module does.
replace (
	github.com/tollgate-dev/tollgate/introspection v0.1.0 => $ROOT/introspection
	github.com/tollgate-dev/tollgate/middleware v0.1.0 => $ROOT/middleware
)
WORK
	echo "testing the reusable modules with $MIN_GO"
	for m in introspection middleware middleware/ginauth middleware/mcpauth store; do
		(cd "$ROOT/$m" && GOWORK="$work/go.work" GOTOOLCHAIN="$MIN_GO" go test -count=1 ./...)
	done
}

case "${1:-all}" in
consumer) consumer ;;
oldest-go) oldest_go ;;
all) consumer && oldest_go ;;
*) echo "usage: $0 [consumer|oldest-go|all]" >&2; exit 2 ;;
esac
