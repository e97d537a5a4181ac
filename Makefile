# Tollgate: `make run` starts the whole system, `make test` runs every test.
GO        ?= go
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
COUNT     ?= 6
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: all test test-short bench fuzz lint imports vet fmt-check build tools

all: lint test

## test: every test, with the race detector (PostgreSQL tests need TOLLGATE_TEST_POSTGRES or a local server)
test:
	$(GO) test -race -count=1 -timeout 15m ./...

## test-short: the quick subset
test-short:
	$(GO) test -short -count=1 ./...

## bench: benchmarks of the middleware and the store; compare runs with benchstat
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(COUNT) ./middleware/... ./introspection/... ./todos/... | tee bench.out

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

## lint: gofmt, go vet, staticcheck and the import rules
lint: fmt-check vet imports
	$(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## imports: reusable packages stay free of Gin and GORM; todos stays free of token code
imports:
	@! $(GO) list -deps ./middleware ./middleware/principal ./introspection | grep -E 'gin-gonic|gorm.io' || (echo "middleware or introspection imports gin or gorm" && false)
	@! $(GO) list -deps ./middleware/principal ./introspection | grep -E 'golang-jwt|keyfunc' || (echo "principal or introspection imports token libraries" && false)
	@if [ -d todos ]; then ! $(GO) list -deps ./todos | grep -E 'golang-jwt|keyfunc|tollgate/(middleware|introspection)$$' || (echo "todos imports token code" && false); fi

## tools: install the pinned linters
tools:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

build:
	$(GO) build ./...
