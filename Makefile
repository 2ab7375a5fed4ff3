# uringsend — developer and CI entry points. `make` builds; `make help` lists targets.

GO         ?= go
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
TESTFLAGS  ?=

.DEFAULT_GOAL := build

.PHONY: build deps test bench lint image help

build: ## Build every package
	$(GO) build ./...

deps: ## Install the tools the tests need (apt) and download modules
	./scripts/install-test-deps.sh

test: deps ## Vet, then run all tests with the race detector (extra flags: TESTFLAGS=...)
	$(GO) vet ./...
	$(GO) test -race -shuffle=on -count=1 -timeout 20m ./... $(TESTFLAGS)
	cd docker/k8stest && GOFLAGS=-mod=mod $(GO) test -count=1 ./...

bench: ## Run the Go benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint: ## gofmt (must be clean), go vet, staticcheck
	@files=$$(git ls-files --cached --others --exclude-standard -- '*.go'); \
	unformatted=$$(if [ -n "$$files" ]; then gofmt -l $$files; fi); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

image: ## Build the container image uringsend:dev (docker build, else podman build)
	./docker/build-image.sh

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-6s %s\n", $$1, $$2}'
