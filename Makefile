# mlenv's tasks. CGO is on for NVML (go-nvml); its header's deprecation
# warnings are silenced. `make build-nocgo` checks the CGO_ENABLED=0 build.
export CGO_CFLAGS := -Wno-deprecated-declarations
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build build-nocgo test fuzz bench demo lint

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/mlenv ./cmd/mlenv

build-nocgo:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/mlenv-nocgo ./cmd/mlenv

# The test command CI runs (.ci/run calls exactly this).
# go test's JSON goes through scripts/testreport, which prints each
# failure's output, then every skipped test with its reason, then
# "N passed, N failed, N skipped"; either failing fails the target.
test:
	$(GO) vet ./...
	@log=$$(mktemp); rc=0; \
	  $(GO) test -json ./... >$$log || rc=1; \
	  $(GO) run ./scripts/testreport <$$log || rc=1; \
	  rm -f $$log; exit $$rc
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/mlenv
	# diff and verify must run on a laptop: the macOS build, without cgo.
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/mlenv
	$(MAKE) fuzz FUZZTIME=5s

# Each fuzz target briefly; FUZZTIME=5m for a longer run by hand.
# scripts/fuzz.sh says how it tells Go 1.26's -fuzztime race from a finding.
FUZZTIME ?= 30s
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz.sh

bench:
	./scripts/bench.sh

# The README's first command: build the offline example, print its digest.
demo:
	$(GO) run ./cmd/mlenv build --lock examples/minimal/mlenv.lock --output oci:.demo-out

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
