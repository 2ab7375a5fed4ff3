# uringsend — developer and CI entry points. `make` builds; `make help` lists targets.

GO         ?= go
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK = golang.org/x/vuln/cmd/govulncheck@v1.9.0
# The Go vulnerability database, as the golang.org/x/vulndb module (the
# module proxy serves it; vuln.go.dev itself may be out of reach), indexed
# locally by its own indexdb command.
VULNDB     ?= v0.0.0-20261105234957-e22db6528018
VULNDB_DIR ?= $(shell $(GO) env GOCACHE)/uringsend-vulndb-$(VULNDB)
# Release builds and the vulnerability scan use the patched toolchain;
# the Go command fetches it through the module proxy.
RELEASE_TOOLCHAIN ?= go1.26.10
TESTFLAGS  ?=
SOAK       ?= 60s

.DEFAULT_GOAL := build

.PHONY: build deps test multihost bench gobench soak lint image help

build: ## Build every package
	$(GO) build ./...

deps: ## Install the tools the tests need (apt) and download modules
	./scripts/install-test-deps.sh

test: deps ## Vet (also as built for darwin: the API is the same everywhere), then run all tests with the race detector (extra flags: TESTFLAGS=...)
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	$(GO) test -race -shuffle=on -count=1 -timeout 20m ./... $(TESTFLAGS)
	cd docker/k8stest && GOFLAGS=-mod=mod $(GO) test -count=1 ./...

multihost: deps ## Only the multi-host test (in make test too): 3 runners, a sink and Prometheus, each in a network namespace of its own (root)
	$(GO) test -race -count=1 -run '^TestMultiHost$$' -v ./tests/ $(TESTFLAGS)

bench: ## The ratio table (uringsend vs net.Conn.Write, writev, unix.Write, iperf3) measured in one run; BENCHFLAGS=-quick for ~30 s
	$(GO) run ./bench $(BENCHFLAGS)

gobench: ## Every Go benchmark of the packages
	$(GO) test -run '^$$' -bench . -benchmem ./...

soak: ## Soak both backends with random shapes and faults for $(SOAK) (SOAK=10m for longer)
	$(GO) run ./soak -duration $(SOAK)

lint: ## gofmt (must be clean), go mod tidy (no diff, both modules), go vet, staticcheck, govulncheck
	@files=$$(git ls-files --cached --others --exclude-standard -- '*.go'); \
	unformatted=$$(if [ -n "$$files" ]; then gofmt -l $$files; fi); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	@for m in . docker/k8stest; do \
		(cd $$m && $(GO) mod tidy -diff) || { echo "go.mod/go.sum of $$m are not tidy: run go mod tidy there"; exit 1; }; \
	done
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@if [ ! -f $(VULNDB_DIR)/index/db.json ]; then \
		$(GO) mod download golang.org/x/vulndb@$(VULNDB) && \
		$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB) \
			-vulns $$($(GO) env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB)/data/osv -out $(VULNDB_DIR); fi
	GOTOOLCHAIN=$(RELEASE_TOOLCHAIN) $(GO) run $(GOVULNCHECK) -db file://$(VULNDB_DIR) ./...

image: ## Build the container image uringsend:dev (docker build, else podman build)
	GOTOOLCHAIN=$(RELEASE_TOOLCHAIN) ./docker/build-image.sh

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-6s %s\n", $$1, $$2}'
