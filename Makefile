# Tollgate: `make run` starts the whole system, `make test` runs every test.
GO        ?= go
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
COUNT     ?= 6
ROUNDS    ?= 3
DURATION  ?= 5s
DISTINCT  ?= 2000
PICK      ?= cycle
ALG       ?= RS256
# Every package of the six modules (the application at the root, and the
# reusable introspection, middleware, middleware/ginauth, middleware/mcpauth
# and store, each a module of its own so that its importers' builds stay
# small: only store brings in go-redis; go.work joins them).
PKGS      = ./... ./introspection/... ./middleware/... ./middleware/ginauth/... ./middleware/mcpauth/... ./store/...
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

# The browser tests in e2e/ skip without Chromium, and go test hides the
# skips of a passing package; this is their rule for finding it, so that make
# test can say so.
CHROMIUM_CHECK = { [ -n "$$CHROMIUM" ] && command -v "$$CHROMIUM"; } >/dev/null 2>&1 || \
	{ [ -z "$$CHROMIUM" ] && { command -v chromium || command -v chromium-browser || command -v google-chrome; } >/dev/null 2>&1; }

.PHONY: all run test test-short conformance bench fuzz lint imports vet vet-bench fmt-check build tools loadtest

all: lint test

## run: build and start devidp, exchange and todo-api on loopback, print the address and the demo
## logins; Ctrl-C stops all three. Settings pass through, e.g. make run AUTH_MODE=introspection
## EXCHANGE_PORT=3001 (also DEVIDP_PORT, TODO_API_PORT, ACCESS_TOKEN_TTL, DATA_DIR, WEB_DIR, and
## REQUIRE_ACR_FOR_DELETE_ALL=urn:tollgate:acr:2fa for RFC 9470 step-up on "Delete all").
## make run STORE=redis gives the exchange STORE_URL=redis://127.0.0.1:6379/0 (the local Redis);
## STORE_URL=redis://… names another.
##
## Built and exec'd rather than go run: go run exits 1 whenever it was
## interrupted, so every Ctrl-C would end in "make: *** Error 1", and it does
## not pass on a SIGTERM; with exec, make's child is tollgate-dev itself.
RUN_FLAGS = $(strip \
	$(if $(AUTH_MODE),-auth-mode='$(AUTH_MODE)') \
	$(if $(DEVIDP_PORT),-devidp-port='$(DEVIDP_PORT)') \
	$(if $(EXCHANGE_PORT),-exchange-port='$(EXCHANGE_PORT)') \
	$(if $(TODO_API_PORT),-todo-api-port='$(TODO_API_PORT)') \
	$(if $(ACCESS_TOKEN_TTL),-access-token-ttl='$(ACCESS_TOKEN_TTL)') \
	$(if $(DATA_DIR),-data-dir='$(DATA_DIR)') \
	$(if $(WEB_DIR),-web-dir='$(WEB_DIR)') \
	$(if $(REQUIRE_ACR_FOR_DELETE_ALL),-require-acr-for-delete-all='$(REQUIRE_ACR_FOR_DELETE_ALL)') \
	$(if $(filter redis,$(STORE)),-store-url='redis://127.0.0.1:6379/0') \
	$(if $(STORE_URL),-store-url='$(STORE_URL)'))

run:
	$(GO) build -o bin/tollgate-dev ./cmd/tollgate-dev
	exec bin/tollgate-dev $(RUN_FLAGS)

## test: every test of every module, with the race detector (PostgreSQL tests need TOLLGATE_TEST_POSTGRES
## or a local server), then scripts/library-check.sh: what a consumer of the reusable modules gets, and
## their tests with the oldest Go they declare
test:
	@$(CHROMIUM_CHECK) || echo "NOTE: browser tests skipped: Chromium not found (apt-get install chromium)"
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	scripts/library-check.sh all

## conformance: the AuthPlane OAuth SDK conformance catalog's cases (conformance/, also part of make
## test); writes conformance-report.json in the catalog's report format and prints its summary
conformance:
	@CONFORMANCE_REPORT=$(CURDIR)/conformance-report.json $(GO) test -count=1 ./conformance/; status=$$?; \
		grep -A6 '"summary"' conformance-report.json 2>/dev/null | tr -d ' \n' | sed 's/,$$//'; echo; \
		echo "report: conformance-report.json"; exit $$status

## test-short: the quick subset
test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: benchmarks of the middleware and the store; compare runs with benchstat
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(COUNT) ./middleware/... ./introspection/... ./todos/... | tee bench.out

## loadtest: throughput of a trivial handler behind no auth, bare golang-jwt + keyfunc,
## auth0/go-jwt-middleware and Tollgate (cache on and off), from wrk (or a Go load generator
## when wrk is missing) in a second process, over ROUNDS interleaved rounds of DURATION per run;
## prints ratios to the unprotected endpoint and Tollgate's cache hit rate. DISTINCT lists the
## numbers of distinct tokens, one scenario each (e.g. DISTINCT=1000,10000,100000); PICK is how
## requests choose among them: cycle, uniform or zipf. ALG signs the tokens with RS256 (default),
## PS256, ES256 or EdDSA; ENDPOINTS limits the paths (e.g. ENDPOINTS=/bare,/tollgate-nocache).
## INSTRUCTIONS=N counts, instead of requests/s, the instructions the server executes per request
## (N requests per run, under valgrind's callgrind: needs valgrind; e.g. INSTRUCTIONS=1000
## DISTINCT=10). A measurement, not a test: not part of make test.
## bench/ is a module of its own, outside go.work, so its dependencies stay out of the library's.
loadtest:
	cd bench && GOWORK=off $(GO) build -o ../bin/loadserver ./cmd/loadserver && GOWORK=off $(GO) build -o ../bin/loadtest ./cmd/loadtest
	bin/loadtest -server bin/loadserver -rounds $(ROUNDS) -duration $(DURATION) -distinct '$(DISTINCT)' -pick '$(PICK)' -alg '$(ALG)' $(if $(ENDPOINTS),-endpoints '$(ENDPOINTS)') $(if $(INSTRUCTIONS),-instructions $(INSTRUCTIONS))

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

## lint: gofmt, go vet, staticcheck and the import rules
lint: fmt-check vet vet-bench imports
	$(STATICCHECK) $(PKGS)
	cd bench && GOWORK=off $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# bench/ is outside go.work (see loadtest), so PKGS does not reach it.
vet-bench:
	cd bench && GOWORK=off $(GO) vet ./...

## imports: reusable packages stay free of Gin and GORM; todos stays free of token code; the exchange
## links no database and no Gin; the servers under api/ do not import each other
imports:
	@! $(GO) list -deps ./middleware ./middleware/principal ./introspection | grep -E 'gin-gonic|gorm.io' || (echo "middleware or introspection imports gin or gorm" && false)
	@! $(GO) list -deps ./middleware/principal ./introspection | grep -E 'golang-jwt|keyfunc' || (echo "principal or introspection imports token libraries" && false)
	@if [ -d todos ]; then ! $(GO) list -deps ./todos | grep -E 'golang-jwt|keyfunc|tollgate/(middleware|introspection)$$' || (echo "todos imports token code" && false); fi
	@! $(GO) list -deps ./cmd/exchange | grep -E 'gorm|pgx|sqlite|gin-gonic' || (echo "the exchange links the todo API's database or Gin" && false)
	@for p in todoapi exchange devidp; do ! $(GO) list -deps ./api/$$p | grep -E 'tollgate/api/' | grep -v -x "github.com/tollgate-dev/tollgate/api/$$p" || { echo "api/$$p imports another server"; exit 1; }; done

## tools: install the pinned linters
tools:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

build:
	$(GO) build $(PKGS)
