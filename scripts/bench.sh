#!/usr/bin/env bash
# make bench: build mlenv, generate a ~1 GiB synthetic environment under
# .bench/, and print one table comparing mlenv's build with the classic
# reproducible tar recipe and go-containerregistry's layer path.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_CFLAGS=-Wno-deprecated-declarations
go build -trimpath -o bin/mlenv ./cmd/mlenv
go run ./internal/bench -mlenv bin/mlenv "$@"
